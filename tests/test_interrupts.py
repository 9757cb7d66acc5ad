"""A run stopped for real: Ctrl-C (SIGINT) mid-run, and a disk that fills up mid-run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import train
from conftest import ROOT
from core import files, rundir

pytestmark = pytest.mark.slow  # real runs in real processes

TINY = os.path.join(ROOT, "experiments", "tiny.py")
# 40 steps of 16 x 64 tokens; checkpoints every 10 steps.
FAST = ["--config.train.tokens=40960", "--config.train.log_every=5",
        "--config.train.checkpoint_every=10", "--config.train.eval_tokens=2048",
        "--config.wandb.mode=disabled"]
KEYS = ("step", "tokens", "train_loss", "lr", "eval_loss")


def command(workdir, *overrides):
  return [sys.executable, "train.py", "--config", TINY, "--workdir", str(workdir), *FAST,
          *overrides]


def rows(workdir):
  return [{k: row.get(k) for k in KEYS} for row in files.read_jsonl(workdir / "metrics.jsonl")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  assert train.main(command(workdir)[2:]) == 0
  return workdir


def test_ctrl_c_saves_a_checkpoint_says_so_in_one_line_and_the_rerun_resumes(reference, tmp_path):
  workdir = tmp_path / "interrupted"
  process = subprocess.Popen(command(workdir), cwd=ROOT, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 180
  while not files.read_jsonl(workdir / "metrics.jsonl"):  # mid-run: the first row is logged
    if time.time() > deadline or process.poll() is not None:  # a hang guard, not a speed bound
      pytest.fail("no metrics row appeared")
    time.sleep(0.005)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=180)
  assert process.returncode == rundir.EXIT_INTERRUPTED == 130, stderr
  assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
  step = rundir.checkpoint_steps(str(workdir))[-1]
  assert stderr.strip().splitlines()[-1] == (f"interrupted: checkpoint saved at step {step}; "
                                             "rerun to resume")
  assert not (workdir / "result.json").exists()
  assert train.main(command(workdir)[2:]) == 0
  assert rows(workdir) == rows(reference)
  with open(workdir / "result.json") as f, open(reference / "result.json") as g:
    assert json.load(f)["final_eval_loss"] == json.load(g)["final_eval_loss"]


def with_file_size_limit(limit: int, command_line: list[str]) -> list[str]:
  """command_line run where a write past `limit` bytes fails with EFBIG, as on a full disk (and
  not with SIGXFSZ): the limit and the ignored signal hold across exec."""
  setup = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
           "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
  return [sys.executable, "-c", setup, *command_line[1:]]


def test_a_full_disk_is_one_line_naming_the_file_and_the_rerun_leaves_no_torn_line(reference,
                                                                                   tmp_path):
  """A real failed write: metrics.jsonl outgrows the file-size limit (RLIMIT_FSIZE) part-way
  through a row, as it would on a full disk, before the first checkpoint."""
  workdir = tmp_path / "full"
  rows_only = ["--config.train.log_every=1", "--config.train.checkpoint_every=1000",
               "--config.train.compilation_cache="]
  completed = subprocess.run(with_file_size_limit(6000, command(workdir, *rows_only)), cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
  assert completed.returncode == 1, completed.stderr[-3000:]
  assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
  last = completed.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: out of disk space writing {workdir / 'metrics.jsonl'} ("), last
  assert "and rerun to resume" in last
  with open(workdir / "result.json") as f:
    assert json.load(f)["status"] == "failed"
  with open(workdir / "metrics.jsonl") as f:
    assert not f.read().endswith("\n")  # the row it was writing is torn
  assert train.main(command(workdir, *rows_only)[2:]) == 0
  with open(workdir / "metrics.jsonl") as f:
    lines = f.read().splitlines()
  parsed = [json.loads(line) for line in lines]  # every line whole
  assert [row["step"] for row in parsed] == list(range(1, 41))
  with open(workdir / "result.json") as f, open(reference / "result.json") as g:
    assert json.load(f)["final_eval_loss"] == json.load(g)["final_eval_loss"]
