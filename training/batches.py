"""Batch feeding: the sequences of each step, from each replica's source, as sharded device arrays.

Batch s holds train sequences s*B .. (s+1)*B - 1 of the source, a pure function of (seed, step), so
resuming needs no iterator state. Each process builds only its own rows, so multi-host runs never
materialise the global batch.
"""
import jax
import numpy as np

ROWS_PER_CHUNK = 256  # train sequences made per call to a source (one process)


class Batches:
  """Batches of one model ([B, seq_len + 1]) or a group ([K, B, seq_len + 1]) on `sharding`."""

  def __init__(self, sharding, batch_size: int, replicas: int):
    self.sharding, self.batch_size, self.replicas = sharding, batch_size, replicas

  def global_batch(self, sources, split: str, first_sequence: int, count: int):
    """Sequences [first, first+count) of `split` from each replica's source, sharded."""
    per_process = count // jax.process_count()
    start = first_sequence + jax.process_index() * per_process
    return self._device_batch(
        np.stack([source.sequences(split, start, per_process) for source in sources]), count)

  def _device_batch(self, rows, count: int):
    """[K, rows, seq_len + 1] of this process -> the global batch of `count` rows."""
    rows = rows[0] if self.replicas == 1 else rows
    return jax.make_array_from_process_local_data(
        self.sharding, rows, rows.shape[:-2] + (count, rows.shape[-1]))

  def train(self, sources, first_step: int, steps: int):
    """The train batches of steps first_step..steps-1.

    On one process the rows of several steps are made in one call: the synthetic source makes
    rows several times faster per row in large calls, which counts for the smallest models.
    """
    batch = self.batch_size
    chunk = max(1, ROWS_PER_CHUNK // batch) if jax.process_count() == 1 else 1
    for first in range(first_step, steps, chunk):
      if chunk == 1:
        yield self.global_batch(sources, "train", first * batch, batch)
        continue
      count = min(chunk, steps - first) * batch
      rows = np.stack([source.sequences("train", first * batch, count) for source in sources])
      for offset in range(0, count, batch):
        yield self._device_batch(rows[:, offset:offset + batch], batch)

  def eval(self, sources, eval_sequences: int) -> list:
    """The held-out batches every evaluation scores: eval sequences 0..eval_sequences-1."""
    return [self.global_batch(sources, "eval", start, self.batch_size)
            for start in range(0, eval_sequences, self.batch_size)]
