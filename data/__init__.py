"""Data sources and tokenizers: `make_source(config)` for training, `load_tokenizer(workdir)` for generation.

Every source (synthetic.py, text.py, tfds.py: one module each, loaded by name) has the same small interface, `Source` below, and
serves sequences by index: sequence i of a split is a pure function of (config.seed, split, i); eval
sequences do not even depend on the seed (`sequence_stream`). A batch is therefore a pure function of
(seed, step), resuming needs no iterator state and each host of a multi-host run can compute just its
own rows. The randomness behind that is one counter-based hash, `random_bits`, shared by all sources:
SplitMix64 (Steele et al. 2014) seeded per sequence, so a row costs a few vector operations and never
depends on the rows before it.
"""
import importlib
import os
import pathlib
import pkgutil
from typing import Protocol

import numpy as np

from core.config import ConfigError

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment, 2^64 / golden ratio


class Tokenizer(Protocol):
  vocab_size: int
  eos_id: int | None  # appended after every document; None for the synthetic language (no documents)

  def encode(self, text: str) -> list[int]: ...
  def decode(self, ids) -> str: ...
  def save(self, workdir: str) -> None: ...


class Source(Protocol):
  vocab_size: int
  seq_len: int
  tokenizer: Tokenizer

  def sequences(self, split: str, start: int, count: int) -> np.ndarray:
    """int32 [count, seq_len + 1]: sequences start..start+count-1 of `split` ('train' | 'eval')."""

  def loss_floor(self, n_sequences: int) -> float | None:
    """Best achievable mean next-token loss (nats) on eval sequences 0..n_sequences-1, if known."""

  def describe(self) -> dict: ...


def _mix(z: np.ndarray) -> np.ndarray:
  """SplitMix64's finaliser on uint64 arrays (array arithmetic wraps silently, as the hash needs)."""
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


def sequence_stream(seed: int, split: str) -> tuple[int, ...]:
  """The random stream of a split's sequences, for `random_bits`.

  Train sequences follow config.seed; eval sequences ignore it, so runs with any seed are scored on
  the same held-out sequences (and share one loss floor), and eval never draws from a train stream.
  """
  if split == "train":
    return (0, seed)
  if split == "eval":
    return (1,)
  raise ValueError(f"split must be 'train' or 'eval', got {split!r}")


def random_bits(stream: tuple[int, ...], start: int, count: int, width: int) -> np.ndarray:
  """uint64 [count, width] of random bits; row r depends only on (stream, start + r).

  Row r is the first `width` outputs of its own SplitMix64 generator, seeded by hashing the stream's
  integers and the row's index.
  """
  if start < 0 or count < 0:
    raise ValueError(f"need start >= 0 and count >= 0, got start={start}, count={count}")
  key = np.zeros(1, np.uint64)
  for part in stream:
    key = _mix(key + np.uint64(((part + 1) * _GOLDEN) & _MASK64))
  index = np.arange(start, start + count, dtype=np.uint64)
  row_keys = _mix(_mix(key + index * np.uint64(_GOLDEN)))
  column = np.arange(1, width + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
  return _mix(row_keys[:, None] + column[None, :])


def make_source(config, workdir: str | None = None) -> Source:
  """The source `config.data.source` names, for sequences of config.train.seq_len + 1 tokens.

  A source is a module with `make_source(config, workdir)`: `data.source=NAME` loads data/NAME.py
  (synthetic, text, tfds), and a dotted name (`mypkg.my_source`) loads that module, so adding a
  source is adding one module. With data.unique_tokens > 0 the source's train sequences come from a
  finite pool read in epochs (data/pool.py), whatever the source; `source.eval_sets` holds the
  data.eval_sets to score beside its eval split (data/eval_sets.py). Modules load lazily: a synthetic run never imports tensorflow_datasets.
  With a workdir, the source's tokenizer is saved there (a trained SentencePiece model included) so
  that `load_tokenizer(workdir)` finds it; a run that resumes reuses the tokenizer already there.
  """
  if config.train.seq_len < 1:
    raise ConfigError(f"train.seq_len must be >= 1, got {config.train.seq_len}")
  from data import eval_sets, pool  # pylint: disable=g-import-not-at-top (they import this module)
  source = pool.wrap(config, source_module(config.data.source).make_source(config, workdir))
  source.eval_sets = eval_sets.load(config, source)  # {name: Source}: data.eval_sets
  if workdir:
    source.tokenizer.save(workdir)
  return source


def source_names() -> list[str]:
  """The sources in this package: its modules that define make_source."""
  here = os.path.dirname(__file__)
  return sorted(info.name for info in pkgutil.iter_modules([here]) if "\ndef make_source(" in
                pathlib.Path(here, f"{info.name}.py").read_text())


def source_module(name: str):
  """The module implementing data source `name` (data/NAME.py, or a dotted module path)."""
  module_name = name if "." in name else f"data.{name}"
  module = None
  if all(part.isidentifier() and not part.startswith("_") for part in module_name.split(".")):
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
      if not module_name.startswith(error.name or ""):  # the source exists; a module it needs does not
        raise
  if module is None or not callable(getattr(module, "make_source", None)):
    raise ConfigError(f"data.source must be one of {', '.join(source_names())} (or a module path "
                      f"with make_source(config, workdir)), got {name!r}")
  return module


def load_tokenizer(workdir: str) -> Tokenizer:
  """The tokenizer a run saved in its workdir (for model.generate)."""
  from data import tokenizers
  return tokenizers.load(workdir)
