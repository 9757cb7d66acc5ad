"""A finite pool of train data read in epochs (`data.unique_tokens`): the data-constrained regime.

The pool is the source's train sequences 0..P-1, P = unique_tokens // seq_len. Train sequence i of
the run is pool sequence perm_(seed, e)(i mod P) of epoch e = i // P, where perm_(seed, e) is the
argsort of `data.random_bits` of the stream (3, seed, e): every epoch reads the whole pool once in
an order of its own, and a batch is still a pure function of (seed, step), so resuming stays exact.
Eval sequences are the source's own. `make_source` wraps every source this way, so synthetic, text
and tfds data (and any source module) get the same epochs.
"""
import functools

import numpy as np

from core.config import ConfigError

_PERMUTATION_STREAM = 3  # random_bits streams: 0 train, 1 eval, 2 eval documents (data/text.py)
_BLOCK = 4096            # pool sequences made per call to the source, and cached together
_CACHED_BLOCKS = 64      # at most 64 x 4096 sequences kept (135 MB at seq_len 128)


def pool_sequences(config) -> int:
  """P, the pool's sequences (0: no pool); raises ConfigError for a negative budget."""
  unique_tokens = config.data.get("unique_tokens", 0)
  if unique_tokens < 0:
    raise ConfigError(f"data.unique_tokens must be >= 0 (0: fresh data), got {unique_tokens}")
  return unique_tokens // config.train.seq_len


class Pool:
  """The data.Source interface over a finite pool of another source's train sequences."""

  def __init__(self, source, n_sequences: int, seed: int, unique_tokens: int):
    if n_sequences < 1:
      raise ConfigError(f"data.unique_tokens={unique_tokens} is below one sequence of "
                        f"train.seq_len={source.seq_len} tokens")
    limit = getattr(source, "train_tokens", None)  # a finite source's train split
    if limit is not None and n_sequences * source.seq_len > limit:
      raise ConfigError(f"data.unique_tokens={unique_tokens} is larger than the source's train "
                        f"split ({limit:,} tokens); lower it or add data")
    self.source, self.n_sequences, self.seed = source, n_sequences, seed
    self.vocab_size, self.seq_len, self.tokenizer = source.vocab_size, source.seq_len, source.tokenizer
    self.pool_tokens = n_sequences * source.seq_len

  @functools.lru_cache(maxsize=4)
  def permutation(self, epoch: int) -> np.ndarray:
    """int64 [P]: the pool index of each position of `epoch`."""
    from data import random_bits  # pylint: disable=g-import-not-at-top (data imports this module)
    bits = random_bits((_PERMUTATION_STREAM, self.seed, epoch), 0, self.n_sequences, 1)[:, 0]
    return np.argsort(bits, kind="stable")

  @functools.lru_cache(maxsize=_CACHED_BLOCKS)
  def _block(self, block: int) -> np.ndarray:
    start = block * _BLOCK
    return self.source.sequences("train", start, min(_BLOCK, self.n_sequences - start))

  def pool_indices(self, start: int, count: int) -> np.ndarray:
    """int64 [count]: the pool sequence behind each of train sequences start..start+count-1."""
    index = np.arange(start, start + count, dtype=np.int64)
    epochs, positions = np.divmod(index, self.n_sequences)
    out = np.empty(count, np.int64)
    for epoch in np.unique(epochs):
      at = epochs == epoch
      out[at] = self.permutation(int(epoch))[positions[at]]
    return out

  def sequences(self, split: str, start: int, count: int) -> np.ndarray:
    if split != "train":
      return self.source.sequences(split, start, count)
    indices = self.pool_indices(start, count)
    out = np.empty((count, self.seq_len + 1), np.int32)
    blocks = indices // _BLOCK
    for block in np.unique(blocks):
      at = blocks == block
      out[at] = self._block(int(block))[indices[at] - block * _BLOCK]
    return out

  def loss_floor(self, n_sequences: int):
    return self.source.loss_floor(n_sequences)

  def describe(self) -> dict:
    return {**self.source.describe(), "unique_tokens": self.pool_tokens,
            "pool_sequences": self.n_sequences,
            "epochs": "train sequence i: pool sequence perm(seed, i // P)(i mod P)"}

  def __getattr__(self, name):  # the wrapped source's own extras (e.g. the synthetic sample())
    if name == "source":
      raise AttributeError(name)
    return getattr(self.source, name)


def wrap(config, source):
  """`source`, read from a finite pool when config.data.unique_tokens > 0."""
  n_sequences = pool_sequences(config)
  if not config.data.get("unique_tokens", 0):
    return source
  return Pool(source, n_sequences, config.seed, config.data.unique_tokens)


def figures(source, tokens: int) -> dict:
  """`unique_tokens` (distinct train tokens a run of `tokens` saw) and `epochs` (tokens / that)."""
  pool = getattr(source, "pool_tokens", None)
  unique = min(tokens, pool) if pool else tokens
  return {"unique_tokens": unique, "epochs": tokens / unique if unique else 0.0}
