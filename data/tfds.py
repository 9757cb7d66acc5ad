"""Any tfds text data set by name, read through `tfds.data_source` (array_record, no tensorflow).

The builder's "train" split trains; its "validation" split, else its "test" split, evaluates; a
builder with neither holds out config.data.eval_fraction of the train examples (text.eval_mask).
Each example's config.data.text_field is one document. The documents are pre-tokenised into the
same memory-mapped cache as local text (text.TokenSource), keyed by the data set's full name
(with version), its data_dir and the split sizes.

tfds prepares the data set on first use (`download_and_prepare`, which needs the network for
published data sets); later runs read the prepared array_record files in config.data.tfds_dir.
"""
import os

import numpy as np

from data import text
from core.config import ConfigError


def make_source(config, workdir: str | None = None) -> text.TokenSource:
  """The data.Source of the tfds data set config.data.tfds_name."""
  name = config.data.tfds_name
  if not name:
    raise ConfigError("data.source=tfds needs data.tfds_name, e.g. --config.data.tfds_name=lm1b")
  import tensorflow_datasets as tfds  # slow to import; only tfds runs pay for it

  data_dir = os.path.expanduser(config.data.tfds_dir) if config.data.tfds_dir else None

  def open_split(split):
    try:
      return tfds.data_source(name, split=split, data_dir=data_dir,
                              builder_kwargs={"file_format": "array_record"})
    except tfds.core.registered.DatasetNotFoundError:
      raise ConfigError(
          f"unknown tfds data set {name!r}; list the names with `python -c \"import tensorflow_datasets as "
          "tfds; print(tfds.list_builders())\"` or see https://www.tensorflow.org/datasets/catalog") from None
    except ValueError as e:
      if "Unknown split" not in str(e):
        raise
      raise ConfigError(f"tfds data set {name!r} has no {split!r} split: {e}".replace("\n", " ")) from None

  train = open_split("train")
  info = train.dataset_info
  eval_split = next((s for s in ("validation", "test") if s in info.splits), None)
  if eval_split:
    evaluation = open_split(eval_split)
    sources = {"train": (train, range(len(train))), "eval": (evaluation, range(len(evaluation)))}
  else:
    held_out = text.eval_mask(len(train), config.data.eval_fraction, f"the train split of tfds {name!r}")
    sources = {"train": (train, np.flatnonzero(~held_out).tolist()),
               "eval": (train, np.flatnonzero(held_out).tolist())}

  def documents(split):
    source, indices = sources[split]
    for i in indices:
      example = source[i]
      if config.data.text_field not in example:
        raise ConfigError(f"tfds {name!r} examples have no field {config.data.text_field!r}; set "
                          f"data.text_field to one of {sorted(example)}")
      value = example[config.data.text_field]
      yield value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

  corpus = {"kind": "tfds", "name": info.full_name, "data_dir": str(info.data_dir),
            "text_field": config.data.text_field, "train_split": "train",
            "eval_split": eval_split or f"train (held-out {config.data.eval_fraction})",
            "train_examples": len(sources["train"][1]), "eval_examples": len(sources["eval"][1])}
  return text.TokenSource(config, workdir, corpus, documents)
