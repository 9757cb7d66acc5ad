"""The tfds source, offline: a tiny array_record builder prepared in tmp_path, and tfds.testing.mock_data."""
import re

import numpy as np
import pytest

import data
from core.config import ConfigError
from experiments import base

tfds = pytest.importorskip("tensorflow_datasets")


class ScalingTestText(tfds.core.GeneratorBasedBuilder):
  """Train documents 0..39 and validation documents 100..105; document i is its number repeated."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"body": tfds.features.Text(), "number": tfds.features.Scalar(dtype=np.int32)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(range(40)),
            "validation": self._generate_examples(range(100, 106))}

  def _generate_examples(self, numbers):
    for i in numbers:
      yield i, {"body": f"{i:03d} " * 10, "number": i}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("tfds")
  ScalingTestText(data_dir=str(directory), file_format="array_record").download_and_prepare()
  return directory


def config_for(tmp_path, name, tfds_dir="", text_field="body"):
  config = base.get_config()
  config.data.source = "tfds"
  config.data.tfds_name = name
  config.data.tfds_dir = str(tfds_dir)
  config.data.text_field = text_field
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.eval_fraction = 0.1
  config.train.seq_len = 12
  return config


def numbers_in(source, rows):
  return {int(m) for row in rows for m in re.findall(r"\d{3}", source.tokenizer.decode(row[row != 256]))}


def test_local_builder_trains_on_train_and_evaluates_on_validation(tmp_path, data_dir):
  config = config_for(tmp_path, "scaling_test_text", data_dir)
  source = data.make_source(config, str(tmp_path / "run"))
  described = source.describe()
  assert described["kind"] == "tfds" and described["name"] == "scaling_test_text/1.0.0"
  assert described["eval_split"] == "validation"
  assert (described["train_documents"], described["eval_documents"]) == (40, 6)
  assert described["train_tokens"] == 40 * 41  # ten "NNN " and an end-of-document id each
  assert numbers_in(source, source.sequences("train", 0, 300)) == set(range(40))
  assert numbers_in(source, source.sequences("eval", 0, 100)) == set(range(100, 106))
  block = source.sequences("train", 7, 9)
  parts = [source.sequences("train", 7, 2), source.sequences("train", 9, 7)]
  np.testing.assert_array_equal(block, np.concatenate(parts))
  again = data.make_source(config)
  assert again.cache == source.cache
  np.testing.assert_array_equal(again.sequences("train", 7, 9), block)
  assert data.load_tokenizer(str(tmp_path / "run")).vocab_size == 257


def test_mock_data_holds_out_a_share_of_train(tmp_path):
  with tfds.testing.mock_data(num_examples=50):
    source = data.make_source(config_for(tmp_path, "lm1b", text_field="text"))
  described = source.describe()
  assert described["eval_split"].startswith("train (held-out")
  assert (described["train_documents"], described["eval_documents"]) == (45, 5)
  rows = source.sequences("eval", 0, 20)
  assert rows.shape == (20, 13) and rows.dtype == np.int32
  assert 256 in source.sequences("train", 0, 50)  # document boundaries are in the stream
  assert source.loss_floor(4) is None


def test_errors_are_one_line_config_errors(tmp_path, data_dir):
  with pytest.raises(ConfigError, match="unknown tfds data set 'no_such_corpus_xyz'.*list_builders") as error:
    data.make_source(config_for(tmp_path, "no_such_corpus_xyz", data_dir))
  assert "\n" not in str(error.value)
  with pytest.raises(ConfigError, match=r"no field 'text'.*\['body', 'number'\]"):
    data.make_source(config_for(tmp_path, "scaling_test_text", data_dir, text_field="text"))
  with pytest.raises(ConfigError, match="needs data.tfds_name"):
    data.make_source(config_for(tmp_path, ""))
