"""Local text files, and the pre-tokenised corpus cache that the tfds source shares.

Documents: config.data.path is a file, a directory (searched recursively) or a glob of .txt and
.jsonl files, read in sorted path order. In a .txt file, documents are separated by blank lines (a
book becomes its paragraphs, a file of one-line records stays one document per record); in a .jsonl
file each row is a document, its text in the field config.data.text_field. A file more than 1% of
whose bytes are not text (undecodable as UTF-8, or NUL) is refused, naming it.

Split: eval is the fixed share config.data.eval_fraction of the documents (at least one), chosen by a
hash of the document's index with a constant key, so it does not move with config.seed and train
and eval never share a document.

Cache: each split is tokenised once, every document followed by the tokenizer's end-of-document id,
into a flat token file (uint16, or uint32 for vocabularies over 65,536) that is memory-mapped. The
cache directory is keyed by a hash of the corpus (file paths, sizes and modification times, or the
tfds data set and version), the split rule and the tokenizer, so an edited file or another
tokenizer builds a new entry. A build is written to a temporary directory and renamed into place,
so concurrent runs of a sweep never read a half-written cache.

Sequences: sequence i of a split is the window of seq_len + 1 tokens starting at position
hash(seed, split, i) mod (n_tokens - seq_len) of the split's token stream (`data.random_bits`; eval
ignores the seed): uniform over all windows (drawn with replacement), a pure function of
(seed, split, i), and free to cross document boundaries as in GPT-2 and nanoGPT (the
end-of-document id tells the model where one ends).
"""
import codecs
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile

import numpy as np

from core import files
from core.config import ConfigError
from data import random_bits, sequence_stream, tokenizers

_FORMAT = 1  # bump when the cache layout or the document rules change
_DOCUMENT_STREAM = (2,)  # random_bits stream that picks the eval documents: fixed, not config.seed


def cache_root(config) -> str:
  if config.data.cache_dir:
    return os.path.expanduser(config.data.cache_dir)
  return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "scaling_data")


def eval_mask(n_documents: int, eval_fraction: float, what: str) -> np.ndarray:
  """bool [n_documents]: which documents are held out; round(eval_fraction * n), at least one."""
  if not 0 < eval_fraction < 1:
    raise ConfigError(f"data.eval_fraction must be in (0, 1), got {eval_fraction}")
  if n_documents < 2:
    raise ConfigError(f"{what} has {n_documents} document(s); at least 2 are needed to hold one out for eval")
  n_eval = min(n_documents - 1, max(1, round(eval_fraction * n_documents)))
  ranks = np.argsort(random_bits(_DOCUMENT_STREAM, 0, n_documents, 1)[:, 0], kind="stable")
  mask = np.zeros(n_documents, bool)
  mask[ranks[:n_eval]] = True
  return mask


class TokenSource:
  """The data.Source interface over a pre-tokenised, memory-mapped corpus with a train and an eval split."""

  def __init__(self, config, workdir, corpus: dict, documents, tokenizer=None,
               splits=("train", "eval")):
    """corpus: JSON-able identity of the documents and their split (it keys the cache);
    documents(split): a fresh iterator over that split's documents (str), always in the same order;
    tokenizer: another source's (an eval set scored by a run's model), else this corpus's own;
    splits: the splits it serves (an eval set has only "eval")."""
    self.seq_len = config.train.seq_len
    self.seed = config.seed
    self.corpus = corpus
    self.tokenizer = tokenizer or _tokenizer(config, workdir, corpus, documents)
    self.vocab_size = self.tokenizer.vocab_size
    key = hashlib.sha256(json.dumps([_FORMAT, corpus, self.tokenizer.fingerprint], sort_keys=True).encode())
    self.cache = os.path.join(cache_root(config), key.hexdigest()[:24])
    if not os.path.isfile(os.path.join(self.cache, "meta.json")):
      _build(self.cache, self.tokenizer, documents, splits)
    with open(os.path.join(self.cache, "meta.json")) as f:
      self.meta = json.load(f)
    self._documents = documents
    self._tokens = {}
    for split in splits:
      n_tokens = self.meta[split]["tokens"]
      if n_tokens < self.seq_len + 1:
        raise ConfigError(f"the {split} split of {corpus['name']} has {n_tokens} tokens, fewer than one "
                          f"sequence of train.seq_len + 1 = {self.seq_len + 1}; "
                          "lower train.seq_len or add text")
      self._tokens[split] = np.memmap(os.path.join(self.cache, f"{split}.bin"), self.meta["dtype"], "r")

  def sequences(self, split: str, start: int, count: int) -> np.ndarray:
    bits = random_bits(sequence_stream(self.seed, split), start, count, 1)[:, 0]
    tokens = self._tokens[split]
    starts = (bits % np.uint64(len(tokens) - self.seq_len)).astype(np.int64)
    return tokens[starts[:, None] + np.arange(self.seq_len + 1)].astype(np.int32)

  @functools.cached_property
  def tokens_per_byte(self) -> float:
    """Eval tokens per byte of the eval text (each document's UTF-8 bytes and one for its end,
    which the end-of-document token stands for): bits per byte = nats per token / ln 2 x this."""
    n_bytes = self.meta["eval"].get("bytes")
    if n_bytes is None:  # a cache built before bytes were counted
      n_bytes = sum(len(doc.encode("utf-8", errors="replace")) + 1 for doc in self._documents("eval"))
    return self.meta["eval"]["tokens"] / n_bytes

  @property
  def train_tokens(self) -> int:
    """The train split's tokens: the most a finite pool (data/pool.py) may hold."""
    return self.meta["train"]["tokens"]

  def loss_floor(self, n_sequences: int) -> None:
    return None  # unknown for real text

  def describe(self) -> dict:
    corpus = {k: v for k, v in self.corpus.items() if k != "files"}
    return {**corpus, "vocab_size": self.vocab_size, "seq_len": self.seq_len,
            "tokenizer": self.tokenizer.fingerprint, "cache": self.cache,
            "train_tokens": self.meta["train"]["tokens"], "eval_tokens": self.meta["eval"]["tokens"],
            "train_documents": self.meta["train"]["documents"],
            "eval_documents": self.meta["eval"]["documents"],
            "windows": "sequence i starts at hash(seed, split, i) mod (tokens - seq_len)",
            "loss_floor_method": None}


def _tokenizer(config, workdir, corpus, documents):
  """Bytes; or SentencePiece: the run's own (resuming), else the cached one for this corpus, else trained."""
  if config.data.tokenizer == "byte":
    if config.data.vocab_size:
      raise ConfigError(f"data.vocab_size={config.data.vocab_size} needs data.tokenizer=sentencepiece; "
                        "the byte tokenizer's vocabulary is 257")
    return tokenizers.ByteTokenizer()
  if config.data.tokenizer != "sentencepiece":
    raise ConfigError(f"data.tokenizer must be byte or sentencepiece, got {config.data.tokenizer!r}")
  vocab_size = config.data.vocab_size or 4096
  if vocab_size < 300:
    raise ConfigError("data.vocab_size must be >= 300 for sentencepiece (256 byte pieces + merges), "
                      f"got {vocab_size}")
  if workdir and os.path.isfile(os.path.join(workdir, "tokenizer.model")):
    return tokenizers.load(workdir)
  key = hashlib.sha256(json.dumps([_FORMAT, corpus, vocab_size], sort_keys=True).encode()).hexdigest()[:24]
  path = os.path.join(cache_root(config), "tokenizers", key + ".model")
  if not os.path.isfile(path):
    model = tokenizers.train_sentencepiece(documents("train"), vocab_size).model_proto
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_atomic(path, model)
  with open(path, "rb") as f:
    return tokenizers.SentencePieceTokenizer(f.read())


def _build(cache: str, tokenizer, documents, splits=("train", "eval")) -> None:
  """Tokenises the splits into a temporary directory, then renames it to `cache`."""
  dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
  os.makedirs(os.path.dirname(cache), exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(cache) + ".tmp", dir=os.path.dirname(cache))
  meta = {"dtype": np.dtype(dtype).name}
  for split in splits:
    n_tokens = n_documents = n_bytes = 0
    with open(os.path.join(tmp, f"{split}.bin"), "wb") as f:
      buffer = []
      for doc in documents(split):
        buffer.extend(tokenizer.encode(doc))
        buffer.append(tokenizer.eos_id)
        n_documents += 1
        n_bytes += len(doc.encode("utf-8", errors="replace")) + 1  # its end counts one byte
        if len(buffer) >= 1 << 20:
          np.asarray(buffer, dtype).tofile(f)
          n_tokens += len(buffer)
          buffer = []
      np.asarray(buffer, dtype).tofile(f)
      n_tokens += len(buffer)
    meta[split] = {"tokens": n_tokens, "documents": n_documents, "bytes": n_bytes}
  with open(os.path.join(tmp, "meta.json"), "w") as f:
    json.dump(meta, f)
  try:
    os.rename(tmp, cache)
  except OSError:  # another process built it first
    shutil.rmtree(tmp)


def text_files(path: str) -> list[str]:
  """The sorted .txt / .jsonl files that config.data.path names (a file, a directory or a glob)."""
  if not path:
    raise ConfigError("data.source=text needs data.path: a file, directory or glob of .txt / .jsonl files")
  expanded = os.path.expanduser(path)
  if os.path.isdir(expanded):
    candidates = glob.glob(os.path.join(expanded, "**", "*"), recursive=True)
  elif os.path.isfile(expanded):
    candidates = [expanded]
  else:
    candidates = glob.glob(expanded, recursive=True)
    if not candidates:
      raise ConfigError(f"data.path={path!r} is neither a file, a directory nor a glob that matches anything")
  files = sorted(os.path.abspath(p) for p in candidates
                 if os.path.isfile(p) and p.endswith((".txt", ".jsonl")))
  if not files:
    raise ConfigError(f"data.path={path!r} holds no .txt or .jsonl files")
  return files


# A file more than this share of whose bytes are not text (undecodable as UTF-8, or NUL) is
# refused: a binary file would otherwise train as replacement characters. Below it, a stray bad
# byte decodes to U+FFFD.
NOT_TEXT_SHARE = 0.01
_NOT_TEXT = re.compile("[\x00\udc80-\udcff]")  # NUL, and the bytes surrogateescape kept


@functools.cache
def check_is_text(path: str, size: int, mtime_ns: int) -> None:
  """Raises ConfigError when more than NOT_TEXT_SHARE of the file's bytes are not text (size and
  mtime_ns key the cache: an edited file is checked again)."""
  decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
  bad = total = 0
  with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
      bad += len(_NOT_TEXT.findall(decoder.decode(chunk)))
      total += len(chunk)
  bad += len(_NOT_TEXT.findall(decoder.decode(b"", final=True)))
  if bad > NOT_TEXT_SHARE * total:
    raise ConfigError(f"{path} is not text: {bad:,} of its {total:,} bytes ({bad / total:.0%}) "
                      "are not UTF-8 text; data.path must name text files")


def read_documents(files: list[str], text_field: str):
  """Yields the documents of `files` in order (see the module docstring)."""
  for path in files:
    check_is_text(path, os.path.getsize(path), os.stat(path).st_mtime_ns)
    with open(path, encoding="utf-8", errors="replace") as f:
      if path.endswith(".txt"):
        for doc in re.split(r"\n(?:[ \t\r\f\v]*\n)+", f.read()):
          if doc.strip():
            yield doc.strip("\n")
        continue
      for line_number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          row = json.loads(line)
        except json.JSONDecodeError as e:
          raise ConfigError(f"{path}:{line_number} is not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
          raise ConfigError(f"{path}:{line_number} has no string field {text_field!r}; set data.text_field")
        if row[text_field].strip():
          yield row[text_field]


def make_source(config, workdir: str | None = None) -> TokenSource:
  """The data.Source of config.data.path, tokenised with config.data.tokenizer."""
  files = text_files(config.data.path)

  @functools.cache
  def held_out() -> np.ndarray:  # needs a pass over the files, so only when the cache is built
    n_documents = sum(1 for _ in read_documents(files, config.data.text_field))
    if n_documents == 0:
      raise ConfigError(f"data.path={config.data.path!r}: its {len(files)} file(s) hold no text")
    return eval_mask(n_documents, config.data.eval_fraction, f"data.path={config.data.path!r}")

  def documents(split):
    wanted = split == "eval"
    return (doc for doc, is_eval in zip(read_documents(files, config.data.text_field), held_out())
            if is_eval == wanted)

  corpus = {"kind": "text", "name": config.data.path, "text_field": config.data.text_field,
            "eval_fraction": config.data.eval_fraction, "n_files": len(files),
            "files": [[p, os.path.getsize(p), os.stat(p).st_mtime_ns] for p in files]}
  return TokenSource(config, workdir, corpus, documents)
