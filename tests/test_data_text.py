"""The local text source: document split, cached tokens, reproducible windows, tokenizers, errors."""
import json
import os
import re
import shutil

import numpy as np
import pytest

import data
from data import text, tokenizers
from core.config import ConfigError
from experiments import base


def write_corpus(root, n_txt=30, n_jsonl=20):
  """Document i is its own number repeated, so any few bytes of a window say which document they are."""
  root.mkdir(exist_ok=True)
  (root / "a.txt").write_text("\n\n".join(f"{i:03d} " * 12 for i in range(n_txt)) + "\n")
  rows = [{"text": f"{i:03d} " * 12, "id": i} for i in range(n_txt, n_txt + n_jsonl)]
  (root / "sub").mkdir(exist_ok=True)
  (root / "sub" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (root / "ignored.csv").write_text("not,text\n")
  return root


def config_for(tmp_path, path, **data_overrides):
  config = base.get_config()
  config.data.source = "text"
  config.data.path = str(path)
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.eval_fraction = 0.1
  config.train.seq_len = 16
  for key, value in data_overrides.items():
    config.data[key] = value
  return config


def documents_in(source, rows):
  """The document numbers that the windows `rows` touch."""
  ids = set()
  for row in rows:
    for piece in np.split(row, np.flatnonzero(row == source.tokenizer.eos_id)):
      ids.update(int(m) for m in re.findall(r"\d{3}", source.tokenizer.decode(piece)))
  return ids


def test_split_by_document_and_windows_stay_in_their_split(tmp_path):
  source = data.make_source(config_for(tmp_path, write_corpus(tmp_path / "corpus")))
  described = source.describe()
  assert described["eval_documents"] == 5 and described["train_documents"] == 45  # 10% of 50
  assert described["train_tokens"] == 45 * (48 + 1)  # 12 x "NNN " plus the end-of-document id
  train = documents_in(source, source.sequences("train", 0, 400))
  evals = documents_in(source, source.sequences("eval", 0, 400))
  assert len(evals) == 5 and len(train) >= 40 and not train & evals
  assert train | evals <= set(range(50))


def test_sequences_are_a_pure_function_of_seed_and_index(tmp_path):
  config = config_for(tmp_path, write_corpus(tmp_path / "corpus"))
  source = data.make_source(config)
  block = source.sequences("train", 5, 12)
  assert block.shape == (12, 17) and block.dtype == np.int32 and block.max() < 257
  parts = [source.sequences("train", 5, 4), source.sequences("train", 9, 8)]
  np.testing.assert_array_equal(block, np.concatenate(parts))
  np.testing.assert_array_equal(block, data.make_source(config).sequences("train", 5, 12))
  config.seed = 1
  reseeded = data.make_source(config)
  assert not np.array_equal(block, reseeded.sequences("train", 5, 12))
  np.testing.assert_array_equal(source.sequences("eval", 0, 6), reseeded.sequences("eval", 0, 6))
  assert data.make_source(config).describe()["eval_documents"] == 5  # the split does not move with the seed
  assert source.loss_floor(10) is None


def test_cache_is_built_once_and_keyed_by_the_files(tmp_path):
  corpus = write_corpus(tmp_path / "corpus")
  config = config_for(tmp_path, corpus)
  first = data.make_source(config)
  meta = os.path.join(first.cache, "meta.json")
  built = os.stat(meta).st_mtime_ns
  assert isinstance(first._tokens["train"], np.memmap)
  assert data.make_source(config).cache == first.cache and os.stat(meta).st_mtime_ns == built
  (corpus / "a.txt").write_text("\n\n".join(f"{i:03d} " * 13 for i in range(30)))
  changed = data.make_source(config)
  assert changed.cache != first.cache
  assert changed.describe()["train_tokens"] > first.describe()["train_tokens"]
  assert [p for p in os.listdir(tmp_path / "cache") if ".tmp" in p] == []


def test_txt_paragraphs_jsonl_fields_and_globs(tmp_path):
  (tmp_path / "one.txt").write_text("first paragraph\nstill first\n\n  \nsecond\n\n\nthird é\n")
  assert list(text.read_documents([str(tmp_path / "one.txt")], "text")) == [
      "first paragraph\nstill first", "second", "third é"]
  (tmp_path / "rows.jsonl").write_text('{"body": "x"}\n\n{"body": "y"}\n')
  assert list(text.read_documents([str(tmp_path / "rows.jsonl")], "body")) == ["x", "y"]
  with pytest.raises(ConfigError, match="rows.jsonl:1 has no string field 'text'"):
    list(text.read_documents([str(tmp_path / "rows.jsonl")], "text"))
  assert text.text_files(str(tmp_path / "*.jsonl")) == [str(tmp_path / "rows.jsonl")]
  assert len(text.text_files(str(tmp_path))) == 2


def test_errors_are_one_line_config_errors(tmp_path):
  corpus = write_corpus(tmp_path / "corpus")
  (tmp_path / "empty.txt").write_text("\n\n  \n")
  cases = [(tmp_path / "missing", "neither a file"), (tmp_path / "*.nothing", "neither a file"),
           (tmp_path / "empty.txt", "hold no text"), ("", "needs data.path")]
  for path, message in cases:
    with pytest.raises(ConfigError, match=message) as error:
      data.make_source(config_for(tmp_path, path))
    assert "\n" not in str(error.value)
  config = config_for(tmp_path, corpus)
  config.train.seq_len = 300  # the eval split has 5 x 49 tokens
  with pytest.raises(ConfigError, match="eval split .* fewer than one sequence"):
    data.make_source(config)
  with pytest.raises(ConfigError, match="byte or sentencepiece"):
    data.make_source(config_for(tmp_path, corpus, tokenizer="words"))
  with pytest.raises(ConfigError, match="needs data.tokenizer=sentencepiece"):
    data.make_source(config_for(tmp_path, corpus, vocab_size=1000))


def test_byte_tokenizer_round_trips_and_is_saved(tmp_path):
  tokenizer = tokenizers.ByteTokenizer()
  ids = tokenizer.encode("héllo ✓")
  assert max(ids) < 256 and tokenizer.decode(ids + [tokenizer.eos_id]) == "héllo ✓"
  data.make_source(config_for(tmp_path, write_corpus(tmp_path / "corpus")), str(tmp_path / "run"))
  assert isinstance(data.load_tokenizer(str(tmp_path / "run")), tokenizers.ByteTokenizer)


def test_sentencepiece_is_trained_cached_and_saved_with_the_run(tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
  rng = np.random.default_rng(0)
  (corpus / "c.txt").write_text("\n\n".join(" ".join(rng.choice(words, 30)) for _ in range(60)))
  config = config_for(tmp_path, corpus, tokenizer="sentencepiece", vocab_size=320)
  run = str(tmp_path / "run")
  source = data.make_source(config, run)
  assert 256 < source.vocab_size <= 320
  tokenizer = data.load_tokenizer(run)
  assert tokenizer.fingerprint == source.tokenizer.fingerprint
  sample = "gamma delta\nnovel wörds 42"
  assert tokenizer.decode(tokenizer.encode(sample)) == sample  # byte fallback, no normalisation
  assert len(tokenizer.encode("alpha beta gamma")) < len("alpha beta gamma")  # it learned merges
  rows = source.sequences("train", 0, 8)
  assert rows.max() < source.vocab_size and tokenizer.eos_id in rows
  # A resumed run keeps its own tokenizer even when the cache is gone.
  shutil.rmtree(tmp_path / "cache")
  assert data.make_source(config, run).tokenizer.fingerprint == source.tokenizer.fingerprint
  assert not (tmp_path / "cache" / "tokenizers").exists()


def test_a_file_that_is_not_text_is_refused_naming_it(tmp_path):
  corpus = write_corpus(tmp_path / "corpus")
  binary = corpus / "blob.txt"  # binary data split by blank lines, as a text file would be
  chunks = [bytes(np.random.default_rng(i).integers(0, 256, 2000, dtype=np.uint8)) for i in range(4)]
  binary.write_bytes(b"\n\n".join(chunks))
  with pytest.raises(ConfigError) as info:
    data.make_source(config_for(tmp_path, corpus))
  message = str(info.value)
  assert message.startswith(f"{binary} is not text: ") and "\n" not in message
  # A stray undecodable byte (below 1% of the file) is text still: it decodes to U+FFFD.
  binary.write_bytes(b"\n\n".join(f"{i:03d} ".encode() * 12 for i in range(40)) + b"\xff\n")
  assert data.make_source(config_for(tmp_path, corpus)).describe()["train_documents"] > 30
