"""More held-out text scored at every evaluation (`data.eval_sets`): per-domain loss and bits per byte.

`data.eval_sets = "NAME=PATH,NAME=PATH"`: each PATH is read as data.path is (a file, directory or
glob of .txt / .jsonl; data/text.py), all of it held out, tokenised with the run's own tokenizer
into the shared token cache, and scored on windows drawn as the run's eval sequences are (the
eval stream's hash, which ignores the seed) with as many sequences as the main evaluation. Only a
source with a text tokenizer (text, tfds) takes them: a synthetic run has no text to encode.
"""
import math
import os

from core.config import ConfigError
from data import text


def parse(value: str) -> dict[str, str]:
  """{name: path} of data.eval_sets; ConfigError on a malformed entry or a repeated name."""
  sets = {}
  for entry in filter(None, (part.strip() for part in value.split(","))):
    name, sep, path = (part.strip() for part in entry.partition("="))
    if not sep or not name.isidentifier() or not path:
      raise ConfigError(f"data.eval_sets entries are NAME=PATH (NAME a word), got {entry!r}")
    if name in sets:
      raise ConfigError(f"data.eval_sets names {name!r} twice")
    sets[name] = path
  return sets


def load(config, source) -> dict:
  """{name: the eval set's data.Source (its "eval" split)} of config.data.eval_sets."""
  sets = parse(config.data.get("eval_sets", ""))
  if sets and getattr(source, "tokens_per_byte", None) is None:
    raise ConfigError(f"data.eval_sets needs a text or tfds source (a tokenizer of text); "
                      f"data.source={config.data.source} has none")
  return {name: _eval_set(config, source.tokenizer, name, path) for name, path in sets.items()}


def _eval_set(config, tokenizer, name: str, path: str) -> text.TokenSource:
  try:
    files = text.text_files(path)
  except ConfigError as error:
    raise ConfigError(f"data.eval_sets {name}: {error}") from None
  if not any(text.read_documents(files, config.data.text_field)):
    raise ConfigError(f"data.eval_sets {name}: {path!r} holds no text")
  corpus = {"kind": "eval_set", "name": path, "text_field": config.data.text_field,
            "files": [[p, os.path.getsize(p), os.stat(p).st_mtime_ns] for p in files]}
  documents = lambda split: text.read_documents(files, config.data.text_field)
  try:
    return text.TokenSource(config, None, corpus, documents, tokenizer=tokenizer, splits=("eval",))
  except ConfigError as error:
    raise ConfigError(f"data.eval_sets {name}: {error}") from None


def bits_per_byte(source, loss: float) -> float | None:
  """Bits per byte of an eval loss in nats per token on `source`'s eval text (None: no text)."""
  tokens_per_byte = getattr(source, "tokens_per_byte", None)
  return None if tokens_per_byte is None else loss / math.log(2) * tokens_per_byte


def figures(source, loss: float, set_losses: dict) -> dict:
  """What an eval metrics row adds to eval_loss: `eval_bpb` (text sources) and `eval_sets`
  ({name: {loss, bpb}}, with data.eval_sets)."""
  row = {}
  bpb = bits_per_byte(source, loss)
  if bpb is not None:
    row["eval_bpb"] = bpb
  if set_losses:
    row["eval_sets"] = {name: {"loss": value, "bpb": bits_per_byte(source.eval_sets[name], value)}
                        for name, value in set_losses.items()}
  return row
