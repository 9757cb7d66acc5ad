"""Puts the repository root on sys.path so tests import the project as `python train.py` does, and
holds the presets and helpers the training tests share (`from conftest import TINY, FAST_40, ...`)."""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
# Tests run on the CPU; W&B never reaches a server from a test.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_SILENT", "true")
# One persistent compilation cache for the session, for every run in this process and every
# train.py and sweep it starts (core/config.py reads SCALING_COMPILATION_CACHE): a shape compiled
# by one test loads in the next, and no test writes into ~/.cache. Set it to keep one across
# sessions; a test about train.compilation_cache itself unsets it.
if "SCALING_COMPILATION_CACHE" not in os.environ:
  os.environ["SCALING_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="scaling_test_cache_")
  atexit.register(shutil.rmtree, os.environ["SCALING_COMPILATION_CACHE"], ignore_errors=True)

TINY = os.path.join(ROOT, "experiments", "tiny.py")  # 2 layers of width 64, batches of 16 x 64 tokens
TOKENS_PER_STEP = 16 * 64
KEYS = ("step", "tokens", "train_loss", "lr", "eval_loss")  # a row's fields that a resume reproduces
# How long a test's subprocess may take before it counts as hung: a guard, not a speed bound (a
# 2-core machine shared with other jobs runs these tiny runs many times slower than idle).
HANG_S = 1200


def tiny_run(steps: int, checkpoint_every: int, wandb: str | None = "disabled") -> list[str]:
  """Overrides of TINY: `steps` steps, a metrics row every 5, a checkpoint every `checkpoint_every`,
  2048 eval tokens, W&B `wandb` (None: left to the test)."""
  overrides = [f"--config.train.tokens={steps * TOKENS_PER_STEP}", "--config.train.log_every=5",
               f"--config.train.checkpoint_every={checkpoint_every}",
               "--config.train.eval_tokens=2048"]
  return overrides + ([f"--config.wandb.mode={wandb}"] if wandb else [])


FAST_20 = tiny_run(20, checkpoint_every=10)
FAST_40 = tiny_run(40, checkpoint_every=10)
FAST_60 = tiny_run(60, checkpoint_every=20)


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory):
  """TINY trained in this process for FAST_40 (40 steps, checkpoints every 10), once a session:
  the tests that read a finished run share it and leave it as it is."""
  import train  # pylint: disable=g-import-not-at-top (imports JAX)
  workdir = tmp_path_factory.mktemp("tiny")
  assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST_40]) == 0
  return workdir


def rows(workdir, keys=KEYS) -> list[dict]:
  """metrics.jsonl's rows, each cut to `keys` (speed fields differ between runs)."""
  from core import rundir  # pylint: disable=g-import-not-at-top
  return [{k: row.get(k) for k in keys} for row in rundir.read_metrics(str(workdir))]


def with_fault(fault: str, env=None) -> dict:
  """The environment of a train.py that signals itself at an exact step (training/loop.py):
  `fault` is e.g. "SIGKILL@25" (after step 25's row and checkpoint are on disk)."""
  from training.loop import FAULT_ENV  # pylint: disable=g-import-not-at-top (imports JAX)
  return {**(os.environ if env is None else env), FAULT_ENV: fault}


def train_until_fault(argv, fault: str, env=None, **kwargs) -> subprocess.CompletedProcess:
  """Runs `python train.py ARGV` with the fault hook; asserts it ended by the fault's signal
  (SIGKILL: killed; SIGTERM: checkpointed, exit 143) and returns the finished process."""
  from core import rundir  # pylint: disable=g-import-not-at-top
  completed = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT,
                             env=with_fault(fault, env), capture_output=True, text=True,
                             timeout=HANG_S, **kwargs)
  expected = -signal.SIGKILL if fault.startswith("SIGKILL") else rundir.EXIT_PREEMPTED
  assert completed.returncode == expected, completed.stderr[-2000:]
  return completed
