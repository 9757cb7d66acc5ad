"""One `python train.py` process of a sweep: where its run lives, its launch, its fate, its signals."""
import os
import signal
import subprocess
import sys

from core import rundir
from sweeps import ROOT

# A child's first act, before it execs train.py (same pid): ask Linux to SIGTERM it when the sweep
# dies, even by SIGKILL, so no run outlives its sweep unlocked; exit if the sweep is already gone.
# A launcher rather than subprocess's preexec_fn, which is unsafe in a process that runs JAX threads.
LAUNCHER = ("import ctypes, os, signal, sys\n"
            "if sys.platform.startswith('linux'):\n"
            "  ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
            "if os.getppid() != int(sys.argv[1]): sys.exit(128 + signal.SIGTERM)\n"
            "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")
# How a run stopped on request ends (SIGTERM or Ctrl-C, caught or not): the rerun resumes it.
STOPPED_CODES = (rundir.EXIT_PREEMPTED, -signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGINT)
# How a run the kernel killed ends (SIGKILL, as Popen or as a shell and srun report it): on Linux
# most often the out-of-memory killer, which leaves no line in the run's log.
KILLED_CODES = (-signal.SIGKILL, 128 + signal.SIGKILL)
GIB = 2 ** 30


def run_dir_of(sweep_dir: str, row) -> str:
  """DIR/runs/RUN_ID: every run whose result is fitted; DIR/trunks/ID: a branch sweep's trunks
  (`row`: a sweeps.rows.PlanRow)."""
  return os.path.join(sweep_dir, "trunks" if row.kind == "trunk" else "runs", row.run_id)


def start_run(config_path: str, run_dir: str, overrides: list[str], workers: int = 1,
              log_name: str = rundir.TRAIN_LOG, env: dict | None = None) -> subprocess.Popen:
  """`python train.py` for one run, its output in RUN_DIR/train.log; `env`: variables to set
  (None: to unset)."""
  os.makedirs(run_dir, exist_ok=True)
  env = {key: value for key, value in {**os.environ, **(env or {})}.items() if value is not None}
  if workers > 1:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # runs share an accelerator
  command = [sys.executable, "-c", LAUNCHER, str(os.getpid()), os.path.join(ROOT, "train.py"),
             "--config", config_path, "--workdir", run_dir, *overrides]
  with open(rundir.path(run_dir, log_name), "ab") as log:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def in_gib(n_bytes: float) -> str:
  """Bytes as GiB with three significant figures (0.00214 GiB for a tiny run's 2.2 MiB)."""
  return f"{n_bytes / GIB:.3g} GiB"


def killed_error(run_dir: str, returncode: int, replicas: int = 1) -> str:
  """The error of a run killed by SIGKILL: most likely out of memory, with the memory planner's
  estimate of it (training/memory.py, from its config.json; x `replicas` for a group) against the
  memory here (training.limits.memory_here: the accelerator's limit, or the host's share)."""
  from training import limits, memory  # pylint: disable=g-import-not-at-top (they import JAX)
  try:
    needed = replicas * memory.required_bytes(memory.plan(rundir.read_config(run_dir)))
  except Exception as error:  # pylint: disable=broad-except (a message: never a second failure)
    estimate = f"no planner estimate ({type(error).__name__}: {error})"[:200]
  else:
    limit, what = limits.memory_here()
    estimate = (f"the planner estimated {in_gib(needed)} per device"
                + (f" for {replicas} replicas" if replicas > 1 else "")
                + (f" of {in_gib(limit)} ({what})" if limit else " (the memory here is unknown)"))
  return f"killed (exit {returncode}), most likely out of memory: {estimate}"


def settle(run_dir: str, returncode: int, started: float, log_path: str = "",
           replicas: int = 1) -> str:
  """What became of a finished train.py process: its status, recording failures in result.json.
  `log_path`: the process's output (default RUN_DIR/train.log; a group's is in its own directory);
  `replicas`: the runs that process trained (a killed group's memory is theirs together)."""
  if returncode in STOPPED_CODES:
    return rundir.INTERRUPTED
  result_path = rundir.path(run_dir, rundir.RESULT)
  wrote_result = os.path.exists(result_path) and os.path.getmtime(result_path) >= started
  if returncode == 0 or wrote_result:
    return rundir.read_status(run_dir) or rundir.FAILED
  log_path = log_path or rundir.path(run_dir, rundir.TRAIN_LOG)
  lines = [line.strip() for line in open(log_path, errors="replace")] if os.path.exists(log_path) else []
  error = next((line for line in reversed(lines) if line), "")
  if returncode in KILLED_CODES:
    error = killed_error(run_dir, returncode, replicas)
  rundir.write_result(run_dir, {
      "status": rundir.FAILED, "exit_code": returncode, "error": error[-500:],
      "config_hash": os.path.basename(run_dir).rsplit("_", 1)[-1]})
  return rundir.FAILED


class Forwarder:
  """While active, SIGINT / SIGTERM to the sweep are forwarded to its runs as SIGTERM."""

  def __init__(self):
    self.children, self.received = [], []

  def __enter__(self):
    self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
    return self

  def __exit__(self, *exc):
    for signum, handler in self.previous.items():
      signal.signal(signum, handler)

  def _handle(self, signum, frame):
    if not self.received:
      print(f"\n{signal.Signals(signum).name}: stopping the runs (they checkpoint); rerun to resume",
            file=sys.stderr)
    self.received.append(signum)
    for proc in self.children:
      self.terminate(proc)

  def add(self, proc):
    self.children.append(proc)
    if self.received:  # a signal that came while it was starting
      self.terminate(proc)

  @staticmethod
  def terminate(proc):
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)
