"""Groups of replicas (train.replicas): K models in one jitted step equal K single runs.

Also the property that makes sweeps compile once per shape: a run's seed, lr and budget are inputs
of the compiled programs, so runs that differ only in them lower to the same program.
"""
import json
import os
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import train
from conftest import FAST_20, TINY
from core.config import load_config
from model import loading
from training import plan as plan_lib
from training.sharding import make_mesh
from training.steps import Trainer

pytestmark = pytest.mark.slow  # every test here trains real runs in real processes

FAST = FAST_20  # 20 steps of 16 x 64 tokens; rows every 5 steps, checkpoints every 10
GROUP = ["--config.train.replicas=2", "--config.train.replica_seeds=(0, 1)",
         "--config.train.replica_lrs=(0.003, 0.002)"]
SINGLES = (["--config.seed=0", "--config.train.lr=0.003"], ["--config.seed=1", "--config.train.lr=0.002"])
TOLERANCE = 1e-5  # vmapped and single programs may round differently; measured gaps are ~1e-7


def run(workdir, *overrides):
  return train.main(["--config", TINY, "--workdir", str(workdir), *FAST, *overrides])


def read(path):
  with open(path) as f:
    return json.load(f) if path.endswith(".json") else [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A group of two replicas and the two single runs it stands for."""
  root = tmp_path_factory.mktemp("replicas")
  assert run(root / "group", *GROUP) == 0
  for i, overrides in enumerate(SINGLES):
    assert run(root / f"single_{i}", *overrides) == 0
  return root


def test_a_group_equals_its_single_runs(runs):
  group = read(str(runs / "group" / "group.json"))
  assert group["status"] == "completed" and len(group["replicas"]) == 2
  for i in range(2):
    replica, single = runs / "group" / f"replica_{i}", runs / f"single_{i}"
    for name in ("config.json", "metrics.jsonl", "result.json", "tokenizer.json", "checkpoints"):
      assert (replica / name).exists(), name
    mine, theirs = read(str(replica / "result.json")), read(str(single / "result.json"))
    # The replica's directory is the single run's: same config hash, seed, lr, counts.
    for key in ("status", "config_hash", "seed", "lr", "n_params", "tokens", "flops", "steps"):
      assert mine[key] == theirs[key], key
    assert group["replicas"][i]["config_hash"] == theirs["config_hash"]
    for key in ("final_train_loss", "final_eval_loss"):
      assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE)
    for name, task in theirs["tasks"].items():  # eval.tasks: each replica scored as its single run
      assert mine["tasks"][name]["gold_loss"] == pytest.approx(task["gold_loss"], abs=1e-4)
      assert abs(mine["tasks"][name]["accuracy"] - task["accuracy"]) <= 1 / task["examples"]
    rows, single_rows = read(str(replica / "metrics.jsonl")), read(str(single / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [r["step"] for r in single_rows] == [5, 10, 15, 20]
    for a, b in zip(rows, single_rows):
      assert a["train_loss"] == pytest.approx(b["train_loss"], abs=TOLERANCE)
      assert a["lr"] == pytest.approx(b["lr"], rel=1e-6)
  # Different seeds and lrs really trained different models.
  finals = [read(str(runs / "group" / f"replica_{i}" / "result.json"))["final_train_loss"]
            for i in range(2)]
  assert abs(finals[0] - finals[1]) > 1e-3


def test_each_replica_row_reports_the_groups_throughput(runs):
  """Every replica's row says the group's tokens/s and MFU (both models' tokens), and `replicas`."""
  rows = [read(str(runs / "group" / f"replica_{i}" / "metrics.jsonl")) for i in range(2)]
  for a, b in zip(*rows):
    assert a["replicas"] == b["replicas"] == 2
    assert (a["tokens_per_sec"], a["mfu"], a["mfu_6n"]) == (b["tokens_per_sec"], b["mfu"], b["mfu_6n"])
  assert all("replicas" not in row for row in read(str(runs / "single_0" / "metrics.jsonl")))


def test_all_replicas_vmapped_together_equal_the_single_runs(runs, tmp_path):
  """train.replica_batch=2 puts both replicas in one vmap (the accelerator default; CPUs map them
  one at a time): same results to the tolerance."""
  assert run(tmp_path / "vmapped", *GROUP, "--config.train.replica_batch=2") == 0
  for i in range(2):
    mine = read(str(tmp_path / "vmapped" / f"replica_{i}" / "metrics.jsonl"))
    theirs = read(str(runs / f"single_{i}" / "metrics.jsonl"))
    assert [r["step"] for r in mine] == [r["step"] for r in theirs]
    for a, b in zip(mine, theirs):
      for key in ("train_loss", "eval_loss"):
        assert (a.get(key) is None) == (b.get(key) is None)
        if a.get(key) is not None:
          assert a[key] == pytest.approx(b[key], abs=TOLERANCE)


def test_a_replica_directory_is_a_finished_single_run(runs):
  """Rerunning replica 1's single command on its directory finds it complete."""
  replica = runs / "group" / "replica_1"
  before = os.path.getmtime(replica / "result.json")
  assert run(replica, *SINGLES[1]) == 0
  assert os.path.getmtime(replica / "result.json") == before
  assert run(runs / "group", *GROUP) == 0  # and the group is complete as a whole


def final_params(workdir):
  model, _ = loading.load_model(str(workdir))
  return jax.tree.leaves(nnx.state(model, nnx.Param))


def test_a_diverged_replica_stops_and_the_others_resume_exactly(runs, tmp_path):
  """Replica 0's lr is absurd: it is written off while replica 1 trains on, to the weights of its
  single run; then the group is cut back to its step-10 checkpoint and rerun, and replica 1 ends
  exactly as before."""
  workdir = tmp_path / "diverging"
  overrides = ["--config.train.replicas=2", "--config.train.replica_seeds=(1, 0)",
               "--config.train.replica_lrs=(1e4, 0.003)"]
  assert run(workdir, *overrides) == 0
  diverged = read(str(workdir / "replica_0" / "result.json"))
  assert diverged["status"] == "diverged"
  assert len(read(str(workdir / "replica_0" / "metrics.jsonl"))) < 4
  finished = read(str(workdir / "replica_1" / "result.json"))
  assert finished["status"] == "completed"
  # Replica 1 is seed 0 at lr 3e-3: the first single run, in its results and its own checkpoint.
  assert finished["final_eval_loss"] == pytest.approx(
      read(str(runs / "single_0" / "result.json"))["final_eval_loss"], abs=TOLERANCE)
  for mine, theirs in zip(final_params(workdir / "replica_1"), final_params(runs / "single_0")):
    np.testing.assert_allclose(mine, theirs, atol=TOLERANCE)
  assert read(str(workdir / "group.json"))["replicas"][0]["status"] == "diverged"

  shutil.rmtree(workdir / "checkpoints" / "20")
  os.remove(workdir / "group.json")
  os.remove(workdir / "replica_1" / "result.json")
  diverged_rows = read(str(workdir / "replica_0" / "metrics.jsonl"))
  assert run(workdir, *overrides) == 0
  assert read(str(workdir / "replica_1" / "result.json"))["final_eval_loss"] == finished[
      "final_eval_loss"]
  assert [r["step"] for r in read(str(workdir / "replica_1" / "metrics.jsonl"))] == [5, 10, 15, 20]
  assert read(str(workdir / "replica_0" / "metrics.jsonl")) == diverged_rows  # never relogged
  assert read(str(workdir / "replica_0" / "result.json"))["status"] == "diverged"


def lowered_programs(*overrides):
  """The text of the init, train and eval programs a run would compile (nothing is compiled)."""
  config = load_config(TINY, [*FAST, *overrides])
  config, _, model_cfg, plan = plan_lib.resolve(config, jax.device_count())
  trainer = Trainer(config, model_cfg, plan, make_mesh(config))
  batch = jax.ShapeDtypeStruct((plan.batch_size, plan.seq_len + 1), np.int32,
                               sharding=trainer.batch_sharding)
  return (trainer._init.lower(trainer.run).as_text(),
          trainer.train_step.lower(trainer.abstract_state, batch).as_text(),
          trainer.eval_step.lower(trainer.abstract_state["params"], batch).as_text())


def test_runs_differing_in_seed_lr_and_budget_share_their_compiled_programs():
  """Same programs, so the persistent cache serves one run's compilation to every other."""
  assert lowered_programs() == lowered_programs(
      "--config.seed=5", "--config.train.lr=0.01", "--config.train.tokens=40960",
      "--config.train.warmup_tokens=3000")
  assert lowered_programs()[1] != lowered_programs("--config.model.d_model=32")[1]


@pytest.mark.parametrize("overrides, message", [
    (["--config.train.replicas=2", "--config.train.replica_lrs=(0.001,)"], "one per replica"),
    (["--config.train.replica_seeds=(1, 2)"], "need train.replicas > 1"),
    (["--config.train.replicas=2", "--config.train.replica_lrs=(0.001, -1.0)"], "positive"),
    (["--config.train.replicas=0"], "train.replicas"),
    (["--replica-workdirs", "a"], "needs train.replicas > 1"),
    (["--config.train.replicas=2", "--replica-workdirs", "a", "b", "c"], "one per replica"),
])
def test_bad_replica_settings_are_one_line_and_exit_2(tmp_path, capsys, overrides, message):
  assert run(tmp_path / "never", *overrides) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1, err
  assert not (tmp_path / "never").exists()
