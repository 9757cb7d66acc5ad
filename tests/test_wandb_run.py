"""W&B offline on, read back from its own files: one run per replica of a group, one history across
a SIGTERM and a SIGKILL, and every way W&B can fail a warning while training completes."""
import json
import os
import socket
import subprocess
import sys

import pytest

import train
import wandb_records
from conftest import HANG_S, ROOT, TINY, tiny_run, train_until_fault
from core import files, rundir

# 20 steps of 16 x 64 tokens; rows every 5 steps, checkpoints every 10; W&B as each test says.
FAST = [*tiny_run(20, checkpoint_every=10, wandb=None), "--config.train.eval_every=10"]
KEYS = ("step", "tokens", "train_loss", "eval_loss")


def read_rows(workdir):
  return files.read_jsonl(os.path.join(workdir, rundir.METRICS))


def logged_rows(rows):
  """W&B history rows that are metrics rows (not W&B's own system rows)."""
  return [row for row in rows if "train_loss" in row]


@pytest.mark.slow
def test_each_replica_of_a_group_is_its_own_run_with_its_own_rows(tmp_path):
  group = ["--config.train.replicas=2", "--config.train.replica_seeds=(0, 1)",
           "--config.train.replica_lrs=(0.003, 0.002)"]
  assert train.main(["--config", TINY, "--workdir", str(tmp_path), *FAST, *group,
                     "--config.wandb.mode=offline", "--config.wandb.group=sweep_g",
                     "--config.wandb.budget=1e10"]) == 0
  assert json.load(open(tmp_path / "group.json"))["status"] == "completed"
  ids = []
  for i, lr in enumerate((0.003, 0.002)):
    workdir = tmp_path / f"replica_{i}"
    (path,) = wandb_records.run_files(str(workdir))
    run, result, rows = wandb_records.run(path), rundir.read_result(str(workdir)), read_rows(workdir)
    ids.append(run["id"])
    assert run["id"] == rundir.read_wandb_run_id(str(workdir))
    assert (run["group"], run["job_type"]) == ("sweep_g", "train")
    config = run["config"]
    assert config["model"]["d_model"] == 64 and config["train"]["lr"] == lr  # the nested config
    assert {k: config[k] for k in ("N", "N_total", "D", "C", "lr", "batch_size", "seed")} == {
        "N": result["n_params"], "N_total": result["n_params_total"], "D": result["tokens"],
        "C": result["flops"], "lr": lr, "batch_size": 16, "seed": i}
    assert (config["budget"], config["family"], config["objective"], config["run_id"]) == (
        1e10, "decoder", "causal_lm", f"replica_{i}")
    history = logged_rows(wandb_records.history(path))
    assert [{k: r.get(k) for k in KEYS} for r in history] == [{k: r.get(k) for k in KEYS}
                                                               for r in rows]
    assert [r["_step"] for r in history] == [r["step"] for r in rows] == [5, 10, 15, 20]
    summary = wandb_records.summary(path)
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert summary["eval_loss"] == {"min": min(evals), "last": evals[-1]}
    assert summary["final_eval_loss"] == result["final_eval_loss"]
    assert summary["status"] == "completed" and summary["wall_seconds"] == result["wall_seconds"]
    # result.json's lr (the peak), tokens and flops leave the history's last values alone.
    assert summary["lr"] == rows[-1]["lr"] != lr and summary["tokens"] == rows[-1]["tokens"]
    assert wandb_records.ending(path) == {"preempting": False, "exit_code": 0}
  assert ids[0] != ids[1]


def argv(workdir):
  return ["--config", TINY, "--workdir", str(workdir), *FAST, "--config.train.tokens=61440",
          "--config.wandb.mode=offline"]


@pytest.mark.slow
def test_a_preempted_then_killed_run_keeps_one_history_in_w_and_b(tmp_path):
  """60 steps: SIGTERM after the first row (exit 143, checkpointed), SIGKILL after the row past
  the next checkpoint (step 15), rerun."""
  workdir = tmp_path / "run"
  train_until_fault(argv(workdir), "SIGTERM@5")
  train_until_fault(argv(workdir), "SIGKILL@15")
  assert train.main(argv(workdir)) == 0
  rows = read_rows(workdir)
  assert [r["step"] for r in rows] == list(range(5, 61, 5))
  paths = wandb_records.run_files(str(workdir))
  assert len(paths) == 3  # one offline folder per segment, all of one run
  run_id = rundir.read_wandb_run_id(str(workdir))
  assert [os.path.basename(p) for p in paths] == [f"run-{run_id}.wandb"] * 3
  assert wandb_records.run_id(paths[0]) == wandb_records.run_id(paths[2]) == run_id
  preempted, killed, finished = (wandb_records.ending(p) for p in paths)
  assert preempted == {"preempting": True, "exit_code": rundir.EXIT_PREEMPTED}
  assert killed["exit_code"] is None and finished == {"preempting": False, "exit_code": 0}
  # Synced in order, every step once, tokens increasing, equal to metrics.jsonl.
  synced = logged_rows(wandb_records.synced_history(paths))
  assert [{k: r.get(k) for k in KEYS} for r in synced] == [{k: r.get(k) for k in KEYS} for r in rows]
  assert all(a["tokens"] < b["tokens"] for a, b in zip(synced, synced[1:]))
  # The last segment is complete on its own: the killed segment's rows are logged again.
  assert [r["_step"] for r in logged_rows(wandb_records.history(paths[-1]))] == [
      r["step"] for r in rows]


def closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("env, overrides", [
    ({"WANDB_MODE": ""}, []),  # wandb's settings refuse an empty mode
    ({}, ["--config.wandb.mode=online"]),  # no API key, no .netrc entry for this server
    ({"WANDB_API_KEY": "x" * 40}, ["--config.wandb.mode=online", "--config.wandb.init_timeout=2"]),
], ids=["empty WANDB_MODE", "not logged in", "server does not answer"])
def test_a_failing_w_and_b_is_one_warning_and_the_run_completes(tmp_path, env, overrides):
  base = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")}
  # A server nobody listens on: nothing leaves this machine, and no stored login matches it.
  env = {**base, "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}", **env}
  command = [sys.executable, "train.py", "--config", TINY, "--workdir", str(tmp_path), *FAST,
             "--config.train.tokens=5120", *overrides]
  completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=HANG_S)
  assert completed.returncode == 0, completed.stderr[-2000:]
  warnings = [line for line in completed.stderr.splitlines() if "W&B" in line]
  assert len(warnings) == 1 and warnings[0].startswith("warning: W&B is off ("), completed.stderr
  assert "Traceback" not in completed.stderr
  assert rundir.read_result(str(tmp_path))["status"] == "completed"
  assert [r["step"] for r in read_rows(tmp_path)] == [5]
