"""Data sources load by name: a source outside the project is one module, trained end to end."""
import json
import math
import os
import textwrap

import pytest

import data
import train
from core.config import ConfigError, load_config
from conftest import TINY

COUNTING = '''
"""A test-only source: x_i = (x_0 + i) mod V from a random x_0, so every token after the first is
determined by the one before it (loss floor 0)."""
import numpy as np

from data import random_bits, sequence_stream, tokenizers


class CountingSource:
  def __init__(self, vocab_size, seq_len, seed):
    self.vocab_size, self.seq_len, self.seed = vocab_size, seq_len, seed
    self.tokenizer = tokenizers.SymbolTokenizer(vocab_size)

  def sequences(self, split, start, count):
    first = random_bits(sequence_stream(self.seed, split), start, count, 1)[:, 0] % self.vocab_size
    return ((first[:, None] + np.arange(self.seq_len + 1)) % self.vocab_size).astype(np.int32)

  def loss_floor(self, n_sequences):
    return 0.0

  def describe(self):
    return {"kind": "counting", "vocab_size": self.vocab_size, "seq_len": self.seq_len}


def make_source(config, workdir=None):
  return CountingSource(16, config.train.seq_len, config.seed)
'''


@pytest.fixture
def counting_module(tmp_path, monkeypatch):
  package = tmp_path / "extra_sources"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "counting.py").write_text(textwrap.dedent(COUNTING))
  monkeypatch.syspath_prepend(str(tmp_path))
  return "extra_sources.counting"


def test_the_project_sources_are_found_by_module_name():
  assert data.source_names() == ["synthetic", "text", "tfds"]
  assert data.source_module("synthetic").__name__ == "data.synthetic"


@pytest.mark.parametrize("name", ["nope", "tokenizers", "__init__", "no.such.module", "x y", ""])
def test_an_unknown_source_is_one_line_naming_the_sources(name):
  config = load_config(TINY)
  config.data.source = name
  with pytest.raises(ConfigError, match="data.source must be one of synthetic, text, tfds"):
    data.make_source(config)


def test_a_source_in_its_own_module_trains_end_to_end(tmp_path, counting_module):
  workdir = tmp_path / "run"
  assert train.main(["--config", TINY, "--workdir", str(workdir),
                     f"--config.data.source={counting_module}", "--config.train.tokens=20480",
                     "--config.train.log_every=5", "--config.wandb.mode=disabled"]) == 0
  result = json.loads((workdir / "result.json").read_text())
  assert result["status"] == "completed" and result["data"]["kind"] == "counting"
  assert result["loss_floor"] == 0.0
  # A determined next token: the model gets well below a uniform guess over 16 tokens.
  assert result["final_eval_loss"] < 0.5 * math.log(16)
  assert os.path.exists(workdir / "tokenizer.json")
