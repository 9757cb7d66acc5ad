"""Run identity (training/plan.py): a run's id hashes its difference from the defaults, so a key
added with a default changes no recorded id; directories written under the legacy hash are found."""
import json
import os

import jax
import pytest

import sweep
import train
from conftest import ROOT
from core import defaults, rundir
from core.config import load_config
from sweeps import kinds
from sweeps.processes import run_dir_of
from test_sweep import SHORT, micro_config, sweep_command
from training import plan as plan_lib

TINY = os.path.join(ROOT, "experiments", "tiny.py")
FAST = ["--config.train.tokens=40960", "--config.train.log_every=5",
        "--config.train.checkpoint_every=10", "--config.train.eval_tokens=2048",
        "--config.wandb.mode=disabled"]


@pytest.fixture
def new_knob(monkeypatch):
  """The defaults gain train.new_knob = 1.0, as an upgrade adding a key with a default would."""
  original = defaults.get_config

  def with_knob():
    config = original()
    config.train.new_knob = 1.0
    return config
  monkeypatch.setattr(defaults, "get_config", with_knob)


def resolved(*overrides):
  config = load_config(TINY, [*FAST, *overrides])
  return plan_lib.resolve(config, jax.device_count())[0]


def test_a_key_added_with_a_default_changes_no_id(request):
  before = resolved()
  request.getfixturevalue("new_knob")
  after = resolved()
  assert after.train.new_knob == 1.0 and "new_knob" not in before.train
  assert plan_lib.config_hash(after) == plan_lib.config_hash(before)
  assert plan_lib.legacy_config_hash(after) == plan_lib.legacy_config_hash(before)
  knob = resolved("--config.train.new_knob=2.0")
  assert plan_lib.config_hash(knob) != plan_lib.config_hash(before)
  assert plan_lib.legacy_config_hash(knob) != plan_lib.legacy_config_hash(before)


def test_the_id_changes_with_what_a_run_computes_only():
  base = plan_lib.config_hash(resolved())
  assert plan_lib.config_hash(resolved("--config.train.weight_decay=0.2")) != base
  assert plan_lib.config_hash(resolved("--config.seed=1")) != base
  # Set to its default explicitly, or a key of how the run is watched: the same run.
  assert plan_lib.config_hash(resolved("--config.train.grad_clip=1.0")) == base
  for watched in ("--config.name=other", "--config.train.log_every=10",
                  "--config.wandb.project=x", "--config.recipe.min_steps=7"):
    assert plan_lib.config_hash(resolved(watched)) == base, watched


def test_the_legacy_hash_is_the_hash_run_directories_were_written_under():
  # experiments/tiny.py resolved, hashed by training/plan.py's config_hash of commit 8ae1986.
  assert plan_lib.legacy_config_hash(resolved()) == "6915ea86c7a1e65a"


def test_a_sweep_finds_its_runs_trunks_and_groups_under_their_legacy_ids(tmp_path, monkeypatch):
  config, overrides = micro_config("--config.sweep.n_params=(3e3, 2e4)",
                                   "--config.sweep.tokens=(1280, 2560)", "--config.sweep.seeds=(0, 1)",
                                   "--config.sweep.branches=True", "--config.train.schedule=wsd")
  new = kinds.plan_sweep(config, overrides, str(tmp_path))
  with monkeypatch.context() as patch:  # the plan as it was made before config_hash
    patch.setattr(plan_lib, "config_hash", plan_lib.legacy_config_hash)
    legacy = kinds.plan_sweep(config, overrides, str(tmp_path))
  ids = lambda rows: [(row.run_id, row.trunk, row.group, row.after) for row in rows]
  assert {row.kind for row in new} == {"", "trunk"} and any(row.group for row in new)
  assert not set(ids(new)) & set(ids(legacy))
  for row in legacy:
    os.makedirs(run_dir_of(str(tmp_path), row))
  assert ids(kinds.plan_sweep(config, overrides, str(tmp_path))) == ids(legacy)
  # Where the new directory exists too, it is the one used.
  for row in new:
    os.makedirs(run_dir_of(str(tmp_path), row))
  assert ids(kinds.plan_sweep(config, overrides, str(tmp_path))) == ids(new)


@pytest.mark.slow
def test_train_py_reports_completed_runs_after_a_key_is_added_and_legacy_ones(tmp_path, request,
                                                                             capsys):
  run = lambda workdir, *overrides: train.main(["--config", TINY, "--workdir", str(workdir),
                                                *FAST, *overrides])
  assert run(tmp_path / "run") == 0
  recorded = json.load(open(tmp_path / "run" / "config.json"))
  # A directory of before config_hash: no recipe section, and (then left out of the hash) a
  # finetune section that a full fine-tuning ignores but that differs from today's defaults.
  legacy_dir = tmp_path / "legacy"
  os.makedirs(legacy_dir)
  legacy_config = {key: value for key, value in recorded.items() if key != "recipe"}
  legacy_config["finetune"] = {**legacy_config["finetune"], "lora_rank": 2}
  json.dump(legacy_config, open(legacy_dir / "config.json", "w"))
  rundir.write_result(str(legacy_dir), json.load(open(tmp_path / "run" / "result.json")))
  config = resolved()
  assert plan_lib.config_hash(rundir.read_config(str(legacy_dir))) != plan_lib.config_hash(config)
  request.getfixturevalue("new_knob")
  capsys.readouterr()
  for workdir in ("run", "legacy"):
    mtime = os.path.getmtime(tmp_path / workdir / "result.json")
    assert run(tmp_path / workdir) == 0
    assert "already holds a completed run" in capsys.readouterr().err
    assert os.path.getmtime(tmp_path / workdir / "result.json") == mtime
  assert run(tmp_path / "run", "--config.train.new_knob=2.0") == rundir.EXIT_BAD_INPUT
  assert "different config" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_skips_its_completed_runs_after_a_key_is_added(tmp_path, request, capsys):
  argv = sweep_command(tmp_path, f"--config.sweep.tokens=({SHORT}, {2 * SHORT})")[2:]
  sweep.main(argv)
  results = sorted((tmp_path / "runs").glob("*/result.json"))
  assert len(results) == 2
  mtimes = [os.path.getmtime(path) for path in results]
  request.getfixturevalue("new_knob")
  capsys.readouterr()
  sweep.main(argv)
  assert "2 of 2 runs already finished; 0 to train" in capsys.readouterr().out
  assert [os.path.getmtime(path) for path in results] == mtimes
