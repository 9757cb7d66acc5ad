"""Tokenizers: symbols for the synthetic language, bytes (the default for text), SentencePiece.

Each tokenizer has `vocab_size`, `eos_id` (the id appended after every document, so documents are
separated in the token stream), `encode`, `decode`, `save(workdir)` and a `fingerprint` that names
it in cache keys. `save` writes DIR/tokenizer.json (plus DIR/tokenizer.model for SentencePiece) and
`load(DIR)` reads them back, so a run's own tokenizer travels with the run.

- SymbolTokenizer: the synthetic language's token i is one character (0-9, a-z, A-Z, +, / for the
  first 64, then Latin-1 supplement and onwards), so generated text is readable and round-trips.
- ByteTokenizer: UTF-8 bytes 0..255 plus 256 = end of document; vocab 257. Nothing to train, any
  text round-trips; decode drops the end-of-document id.
- SentencePieceTokenizer: BPE trained offline on the training documents with byte fallback and no
  normalisation, so any text round-trips, newlines included.
"""
import hashlib
import io
import json
import os
import string

import numpy as np
import sentencepiece as spm

_SYMBOLS = string.digits + string.ascii_lowercase + string.ascii_uppercase + "+/"


class SymbolTokenizer:

  def __init__(self, vocab_size: int):
    self.vocab_size = vocab_size
    self.eos_id = None  # synthetic sequences never cross a document boundary
    self.symbols = _SYMBOLS[:vocab_size] + "".join(chr(0xC0 + i) for i in range(vocab_size - len(_SYMBOLS)))
    self._ids = {s: i for i, s in enumerate(self.symbols)}
    self.fingerprint = f"symbols-{vocab_size}"

  def encode(self, text: str) -> list[int]:
    try:
      return [self._ids[c] for c in text]
    except KeyError as e:
      raise ValueError(f"{e.args[0]!r} is not a symbol of the synthetic language; its "
                       f"{self.vocab_size} symbols are {_runs(self.symbols)}") from None

  def decode(self, ids) -> str:
    return "".join(self.symbols[int(i)] for i in np.asarray(ids).ravel())

  def save(self, workdir: str) -> None:
    _write_json(workdir, {"kind": "symbols", "vocab_size": self.vocab_size})


def _runs(symbols: str) -> str:
  """The symbols as runs of consecutive characters: "0-9, a-z, A-Z, +, /"."""
  runs = []
  for c in symbols:
    if runs and ord(c) == ord(runs[-1][-1]) + 1:
      runs[-1] = runs[-1][0] + c
    else:
      runs.append(c)
  return ", ".join(run if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


class ByteTokenizer:
  vocab_size = 257
  eos_id = 256
  fingerprint = "bytes-257"

  def encode(self, text: str) -> list[int]:
    return list(text.encode("utf-8"))

  def decode(self, ids) -> str:
    ids = np.asarray(ids).ravel()
    return bytes(ids[ids < 256].astype(np.uint8)).decode("utf-8", errors="replace")

  def save(self, workdir: str) -> None:
    _write_json(workdir, {"kind": "bytes"})


class SentencePieceTokenizer:

  def __init__(self, model_proto: bytes):
    self.model_proto = model_proto
    self._processor = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._processor.vocab_size()
    self.eos_id = self._processor.eos_id()
    self.fingerprint = "sentencepiece-" + hashlib.sha256(model_proto).hexdigest()[:16]

  def encode(self, text: str) -> list[int]:
    return self._processor.encode(text)

  def decode(self, ids) -> str:
    return self._processor.decode([int(i) for i in np.asarray(ids).ravel()])

  def save(self, workdir: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "tokenizer.model"), "wb") as f:
      f.write(self.model_proto)
    _write_json(workdir, {"kind": "sentencepiece", "vocab_size": self.vocab_size})


def train_sentencepiece(documents, vocab_size: int) -> SentencePieceTokenizer:
  """BPE on the lines of `documents` (an iterable of str); deterministic for the same documents.

  The vocabulary may come out smaller than asked when the text is too small to support it.
  """
  lines = (line for doc in documents for line in doc.splitlines() if line.strip())
  model = io.BytesIO()
  spm.set_random_generator_seed(0)
  with open(os.devnull, "w") as quiet:
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines, model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        split_digits=True, hard_vocab_limit=False, input_sentence_size=2_000_000,
        shuffle_input_sentence=True, num_threads=os.cpu_count() or 1, minloglevel=2, logstream=quiet)
  return SentencePieceTokenizer(model.getvalue())


def load(workdir: str):
  """The tokenizer `save(workdir)` wrote."""
  path = os.path.join(workdir, "tokenizer.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} does not exist; it is written when a run starts")
  with open(path) as f:
    spec = json.load(f)
  if spec["kind"] == "symbols":
    return SymbolTokenizer(spec["vocab_size"])
  if spec["kind"] == "bytes":
    return ByteTokenizer()
  with open(os.path.join(workdir, "tokenizer.model"), "rb") as f:
    return SentencePieceTokenizer(f.read())


def _write_json(workdir: str, spec: dict) -> None:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "tokenizer.json"), "w") as f:
    json.dump(spec, f)
