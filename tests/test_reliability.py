"""Crashes, divergence and multi-process runs, each caused for real: kills, NaNs, corrupt files."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

import train
from conftest import FAST_60, HANG_S, ROOT, TINY, rows, train_until_fault, with_fault
from core import files

pytestmark = pytest.mark.slow  # every test here trains real runs in real processes

FAST = FAST_60  # 60 steps of 16 x 64 tokens, checkpoints every 20


def command(workdir, *overrides):
  return [sys.executable, "train.py", "--config", TINY, "--workdir", str(workdir), *FAST, *overrides]


def result(workdir):
  with open(os.path.join(workdir, "result.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  assert train.main(command(workdir)[2:]) == 0
  return workdir


# Between checkpoints on a step with no row (the rows of 25-35 are rolled back), and right after a
# checkpoint completes (nothing to roll back).
@pytest.mark.parametrize("kill_at", [37, 40])
def test_sigkill_then_rerun_matches_the_uninterrupted_run(reference, tmp_path, kill_at):
  workdir = tmp_path / "killed"
  train_until_fault(command(workdir)[2:], f"SIGKILL@{kill_at}")
  assert rows(workdir)[-1]["step"] == kill_at // 5 * 5  # killed there: rows to that step only
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


def launch_two_processes(workdir, port, fault_of_second=None):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
         "JAX_NUM_PROCESSES": "2", "JAX_HEARTBEAT_TIMEOUT_SECONDS": "10"}
  envs = [{**env, "JAX_PROCESS_ID": str(i)} for i in range(2)]
  if fault_of_second:
    envs[1] = with_fault(fault_of_second, envs[1])
  return [subprocess.Popen(command(workdir), cwd=ROOT, env=envs[i], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True) for i in range(2)]


def wait_all(processes, returncode: int) -> list[str]:
  """Waits for each process, asserts its exit code and returns their stderr; a hang past HANG_S
  kills them all (a failed test leaves no process behind)."""
  stderrs = []
  try:
    for process in processes:
      stderrs.append(process.communicate(timeout=HANG_S)[1])
      assert process.returncode == returncode, stderrs[-1][-2000:]
    return stderrs
  except subprocess.TimeoutExpired:
    pytest.fail(f"the processes hung for {HANG_S} s")
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()


def test_two_processes_match_one_and_survive_losing_one(reference, tmp_path):
  """Data parallelism over two jax.distributed processes (CPU collectives over localhost).

  Killing one process (the second, once the step-20 checkpoint is on disk) makes the other exit
  with an error (its heartbeat timeout is 10 s here); rerunning both resumes from the last
  checkpoint and ends exactly where one process does.
  """
  workdir = tmp_path / "two"
  processes = launch_two_processes(workdir, free_port(), fault_of_second="SIGKILL@20")
  _, stderr = processes[0].communicate(timeout=HANG_S)
  processes[1].wait()
  assert processes[1].returncode == -signal.SIGKILL
  assert processes[0].returncode != 0, "the survivor finished alone"
  # The survivor records the failure (the sweep lists it); the rerun retries the run.
  assert result(workdir)["status"] == "failed"
  rerun = launch_two_processes(workdir, free_port())
  for process in rerun:
    _, stderr = process.communicate(timeout=HANG_S)
    assert process.returncode == 0, stderr[-2000:]
  assert result(workdir)["final_eval_loss"] == pytest.approx(result(reference)["final_eval_loss"],
                                                            abs=1e-5)
  for ours, theirs in zip(rows(workdir), rows(reference), strict=True):
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)


def test_a_sigterm_to_one_of_two_processes_stops_both_at_one_step_and_resumes(reference,
                                                                            tmp_path):
  """SIGTERM reaches only the second process (at step 25, between checkpoints): both agree to stop
  at the same step, save that step's checkpoint together and exit 143; rerunning both resumes
  from it, logs no step twice and ends where one process does. (Without the agreement the first
  process would step on alone into a collective the second never joins.)"""
  workdir = tmp_path / "two"
  processes = launch_two_processes(workdir, free_port(), fault_of_second="SIGTERM@25")
  # The signal lands in step 25's host side, read while step 26 runs: both stop after step 26.
  for stderr in wait_all(processes, 143):
    assert "SIGTERM: checkpoint saved at step 26; rerun to resume" in stderr, stderr[-2000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["20", "26"]
  assert not (workdir / "result.json").exists()
  assert rows(workdir)[-1]["step"] == 25
  wait_all(launch_two_processes(workdir, free_port()), 0)
  assert [row["step"] for row in rows(workdir)] == [row["step"] for row in rows(reference)]
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
                             timeout=HANG_S)
  assert "write failed" in completed.stdout, completed.stderr[-2000:]
  assert result(tmp_path) == {"status": "completed", "final_eval_loss": 2.5}
  assert os.listdir(tmp_path) == ["result.json"]  # no partial file left behind
