"""Crashes, divergence and multi-process runs, each caused for real: kills, NaNs, corrupt files."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import train
from conftest import ROOT
from core import files

pytestmark = pytest.mark.slow  # every test here trains real runs in real processes

TINY = os.path.join(ROOT, "experiments", "tiny.py")
# 60 steps of 16 x 64 tokens, checkpoints every 20.
FAST = ["--config.train.tokens=61440", "--config.train.log_every=5",
        "--config.train.checkpoint_every=20", "--config.train.eval_tokens=2048",
        "--config.wandb.mode=disabled"]
KEYS = ("step", "tokens", "train_loss", "lr", "eval_loss")


def command(workdir, *overrides):
  return [sys.executable, "train.py", "--config", TINY, "--workdir", str(workdir), *FAST, *overrides]


def rows(workdir):
  return [{k: row.get(k) for k in KEYS} for row in files.read_jsonl(os.path.join(workdir,
                                                                               "metrics.jsonl"))]


def result(workdir):
  with open(os.path.join(workdir, "result.json")) as f:
    return json.load(f)


def wait_for_checkpoint(workdir, step, process, timeout=180):
  path = os.path.join(workdir, "checkpoints", str(step))
  deadline = time.time() + timeout
  while not os.path.isdir(path):
    assert time.time() < deadline and process.poll() is None, "no checkpoint appeared"
    time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  assert train.main(command(workdir)[2:]) == 0
  return workdir


def test_sigkill_at_a_random_step_then_rerun_matches_the_uninterrupted_run(reference, tmp_path):
  workdir = tmp_path / "killed"
  process = subprocess.Popen(command(workdir), cwd=ROOT, stderr=subprocess.DEVNULL)
  wait_for_checkpoint(workdir, 20, process)
  # Killed at a random logged step after the first checkpoint, well before the last of 60 (a
  # random delay instead would often outlast a run this short).
  kill_at = random.choice(range(25, 51, 5))
  deadline = time.time() + 120
  while not any(row["step"] >= kill_at for row in files.read_jsonl(workdir / "metrics.jsonl")):
    assert time.time() < deadline and process.poll() is None, f"step {kill_at} never came"
    time.sleep(0.005)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (workdir / "result.json").exists()
  assert train.main(command(workdir)[2:]) == 0
  assert result(workdir)["final_eval_loss"] == result(reference)["final_eval_loss"]
  assert rows(workdir) == rows(reference)


def test_a_half_written_checkpoint_is_ignored_and_the_previous_one_used(reference, tmp_path):
  """What a kill during a save leaves: orbax's temporary directory, with a truncated file."""
  workdir = tmp_path / "half"
  shutil.copytree(reference, workdir)
  shutil.rmtree(workdir / "checkpoints" / "60")
  os.remove(workdir / "result.json")
  partial = workdir / "checkpoints" / "60.orbax-checkpoint-tmp-1234"
  shutil.copytree(workdir / "checkpoints" / "40", partial)
  for path in partial.rglob("*"):
    if path.is_file() and path.stat().st_size > 16:
      with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
  # A line cut short by the same crash at the end of metrics.jsonl.
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 61, "tokens": 6')
  assert train.main(command(workdir)[2:]) == 0
  assert rows(workdir) == rows(reference)
  assert result(workdir)["final_eval_loss"] == result(reference)["final_eval_loss"]


def test_a_diverging_run_stops_early_with_its_last_good_metrics(tmp_path):
  workdir = tmp_path / "diverged"
  # The lr warms up to 3 over 40 steps: good rows at first, then the loss blows up (step ~15).
  diverging = ["--config.train.lr=3.0", "--config.train.grad_clip=1e9",
               "--config.train.warmup_tokens=40960"]
  assert train.main(command(workdir, *diverging)[2:]) == 0
  outcome = result(workdir)
  assert outcome["status"] == "diverged"
  assert outcome["steps"] < 60
  logged = rows(workdir)
  assert logged, "the run diverged before its first row: nothing to check"
  assert all(row["train_loss"] < 3 * 4.16 for row in logged)  # only good rows were written
  assert outcome["final_train_loss"] == (logged[-1]["train_loss"] if logged else None)


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch_two_processes(workdir, port):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
         "JAX_NUM_PROCESSES": "2", "JAX_HEARTBEAT_TIMEOUT_SECONDS": "10"}
  return [subprocess.Popen(command(workdir), cwd=ROOT, env={**env, "JAX_PROCESS_ID": str(i)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
          for i in range(2)]


def test_two_processes_match_one_and_survive_losing_one(reference, tmp_path):
  """Data parallelism over two jax.distributed processes (CPU collectives over localhost).

  Killing one process makes the other exit with an error within the heartbeat timeout (10 s
  here); rerunning both resumes from the last checkpoint and ends exactly where one process does.
  """
  workdir = tmp_path / "two"
  processes = launch_two_processes(workdir, free_port())
  wait_for_checkpoint(workdir, 20, processes[0])
  processes[1].send_signal(signal.SIGKILL)
  killed_at = time.time()
  _, stderr = processes[0].communicate(timeout=120)
  processes[1].wait()
  assert processes[0].returncode != 0, "the survivor finished alone"
  assert time.time() - killed_at < 60
  # The survivor records the failure (the sweep lists it); the rerun retries the run.
  assert result(workdir)["status"] == "failed"
  rerun = launch_two_processes(workdir, free_port())
  for process in rerun:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
  assert result(workdir)["final_eval_loss"] == pytest.approx(result(reference)["final_eval_loss"],
                                                            abs=1e-5)
  for ours, theirs in zip(rows(workdir), rows(reference), strict=True):
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)


def test_a_write_that_runs_out_of_space_leaves_the_previous_file_intact(tmp_path):
  """A real failed write: the file-size limit (RLIMIT_FSIZE) stops it part-way, as a full disk would."""
  path = tmp_path / "result.json"
  files.write_json_atomic(str(path), {"status": "completed", "final_eval_loss": 2.5})
  script = f"""
import resource, signal, sys
sys.path.insert(0, {ROOT!r})
from core import files
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
  files.write_json_atomic({str(path)!r}, {{"status": "failed", "padding": "x" * 100_000}})
except OSError as error:
  print("write failed:", error.strerror)
"""
  completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=120)
  assert "write failed" in completed.stdout, completed.stderr[-2000:]
  assert result(tmp_path) == {"status": "completed", "final_eval_loss": 2.5}
  assert os.listdir(tmp_path) == ["result.json"]  # no partial file left behind
