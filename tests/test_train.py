"""train.py end to end on the tiny config: files, resume, W&B read-back, devices, bad input."""
import json
import math
import os
import signal
import subprocess
import sys

import pytest

import train
import wandb_records
from conftest import FAST_40, ROOT, TINY, train_until_fault
from core import rundir
from core.config import ConfigError
from training.loop import FAULT_ENV, faults_from_env

FAST = FAST_40  # 40 steps of 16 x 64 tokens; checkpoints every 10 steps


def run(workdir, *overrides):
  return train.main(["--config", TINY, "--workdir", str(workdir), *FAST, *overrides])


def read_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def read_result(workdir):
  with open(os.path.join(workdir, "result.json")) as f:
    return json.load(f)


@pytest.fixture
def finished_run(finished_tiny_run):
  return finished_tiny_run  # TINY for FAST (conftest.py: one run a session)


def test_a_run_leaves_every_file_spec_names(finished_run):
  for name in ("config.json", "metrics.jsonl", "result.json", "checkpoints"):
    assert os.path.exists(os.path.join(finished_run, name)), name
  result = read_result(finished_run)
  assert result["status"] == "completed"
  assert result["tokens"] == 40 * 16 * 64
  assert result["flops"] == pytest.approx(result["tokens"] * result["flops_per_token"])
  assert result["flops_6nd"] == 6 * result["n_params"] * result["tokens"]
  assert result["n_params_total"] > result["n_params"] > 0
  # The model learns: well below the uniform loss, and never below the source's exact floor.
  assert result["final_eval_loss"] < math.log(64) - 0.3
  assert 0 < result["loss_floor"] < result["final_eval_loss"]
  rows = read_rows(finished_run)
  assert [row["step"] for row in rows] == list(range(5, 41, 5))
  for row in rows:
    assert {"step", "tokens", "flops", "train_loss", "lr", "tokens_per_sec", "mfu"} <= row.keys()
  assert "eval_loss" in rows[-1] and rows[-1]["eval_loss"] == result["final_eval_loss"]
  config = json.load(open(os.path.join(finished_run, "config.json")))
  assert config["model"]["vocab_size"] == 64 and config["train"]["lr"] == 3e-3


def test_rerunning_a_completed_run_exits_at_once(finished_run):
  before = os.path.getmtime(os.path.join(finished_run, "result.json"))
  assert run(finished_run) == 0
  assert os.path.getmtime(os.path.join(finished_run, "result.json")) == before


def test_a_workdir_of_another_config_is_refused_unless_forced(finished_run, capsys):
  assert run(finished_run, "--config.seed=7") == 2
  assert "different config" in capsys.readouterr().err
  assert read_result(finished_run)["status"] == "completed"  # nothing lost


def test_the_fault_hook_reads_its_steps_and_refuses_a_bad_one(monkeypatch):
  monkeypatch.setenv(FAULT_ENV, "SIGTERM@20, SIGSTOP@37:parent")
  assert faults_from_env() == {20: (signal.SIGTERM, False), 37: (signal.SIGSTOP, True)}
  monkeypatch.setenv(FAULT_ENV, "SIGSTOP@0")
  with pytest.raises(ConfigError, match="SIGSTOP@STEP, each optionally :parent"):
    faults_from_env()


@pytest.mark.slow
def test_sigterm_saves_and_the_rerun_equals_an_uninterrupted_run(finished_run, tmp_path):
  """A real SIGTERM to a real process mid-run; the resumed run must match the uninterrupted one."""
  workdir = tmp_path / "interrupted"
  # SIGTERM once the loop has logged its first row (step 5 of 40): the run is mid-way, for sure.
  train_until_fault(["--config", TINY, "--workdir", str(workdir), *FAST], "SIGTERM@5")
  assert not (workdir / "result.json").exists()
  assert run(workdir) == 0
  assert read_result(workdir)["final_eval_loss"] == read_result(finished_run)["final_eval_loss"]
  keys = ("step", "tokens", "train_loss", "lr", "eval_loss", "tasks")  # eval.tasks too
  assert ([{k: r.get(k) for k in keys} for r in read_rows(workdir)]
          == [{k: r.get(k) for k in keys} for r in read_rows(finished_run)])


@pytest.mark.slow
def test_a_branch_seeded_from_its_trunk_equals_the_independent_wsd_run(finished_run, tmp_path):
  """WSD: 40 steps, the last 8 cooling down. A trunk (no cooldown) to step 32, a run directory
  seeded with its checkpoint there and resumed as the 40-step run, ends exactly where the
  independent 40-step run does: same weights, optimizer state and data at step 32."""
  wsd = ["--config.train.schedule=wsd", "--config.train.warmup_tokens=4096"]
  assert run(tmp_path / "independent", *wsd) == 0
  assert run(tmp_path / "trunk", *wsd, "--config.train.tokens=32768",
             "--config.train.cooldown_fraction=0.0", "--config.train.checkpoint_steps=(32,)") == 0
  rundir.seed_from(str(tmp_path / "trunk"), 32, str(tmp_path / "branch"))
  assert run(tmp_path / "branch", *wsd) == 0
  branch, independent = read_result(tmp_path / "branch"), read_result(tmp_path / "independent")
  for key in ("final_eval_loss", "final_train_loss", "tokens", "flops", "config_hash"):
    assert branch[key] == independent[key], key
  assert independent["final_eval_loss"] != read_result(finished_run)["final_eval_loss"]  # not cosine
  rows = {row["step"]: row for row in read_rows(tmp_path / "branch")}
  trunk_rows = read_rows(tmp_path / "trunk")
  assert [rows[row["step"]] for row in trunk_rows] == trunk_rows  # the trunk's rows, then its own
  assert [row["lr"] for row in read_rows(tmp_path / "independent") if row["step"] > 32] == [
      rows[step]["lr"] for step in (35, 40)]


@pytest.mark.slow
def test_wandb_offline_run_reads_back_equal_to_metrics_jsonl(tmp_path):
  workdir = tmp_path / "wb"
  assert run(workdir, "--config.wandb.mode=offline", "--config.train.tokens=10240") == 0
  files = wandb_records.run_files(str(workdir))
  assert len(files) == 1
  logged = [row for row in wandb_records.history(files[0]) if "train_loss" in row]
  rows = read_rows(workdir)
  assert [r["train_loss"] for r in logged] == [r["train_loss"] for r in rows]
  assert [r["tokens"] for r in logged] == [r["tokens"] for r in rows]
  # eval.tasks: W&B holds each task's figures (nested keys joined by "/") on the evaluation rows.
  task = rows[-1]["tasks"]["topic_4shot"]
  assert logged[-1]["tasks/topic_4shot/accuracy"] == task["accuracy"]
  assert logged[-1]["tasks/topic_4shot/gold_loss"] == task["gold_loss"]
  with open(workdir / "wandb_run_id") as f:
    assert wandb_records.run_id(files[0]) == f.read().strip()


@pytest.mark.parametrize("override, message", [
    ("--config.model.nonexistent=1", "unknown config key"),
    ("--config.model.n_heads=3", "n_heads"),
    ("--config.train.tokens=100", "below one batch"),
    ("--config.train.lr=-1.0", "train.lr"),
    ("--config.data.source=text", "path"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, override, message):
  workdir = tmp_path / "never"
  assert run(workdir, override) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1, err
  assert not workdir.exists()


@pytest.mark.slow
def test_eight_devices_with_fsdp_match_one_device(finished_run, tmp_path):
  """Same global batch over a (4 data x 2 fsdp) mesh of 8 CPU devices: same losses to 1e-4."""
  workdir = tmp_path / "eight"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu"}
  command = [sys.executable, "train.py", "--config", TINY, "--workdir", str(workdir), *FAST,
             "--config.mesh.fsdp=2"]
  completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
  assert completed.returncode == 0, completed.stderr[-2000:]
  one, eight = read_rows(finished_run), read_rows(workdir)
  for a, b in zip(one, eight):
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
  assert read_result(workdir)["final_eval_loss"] == pytest.approx(
      read_result(finished_run)["final_eval_loss"], abs=1e-4)
  for name, task in read_result(finished_run)["tasks"].items():  # eval.tasks, rows over 8 devices
    assert read_result(workdir)["tasks"][name]["gold_loss"] == pytest.approx(task["gold_loss"],
                                                                             abs=1e-3)


def test_gradient_accumulation_matches_the_full_batch(finished_run, tmp_path):
  workdir = tmp_path / "accum"
  assert run(workdir, "--config.train.grad_accum=4") == 0
  assert read_result(workdir)["final_eval_loss"] == pytest.approx(
      read_result(finished_run)["final_eval_loss"], abs=1e-4)


def test_continued_pretraining_starts_from_the_run_and_reports_forgetting(finished_run, tmp_path):
  workdir = tmp_path / "continued"
  assert run(workdir, f"--config.init_from={finished_run}", "--config.seed=1",
             "--config.train.tokens=10240") == 0
  fresh_first_loss = read_rows(finished_run)[0]["train_loss"]
  continued_first_loss = read_rows(workdir)[0]["train_loss"]
  # New sequences of the same language: the old weights already beat a fresh model on them.
  assert continued_first_loss < fresh_first_loss - 0.1
  result = read_result(workdir)
  assert result["init_from"] == str(finished_run)
  assert result["original_data_eval_loss_before"] == read_result(finished_run)["final_eval_loss"]
  assert math.isfinite(result["original_data_eval_loss"])


def test_continued_pretraining_refuses_another_shape(finished_run, tmp_path, capsys):
  assert run(tmp_path / "other", f"--config.init_from={finished_run}",
             "--config.model.d_model=32") == 2
  assert "another model shape" in capsys.readouterr().err


def test_generate_cli_samples_from_the_trained_run_with_its_tokenizer(finished_run, capsys):
  from data import load_tokenizer
  from model import generate
  args = ["--workdir", str(finished_run), "--prompt", "abc", "--max-new-tokens", "8", "--json"]
  assert generate.main([*args, "--temperature", "0"]) == 0
  greedy = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert greedy["prompt_tokens"] == load_tokenizer(str(finished_run)).encode("abc")
  assert len(greedy["new_tokens"]) == 8 and all(0 <= t < 64 for t in greedy["new_tokens"])
  assert generate.main([*args, "--temperature", "0"]) == 0  # greedy is deterministic
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == greedy
  assert generate.main([*args, "--max-new-tokens", "100"]) == 0  # past the 64-token context
  assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_tokens"]) == 100
