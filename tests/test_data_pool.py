"""A finite pool read in epochs (data.unique_tokens, data/pool.py): every source, exact order, bad input."""
import json
import os

import numpy as np
import pytest

import data
import train
from conftest import FAST_20, TINY
from core import defaults
from core.config import ConfigError, load_config
from data import pool
from training import plan as plan_lib

SEQ = 64  # TINY's seq_len


def tiny(*overrides):
  return load_config(TINY, list(overrides))


def test_every_epoch_reads_the_whole_pool_once_in_its_own_order():
  source = data.make_source(tiny("--config.data.unique_tokens=" + str(40 * SEQ)))
  assert isinstance(source, pool.Pool) and source.n_sequences == 40
  indices = source.pool_indices(0, 120)
  for epoch in range(3):
    assert sorted(indices[40 * epoch:40 * (epoch + 1)]) == list(range(40))
  assert not np.array_equal(indices[:40], indices[40:80])  # a fresh order each epoch
  fresh = data.make_source(tiny()).sequences("train", 0, 40)
  rows = source.sequences("train", 0, 120)
  np.testing.assert_array_equal(rows, fresh[indices])  # the pool is the source's first P sequences


def test_a_batch_is_a_pure_function_of_seed_and_index():
  config = tiny(f"--config.data.unique_tokens={40 * SEQ}")
  whole = data.make_source(config).sequences("train", 30, 60)
  again = data.make_source(config)  # a new process: nothing cached
  parts = np.concatenate([again.sequences("train", 30 + k, 1) for k in range(60)])
  np.testing.assert_array_equal(whole, parts)
  other_seed = data.make_source(tiny(f"--config.data.unique_tokens={40 * SEQ}", "--config.seed=1"))
  assert not np.array_equal(other_seed.pool_indices(0, 40), again.pool_indices(0, 40))


def test_eval_sequences_are_the_sources_own():
  pooled = data.make_source(tiny(f"--config.data.unique_tokens={40 * SEQ}"))
  fresh = data.make_source(tiny())
  np.testing.assert_array_equal(pooled.sequences("eval", 0, 8), fresh.sequences("eval", 0, 8))


def test_the_figures_runs_record():
  source = data.make_source(tiny(f"--config.data.unique_tokens={40 * SEQ}"))
  assert pool.figures(source, 160 * SEQ) == {"unique_tokens": 40 * SEQ, "epochs": 4.0}
  assert pool.figures(source, 20 * SEQ) == {"unique_tokens": 20 * SEQ, "epochs": 1.0}
  assert pool.figures(data.make_source(tiny()), 1000) == {"unique_tokens": 1000, "epochs": 1.0}


def test_the_key_at_its_default_changes_no_run_id():
  config = tiny()
  without = tiny()
  del without.data["unique_tokens"]
  assert plan_lib.config_hash(config) == plan_lib.config_hash(without)
  assert plan_lib.legacy_config_hash(config) == plan_lib.legacy_config_hash(without)
  pooled = tiny(f"--config.data.unique_tokens={40 * SEQ}")
  assert plan_lib.config_hash(pooled) != plan_lib.config_hash(config)
  assert defaults.get_config().data.unique_tokens == 0


@pytest.mark.parametrize("overrides, message", [
    ([f"--config.data.unique_tokens={15 * SEQ}"], "fewer than one batch of 16"),
    (["--config.data.unique_tokens=10"], "below one sequence"),
    (["--config.data.unique_tokens=-5"], "must be >= 0"),
])
def test_a_pool_below_one_batch_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, overrides,
                                                                      message):
  workdir = tmp_path / "never"
  assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST_20, *overrides]) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1, err
  assert not workdir.exists()


def test_a_pool_larger_than_a_text_split_is_one_line_exit_2(tmp_path, capsys):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("\n\n".join(f"paragraph {i} " + "words " * 40 for i in range(40)))
  workdir = tmp_path / "never"
  common = ["--config", TINY, "--workdir", str(workdir), *FAST_20, "--config.data.source=text",
            f"--config.data.path={corpus}", f"--config.data.cache_dir={tmp_path / 'cache'}",
            "--config.data.eval_fraction=0.1"]
  assert train.main([*common, "--config.data.unique_tokens=10000000"]) == 2
  err = capsys.readouterr().err.strip()
  assert "larger than the source's train split" in err and len(err.splitlines()) == 1, err
  assert not workdir.exists()
  source = data.make_source(load_config(TINY, [arg for arg in common[4:] if arg.startswith(
      "--config.data")] + [f"--config.data.unique_tokens={16 * SEQ}"]))
  assert source.n_sequences == 16 and source.train_tokens > 16 * SEQ


@pytest.mark.slow
def test_a_pooled_run_records_epochs_in_its_rows_and_result(tmp_path):
  workdir = tmp_path / "pooled"
  assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST_20,
                     f"--config.data.unique_tokens={80 * SEQ}"]) == 0  # 320 sequences: 4 epochs
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    last = [json.loads(line) for line in f][-1]
  assert last["epochs"] == 4.0 and last["unique_tokens"] == 80 * SEQ
  with open(os.path.join(workdir, "result.json")) as f:
    result = json.load(f)
  assert result["epochs"] == 4.0 and result["unique_tokens"] == 80 * SEQ
  assert result["data"]["pool_sequences"] == 80
