"""Many runs: plan (an N x D grid or IsoFLOP curves) -> execute (local, slurm, wandb) -> collect -> analyse.

  python sweep.py                                  # the embedded default: experiments/default_sweep.py
  python sweep.py --config experiments/NAME.py --workdir DIR [--workers K] [--executor local|slurm|wandb]
  python sweep.py --config ... --dry-run [--json]  # the plan, its FLOPs and a measured wall-time estimate
  python sweep.py --config ... --workdir DIR --row K   # one plan row (Slurm array tasks, W&B agents)

A sweep is an experiment file with a `sweep` section (experiments/default_sweep.py documents its keys);
`--config.a.b=value` overrides apply to every run. The design, in the order a sweep happens:

- Plan. IsoFLOP: for each budget C, `sizes_per_budget` model sizes spread evenly in log N over `span`
  (N_max / N_min) around N = sqrt(C / (6 tokens_per_param)) (Chinchilla's 20 tokens per parameter),
  D = C / (6N) with N the exact non-embedding count of the derived shape. Grid: every N x D. D is
  rounded to whole batches of the batch the run will really use (train.resolve decides it, and the
  plan pins it), and the counted FLOPs are recorded beside 6ND. DIR/plan.csv is written before
  anything trains; Slurm tasks and W&B agents read their row from it.
- Identity. A run's id is a readable prefix plus train.config_hash of its resolved config, and its
  directory is DIR/runs/RUN_ID: rerunning a sweep finds completed runs done and interrupted ones
  resumable (train.py resumes from its newest checkpoint), and two sizes that round to one shape
  are one run.
- Execution. Every run is `python train.py` in its own process (one JAX process per run, the code
  path of a single run), started in its own session so a Ctrl-C reaches only the sweep, which
  forwards SIGTERM (the runs checkpoint and exit) and, on Linux, dies with its parent. The planner
  itself runs JAX on the CPU, so it never holds an accelerator the runs need.
- Compilation. The runs share one persistent XLA cache, DIR/compilation_cache (unless the config
  names another): a run's seed, lr and budget are inputs of its compiled programs, so only the
  first run of each shape compiles and every later one, on any machine sharing DIR, loads them.
- Groups. `sweep.seeds` and `sweep.lrs` repeat every point per seed and peak lr. Runs of one shape
  and budget that differ only in those are planned as one group (the `group` column, at most
  `sweep.max_replicas` and as many as fit the device together), and the local executor trains a
  group as one `train.py --config.train.replicas=K` process: one compilation, one jitted step for
  all of them, each replica written into its own run directory exactly as its single run would be
  (so a group cut short can be finished by single runs and vice versa). Slurm tasks and W&B agents
  train one row each. With several lrs, the analysis fits each (N, D, seed)'s best lr
  (DIR/results_best_lr.csv).
- Locks. DIR/runs/RUN_ID/sweep.lock, created with O_CREAT|O_EXCL, holds the host and pid of the
  process training the run, so sweeps launched twice on one directory (or on several machines
  sharing it) never train a run twice. A lock is stale when its host is this host and its process
  is gone; a lock of another host is trusted (delete it by hand if that host died).
- Collection. DIR/results.csv is rebuilt from the run directories every time (their result.json is
  the single source of truth), with the plan's budget and planned N and D beside each result;
  failed and diverged runs are listed, and `python -m analysis` fits only completed ones.
"""
import argparse
import csv
import hashlib
import io
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

import jax

from experiments.base import ConfigError, apply_override, get_config, load_config
from model import memory
import train

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(ROOT, "experiments", "default_sweep.py")
DEFAULT_COMPILATION_CACHE = get_config().train.compilation_cache
PLAN_COLUMNS = ("row", "run_id", "group", "budget", "n_target", "n_params", "n_params_total",
                "tokens", "tokens_per_param", "batch_size", "steps", "seed", "lr", "flops",
                "flops_6nd", "overrides")
RESULT_COLUMNS = ("run_id", "status", "budget", "n_planned", "tokens_planned", "n_params",
                  "n_params_total", "tokens", "flops", "flops_6nd", "final_train_loss",
                  "final_eval_loss")
FINISHED = ("completed", "diverged")  # a diverged run diverges again when rerun: it is done
LOCK_NAME = "sweep.lock"
UNREADABLE_LOCK_GRACE_S = 30  # a lock file being written is empty for a moment; a crash leaves it so
PROBE_STEPS = 8
PROBE_TIMEOUT_S = 300
POLL_S = 0.2


# ----------------------------------------------------------------------------------------- plan

def isoflop_sizes(budget: float, sizes_per_budget: int, span: float,
                  tokens_per_param: float = 20.0) -> list[float]:
  """Target non-embedding N values of one IsoFLOP curve: evenly spaced in log N over `span`
  (largest / smallest), centred on the compute-optimal guess N = sqrt(C / (6 tokens_per_param))."""
  centre = math.sqrt(budget / (6 * tokens_per_param))
  if sizes_per_budget == 1:
    return [centre]
  return [centre * span ** (i / (sizes_per_budget - 1) - 0.5) for i in range(sizes_per_budget)]


def short(x: float) -> str:
  """1.2e5 for 123456: the readable half of a run id."""
  mantissa, exponent = f"{x:.1e}".split("e")
  return f"{mantissa}e{int(exponent)}"


def plan_sweep(config, overrides: list[str], sweep_dir: str | None = None) -> list[dict]:
  """The plan rows of `config` (loaded with `overrides`), duplicates dropped; see the module doc.
  With `sweep_dir`, the runs share the compilation cache DIR/compilation_cache."""
  sweep = sweep_section(config)
  group = [] if config.wandb.group else [f"--config.wandb.group={config.name}"]
  # sweep.* keys are the sweep's; every other override reaches each run.
  run_overrides = ([o for o in overrides if not o.startswith("--config.sweep.")] + group
                   + compilation_cache_override(config, sweep_dir))
  if sweep.kind == "isoflop":
    points = [(budget, n, None) for budget in sweep.budgets
              for n in isoflop_sizes(budget, sweep.sizes_per_budget, sweep.span,
                                     sweep.tokens_per_param)]
  else:
    points = [(None, n, d) for n in sweep.n_params for d in sweep.tokens]
  # Runs that cannot fit this machine's accelerator are refused before anything is launched
  # (model/memory.py's estimate; no limit is known on a CPU, so nothing is refused there).
  device_memory = memory.device_memory_limit()
  # Repeats of every point: one run per seed and per peak lr (the lr rule's when none are given).
  variants = [([f"--config.seed={seed}"] if seed is not None else [])
              + ([f"--config.train.lr={float(lr)!r}"] if lr is not None else [])
              for seed in sweep.seeds or (None,) for lr in sweep.lrs or (None,)]
  rows, seen = [], set()
  for budget, n_target, tokens in points:
    for variant in variants:
      try:
        row = plan_row(config, sweep.devices, run_overrides + variant, n_target, budget, tokens,
                       device_memory)
      except ConfigError as error:
        where = f"budget {budget:.3g}, " if budget else ""
        raise ConfigError(f"plan point ({where}N {n_target:.3g}): {error}") from None
      if row["run_id"] not in seen:
        seen.add(row["run_id"])
        rows.append({"row": len(rows), **row})
  return group_rows(rows, sweep.max_replicas)


def compilation_cache_override(config, sweep_dir: str | None) -> list[str]:
  """The runs' persistent compilation cache, DIR/compilation_cache, unless the config names
  another place (or "" for none): the first run of a shape compiles, every later one loads, on
  any machine that shares the sweep directory (train.compilation_cache is not hashed)."""
  if sweep_dir is None or config.train.compilation_cache != DEFAULT_COMPILATION_CACHE:
    return []
  return [f"--config.train.compilation_cache={os.path.join(sweep_dir, 'compilation_cache')}"]


def group_rows(rows, max_replicas: int) -> list[dict]:
  """Sets each row's `group`: runs of one shape and budget that differ only in seed and lr train
  as one group of replicas (train.replicas, one process and one jitted step), at most
  `max_replicas` and as many as fit the device together; "" for a run trained alone."""
  by_shape = {}
  for row in rows:
    by_shape.setdefault(row.pop("shape"), []).append(row)
  for members in by_shape.values():
    size = max(1, min(max_replicas, *(row.pop("replicas_that_fit") for row in members)))
    for start in range(0, len(members), size):
      group = members[start:start + size]
      group_id = group_id_of([row["run_id"] for row in group]) if len(group) > 1 else ""
      for row in group:
        row["group"] = group_id
  return rows


def group_id_of(run_ids) -> str:
  """A group's directory name under DIR/groups: its members, so another membership is another
  group (train.py refuses to resume a group directory into a different set of replicas)."""
  return f"g{len(run_ids)}_" + hashlib.sha256(",".join(run_ids).encode()).hexdigest()[:12]


SWEEP_KEYS = ("kind", "budgets", "sizes_per_budget", "span", "tokens_per_param", "n_params", "tokens",
              "seeds", "lrs", "max_replicas", "devices", "workers", "sbatch")


def sweep_section(config):
  """config.sweep, checked; experiments/default_sweep.py documents its keys."""
  if "sweep" not in config:
    raise ConfigError(f"config {config.name!r} has no sweep section; start from "
                      "experiments/default_sweep.py")
  sweep = config.sweep
  missing = [key for key in SWEEP_KEYS if key not in sweep]
  if missing:
    raise ConfigError(f"the sweep section lacks {', '.join(missing)}; see experiments/default_sweep.py")
  if sweep.kind == "isoflop":
    if not sweep.budgets or min(sweep.budgets) <= 0:
      raise ConfigError(f"sweep.budgets must be positive FLOP budgets, got {sweep.budgets}")
    if sweep.sizes_per_budget < 1 or sweep.span < 1 or sweep.tokens_per_param <= 0:
      raise ConfigError("sweep needs sizes_per_budget >= 1, span >= 1 and tokens_per_param > 0")
  elif sweep.kind == "grid":
    if not sweep.n_params or not sweep.tokens:
      raise ConfigError("sweep.kind=grid needs sweep.n_params and sweep.tokens, e.g. "
                        "--config.sweep.n_params=(1e4,1e5) --config.sweep.tokens=(1e6,4e6)")
  else:
    raise ConfigError(f"sweep.kind must be isoflop or grid, got {sweep.kind!r}")
  if sweep.workers < 1 or sweep.devices < 1 or sweep.max_replicas < 1:
    raise ConfigError("sweep.workers, sweep.devices and sweep.max_replicas must be at least 1")
  if any(not isinstance(lr, (int, float)) or lr <= 0 for lr in sweep.lrs):
    raise ConfigError(f"sweep.lrs must be positive peak learning rates, got {sweep.lrs}")
  if any(not isinstance(seed, int) for seed in sweep.seeds) or len(set(sweep.seeds)) != len(sweep.seeds):
    raise ConfigError(f"sweep.seeds must be distinct integers, got {sweep.seeds}")
  return sweep


def plan_row(config, n_devices, run_overrides, n_target, budget=None, tokens=None,
             device_memory=None) -> dict:
  """One run: the overrides that make train.py train it, its id and its N, D and FLOPs."""
  def resolved(*extra):
    run_config = config.copy_and_resolve_references()
    for override in run_overrides + list(extra):
      apply_override(run_config, override)
    return train.resolve(run_config, n_devices)

  size = f"--config.model.target_params={float(n_target)!r}"
  # The first resolve gives the exact N of the derived shape (and a batch for a provisional D).
  provisional = tokens if budget is None else budget / (6 * n_target)
  _, _, _, plan = resolved(size, f"--config.train.tokens={max(1, round(provisional))}")
  if budget is not None:
    tokens = budget / (6 * plan.n_params)
    _, _, _, plan = resolved(size, f"--config.train.tokens={max(1, round(tokens))}")
  steps = max(1, round(tokens / plan.tokens_per_step))
  row_overrides = [size, f"--config.train.tokens={steps * plan.tokens_per_step}",
                   f"--config.train.batch_size={plan.batch_size}"]
  run_config, _, _, plan = resolved(*row_overrides)
  needed = memory.required_bytes(memory.check_fits(run_config, device_memory, n_devices))
  # Runs that differ only in seed and lr share a shape, a budget and so a compiled step.
  shape_config = run_config.copy_and_resolve_references()
  shape_config.seed, shape_config.train.lr = 0, 0.0
  return {
      "run_id": f"n{short(plan.n_params)}_d{short(plan.tokens)}_{train.config_hash(run_config)}",
      "shape": train.config_hash(shape_config),
      "replicas_that_fit": int(device_memory // needed) if device_memory else 1 << 30,
      "seed": run_config.seed, "lr": plan.lr,
      "budget": budget, "n_target": n_target, "n_params": plan.n_params,
      "n_params_total": plan.n_params_total, "tokens": plan.tokens,
      "tokens_per_param": plan.tokens / plan.n_params, "batch_size": plan.batch_size,
      "steps": plan.steps, "flops": plan.flops_per_token * plan.tokens,
      "flops_6nd": 6 * plan.n_params * plan.tokens,
      "overrides": shlex.join(run_overrides + row_overrides)}


def write_csv_atomic(path: str, rows: list[dict], columns) -> None:
  """A CSV written under a temporary name and renamed, so readers never see half a table."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: "" if v is None else v for k, v in row.items()})
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", newline="") as f:
    f.write(buffer.getvalue())
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_plan(sweep_dir: str) -> list[dict]:
  path = os.path.join(sweep_dir, "plan.csv")
  if not os.path.exists(path):
    raise ConfigError(f"{sweep_dir} has no plan.csv; run sweep.py with --executor slurm or wandb "
                      "(or --dry-run) on this --workdir first")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    row["budget"] = float(row["budget"]) if row["budget"] else None
    for key in ("n_params", "n_params_total", "tokens"):
      row[key] = int(row[key])
  return rows


def print_plan(rows: list[dict], estimates=None) -> None:
  print(f"{'row':>4} {'budget C':>9} {'N':>9} {'N_total':>9} {'D':>9} {'D/N':>7} {'batch':>5} "
        f"{'steps':>6} {'C counted':>9} {'6ND':>9}{' est. s':>8}  run_id")
  for i, row in enumerate(rows):
    budget = f"{row['budget']:.2e}" if row["budget"] else "-"
    estimate = f"{estimates[i]:8.0f}" if estimates else ""
    print(f"{row['row']:>4} {budget:>9} {row['n_params']:>9.3g} {row['n_params_total']:>9.3g} "
          f"{row['tokens']:>9.3g} {float(row['tokens_per_param']):>7.1f} {row['batch_size']:>5} "
          f"{row['steps']:>6} {float(row['flops']):>9.2e} {float(row['flops_6nd']):>9.2e}"
          f"{estimate}  {row['run_id']}")


# ---------------------------------------------------------------------------------------- locks

def _process_state(pid: int):
  """(state letter, start time) of a process from /proc, or None where /proc has no such entry."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], fields[19]
  except (OSError, IndexError):
    return None


def lock_record(pid: int) -> dict:
  state = _process_state(pid)
  return {"host": socket.gethostname(), "pid": pid, "start": state[1] if state else None}


def holder_alive(holder: dict) -> bool:
  """False only when the holder is provably gone: this host, and its pid dead, a zombie or reused."""
  if holder.get("host") != socket.gethostname():
    return True
  try:
    os.kill(holder["pid"], 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  state = _process_state(holder["pid"])
  if state is None:
    return True  # no /proc (macOS): the signal test above is all we can know
  return state[0] != "Z" and holder.get("start") in (None, state[1])


def _read_lock(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # being written, or cut short by a crash


def acquire_lock(run_dir: str):
  """Takes run_dir's lock for this process. Returns None when taken, else the live holder's record."""
  os.makedirs(run_dir, exist_ok=True)
  path = os.path.join(run_dir, LOCK_NAME)
  while True:
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = _read_lock(path)
      if holder is None:
        continue  # released meanwhile
      try:
        age = time.time() - os.path.getmtime(path)
      except FileNotFoundError:
        continue
      if (holder and holder_alive(holder)) or (not holder and age < UNREADABLE_LOCK_GRACE_S):
        return holder or {"host": "?", "pid": "?"}
      # Stale: move it aside (an atomic rename, so of two processes taking over only one succeeds)
      # and put it back if what moved was a fresh lock taken meanwhile.
      aside = f"{path}.stale{os.getpid()}"
      try:
        os.rename(path, aside)
      except FileNotFoundError:
        continue
      if _read_lock(aside) != holder:
        os.rename(aside, path)
        continue
      os.remove(aside)
      print(f"taking over the stale lock of {run_dir} (host {holder.get('host')}, pid "
            f"{holder.get('pid')})", file=sys.stderr)
      continue
    with os.fdopen(fd, "w") as f:
      json.dump(lock_record(os.getpid()), f)
    return None


def hand_lock_to(run_dir: str, pid: int) -> None:
  """Points a lock this process holds at the process that trains the run (rewritten atomically):
  if the sweep dies, the lock lives exactly as long as the run does."""
  path = os.path.join(run_dir, LOCK_NAME)
  train.write_json_atomic(path, lock_record(pid))


def release_lock(run_dir: str) -> None:
  try:
    os.remove(os.path.join(run_dir, LOCK_NAME))
  except FileNotFoundError:
    pass


# ------------------------------------------------------------------------------------ execution

def run_dir_of(sweep_dir: str, row: dict) -> str:
  return os.path.join(sweep_dir, "runs", row["run_id"])


def read_result(run_dir: str):
  path = os.path.join(run_dir, "result.json")
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except ValueError:
    print(f"warning: {path} is unreadable; treating the run as not finished", file=sys.stderr)
    return None


def run_status(run_dir: str):
  return (read_result(run_dir) or {}).get("status")


# A child's first act, before it execs train.py (same pid): ask Linux to SIGTERM it when the sweep
# dies, even by SIGKILL, so no run outlives its sweep unlocked; exit if the sweep is already gone.
# A launcher rather than subprocess's preexec_fn, which is unsafe in a process that runs JAX threads.
LAUNCHER = ("import ctypes, os, signal, sys\n"
            "if sys.platform.startswith('linux'):\n"
            "  ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
            "if os.getppid() != int(sys.argv[1]): sys.exit(128 + signal.SIGTERM)\n"
            "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def start_run(config_path: str, run_dir: str, overrides: list[str], workers: int = 1,
              log_name: str = "train.log") -> subprocess.Popen:
  """`python train.py` for one run, its output in RUN_DIR/train.log."""
  os.makedirs(run_dir, exist_ok=True)
  env = dict(os.environ)
  if workers > 1:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # runs share an accelerator
  command = [sys.executable, "-c", LAUNCHER, str(os.getpid()), os.path.join(ROOT, "train.py"),
             "--config", config_path, "--workdir", run_dir, *overrides]
  with open(os.path.join(run_dir, log_name), "ab") as log:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def settle(run_dir: str, returncode: int, started: float, log_path: str = "") -> str:
  """What became of a finished train.py process: its status, recording failures in result.json.
  `log_path`: the process's output (default RUN_DIR/train.log; a group's is in its own directory)."""
  if returncode in (train.EXIT_PREEMPTED, -signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGINT):
    return "interrupted"  # stopped on request: the rerun resumes it
  result_path = os.path.join(run_dir, "result.json")
  wrote_result = os.path.exists(result_path) and os.path.getmtime(result_path) >= started
  if returncode == 0 or wrote_result:
    return run_status(run_dir) or "failed"
  log_path = log_path or os.path.join(run_dir, "train.log")
  lines = [line.strip() for line in open(log_path, errors="replace")] if os.path.exists(log_path) else []
  error = next((line for line in reversed(lines) if line), "")
  train.write_json_atomic(result_path, {
      "status": "failed", "exit_code": returncode, "error": error[-500:],
      "config_hash": os.path.basename(run_dir).rsplit("_", 1)[-1]})
  return "failed"


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


def jobs_of(rows) -> list[list[dict]]:
  """The plan as the local executor launches it: each group's rows together, other rows alone."""
  jobs, group_index = [], {}
  for row in rows:
    if row.get("group") and row["group"] in group_index:
      jobs[group_index[row["group"]]].append(row)
      continue
    if row.get("group"):
      group_index[row["group"]] = len(jobs)
    jobs.append([row])
  return jobs


def start_job(sweep_dir: str, config_path: str, rows, workers: int):
  """`python train.py` for one run, or for a group of them as replicas; returns (process, log)."""
  if len(rows) == 1:
    run_dir = run_dir_of(sweep_dir, rows[0])
    return (start_run(config_path, run_dir, shlex.split(rows[0]["overrides"]), workers),
            os.path.join(run_dir, "train.log"))
  # The runs' common overrides (their seed and lr are the replicas' own) and where each one goes;
  # every replica directory is the run directory its single run would have written.
  common = [o for o in shlex.split(rows[0]["overrides"])
            if not o.startswith(("--config.seed=", "--config.train.lr="))]
  group_dir = os.path.join(sweep_dir, "groups", group_id_of([row["run_id"] for row in rows]))
  overrides = common + [
      f"--config.train.replicas={len(rows)}",
      f"--config.train.replica_seeds=({', '.join(str(int(row['seed'])) for row in rows)},)",
      f"--config.train.replica_lrs=({', '.join(repr(float(row['lr'])) for row in rows)},)",
      "--replica-workdirs", *(run_dir_of(sweep_dir, row) for row in rows)]
  return start_run(config_path, group_dir, overrides, workers), os.path.join(group_dir, "train.log")


def execute_local(rows, sweep_dir: str, config_path: str, workers: int) -> dict:
  """Trains the rows that are not finished, `workers` processes at a time, the rows of a plan
  group as one process (what is left of it: finished and locked runs are left out).

  Returns {"signal": signum or 0, "locked": [(run_id, holder)], "statuses": {run_id: status}}.
  """
  unfinished = [row for row in rows if run_status(run_dir_of(sweep_dir, row)) not in FINISHED]
  todo = jobs_of(unfinished)
  print(f"{len(rows) - len(unfinished)} of {len(rows)} runs already finished; {len(unfinished)} to "
        f"train in {len(todo)} processes with {workers} worker{'s' * (workers > 1)}")
  running, locked, statuses, count = {}, [], {}, 0
  with Forwarder() as forwarder:
    while (todo and not forwarder.received) or running:
      while todo and len(running) < workers and not forwarder.received:
        job = []
        for row in todo.pop(0):
          run_dir = run_dir_of(sweep_dir, row)
          holder = acquire_lock(run_dir)
          if holder is not None:
            locked.append((row["run_id"], holder))
            print(f"skip {row['run_id']}: locked by host {holder.get('host')} pid {holder.get('pid')}")
          elif run_status(run_dir) in FINISHED:  # finished by another sweep since we looked
            release_lock(run_dir)
          else:
            job.append(row)
        if not job:
          continue
        count += 1
        started = time.time()
        proc, log_path = start_job(sweep_dir, config_path, job, workers)
        for row in job:
          hand_lock_to(run_dir_of(sweep_dir, row), proc.pid)
        forwarder.add(proc)
        running[proc.pid] = (proc, job, started, count, log_path)
        what = (f"{job[0]['run_id']}  (N={job[0]['n_params']:.3g}, D={job[0]['tokens']:.3g})"
                if len(job) == 1 else f"{len(job)} replicas of N={job[0]['n_params']:.3g}, "
                f"D={job[0]['tokens']:.3g}: {', '.join(row['run_id'] for row in job)}")
        print(f"[{count}/{len(todo) + count}] start {what}", flush=True)
      time.sleep(POLL_S)
      for pid, (proc, job, started, number, log_path) in list(running.items()):
        if proc.poll() is None:
          continue
        del running[pid]
        for row in job:
          run_dir = run_dir_of(sweep_dir, row)
          status = statuses[row["run_id"]] = settle(run_dir, proc.returncode, started, log_path)
          release_lock(run_dir)
          loss = (read_result(run_dir) or {}).get("final_eval_loss")
          detail = f"eval loss {loss:.4f}" if status == "completed" else f"exit {proc.returncode}"
          print(f"[{number}] {status} {row['run_id']}  {detail}  {time.time() - started:.0f} s "
                f"(log: {log_path})", flush=True)
  return {"signal": forwarder.received[0] if forwarder.received else 0, "locked": locked,
          "statuses": statuses}


def run_row(sweep_dir: str, config_path: str, index: int) -> int:
  """`--row K`: trains plan row K (a Slurm array task or a W&B agent's run); returns the exit code."""
  rows = read_plan(sweep_dir)
  if not 0 <= index < len(rows):
    raise ConfigError(f"--row {index} is outside the plan of {sweep_dir} (rows 0..{len(rows) - 1})")
  row = rows[index]
  run_dir = run_dir_of(sweep_dir, row)
  overrides = shlex.split(row["overrides"])
  # A multi-task Slurm job trains one run with all its tasks: the array task is the lock there.
  tasks, task = int(os.environ.get("SLURM_NTASKS", "1")), os.environ.get("SLURM_PROCID", "0")
  if tasks == 1:
    holder = acquire_lock(run_dir)
    if holder is not None:
      print(f"row {index} ({row['run_id']}) is being trained by host {holder.get('host')} pid "
            f"{holder.get('pid')}; nothing to do")
      return 0
  try:
    if run_status(run_dir) in FINISHED:
      print(f"row {index} ({row['run_id']}) is already {run_status(run_dir)}")
      return 0
    if os.environ.get("WANDB_SWEEP_ID"):
      # Under `wandb agent`: the run must be the agent's run (its id) and online to join the sweep;
      # a run resumed by a later agent keeps the W&B run it started as.
      overrides.append("--config.wandb.mode=online")
      id_path = os.path.join(run_dir, "wandb_run_id")
      if not os.path.exists(id_path) and os.environ.get("WANDB_RUN_ID"):
        with open(id_path, "w") as f:
          f.write(os.environ["WANDB_RUN_ID"])
    started = time.time()
    with Forwarder() as forwarder:
      proc = start_run(config_path, run_dir, overrides,
                       log_name="train.log" if task == "0" else f"train.{task}.log")
      if tasks == 1:
        hand_lock_to(run_dir, proc.pid)
      forwarder.add(proc)
      returncode = proc.wait()
    status = settle(run_dir, returncode, started) if task == "0" else "done"
    print(f"row {index} ({row['run_id']}): {status}")
    return returncode
  finally:
    if tasks == 1:
      release_lock(run_dir)


# ------------------------------------------------------------------ Slurm and W&B launch files

def portable(path: str) -> str:
  """A path relative to the repository when it is inside it (agents run from their own checkout)."""
  path = os.path.abspath(path)
  return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def write_sbatch(sweep_dir: str, config_path: str, config, rows) -> str:
  sweep_dir, config_path = os.path.abspath(sweep_dir), os.path.abspath(config_path)
  row_command = shlex.join([sys.executable, os.path.join(ROOT, "sweep.py"), "--config",
                            config_path, "--workdir", sweep_dir, "--row"])
  collect_command = shlex.join(["python", "sweep.py", "--config", config_path, "--workdir",
                                sweep_dir, "--executor", "slurm"])
  options = "".join(f"#SBATCH {option}\n" for option in config.sweep.sbatch)
  script = f"""#!/bin/bash
# Sweep {config.name}: one Slurm array task per row of {sweep_dir}/plan.csv ({len(rows)} rows).
# Submit with `sbatch {sweep_dir}/sweep.sbatch`. Each task runs `sweep.py --row $SLURM_ARRAY_TASK_ID`,
# which trains that row into {sweep_dir}/runs/RUN_ID: a finished row exits at once and an interrupted
# one resumes from its checkpoint, so resubmitting the script (or requeueing a task) is safe.
# When the array is done, collect results.csv and the analysis with:
#   {collect_command}
#
# Multi-node runs (one model on several nodes): raise --nodes and set --ntasks-per-node to the
# GPUs per node (one JAX process per GPU), set sweep.devices to the total GPU count so batches are
# planned as its multiples, and keep the `srun` below: every task then runs the row, train.py
# calls jax.distributed.initialize() because SLURM_NTASKS > 1 (JAX reads the coordinator, process
# count and process id from Slurm's environment), and the data-parallel mesh spans all processes.
#SBATCH --job-name={config.name}
#SBATCH --array=0-{len(rows) - 1}
#SBATCH --output={sweep_dir}/slurm/%A_%a.out
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
{options}
set -euo pipefail
cd {shlex.quote(ROOT)}
srun {row_command} "$SLURM_ARRAY_TASK_ID"
"""
  os.makedirs(os.path.join(sweep_dir, "slurm"), exist_ok=True)
  path = os.path.join(sweep_dir, "sweep.sbatch")
  with open(path, "w") as f:
    f.write(script)
  print(f"wrote {path} ({len(rows)} array tasks); submit it with:\n  sbatch {path}")
  return path


def wandb_logged_in() -> bool:
  """Whether a W&B server is configured for this user, judged offline (no network call)."""
  if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
    return False
  if os.environ.get("WANDB_API_KEY"):
    return True
  import netrc  # pylint: disable=g-import-not-at-top
  host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
  try:
    return netrc.netrc().authenticators(host) is not None
  except (OSError, netrc.NetrcParseError):
    return False


def write_wandb_sweep(sweep_dir: str, config_path: str, config, rows) -> str:
  """DIR/wandb_sweep.yaml: a W&B grid over the plan's rows; creates the sweep when logged in."""
  import yaml  # pylint: disable=g-import-not-at-top
  sweep = {
      "name": config.name, "project": config.wandb.project, "program": "sweep.py",
      "method": "grid", "metric": {"name": "eval_loss", "goal": "minimize"},
      "parameters": {"row": {"values": [int(row["row"]) for row in rows]}},
      "command": ["${env}", "${interpreter}", "${program}", "--config", portable(config_path),
                  "--workdir", portable(sweep_dir), "${args}"]}
  if config.wandb.entity:
    sweep["entity"] = config.wandb.entity
  path = os.path.join(sweep_dir, "wandb_sweep.yaml")
  with open(path, "w") as f:
    yaml.safe_dump(sweep, f, sort_keys=False)
  print(f"wrote {path} (a grid over {len(rows)} plan rows)")
  target = "/".join(filter(None, [config.wandb.entity, config.wandb.project]))
  sweep_id = None
  if wandb_logged_in():
    import wandb  # pylint: disable=g-import-not-at-top
    try:
      sweep_id = wandb.sweep(sweep, entity=config.wandb.entity or None,
                             project=config.wandb.project)
    except Exception as error:  # pylint: disable=broad-except  (no server, bad key, ...)
      print(f"could not create the W&B sweep ({error}); create it by hand:", file=sys.stderr)
  if sweep_id:
    print(f"created W&B sweep {sweep_id}; on each machine (sharing {portable(sweep_dir)}), "
          f"from {ROOT}:\n  wandb agent {target}/{sweep_id}")
  else:
    print(f"W&B is offline or not logged in: create the sweep, then start agents (on machines "
          f"sharing {portable(sweep_dir)}, from {ROOT}):\n"
          f"  wandb sweep {path}\n  wandb agent {target}/SWEEP_ID   # the id `wandb sweep` prints")
  return path


# ----------------------------------------------------------------------- collection and analysis

def flatten(result: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in result.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = json.dumps(value) if isinstance(value, list) else value
  return flat


def collect(sweep_dir: str, rows) -> list[dict]:
  """Rebuilds DIR/results.csv from the run directories of the plan's rows; returns its rows."""
  results = []
  for row in rows:
    result = read_result(run_dir_of(sweep_dir, row))
    if result is not None:
      results.append({"run_id": row["run_id"], "budget": row["budget"],
                      "n_planned": row["n_params"], "tokens_planned": row["tokens"],
                      **flatten(result)})
  write_csv_atomic(os.path.join(sweep_dir, "results.csv"), results, result_columns(results))
  return results


def result_columns(results) -> tuple:
  return RESULT_COLUMNS + tuple(sorted({key for result in results for key in result}
                                       - set(RESULT_COLUMNS)))


def best_lr_only(results) -> list[dict]:
  """The completed runs of an lr sweep, keeping each (N, D, seed)'s lowest final eval loss: the
  scaling laws are those of tuned models, not of every lr tried."""
  best = {}
  for result in results:
    if result.get("status") != "completed":
      continue
    key = (result["n_params"], result["tokens"], result.get("seed"))
    if key not in best or result["final_eval_loss"] < best[key]["final_eval_loss"]:
      best[key] = result
  return list(best.values())


def analyse(sweep_dir: str, wandb_mode: str, results_name: str = "results.csv"):
  """Runs `python -m analysis` on DIR/results_name into DIR/analysis; returns fit.json or None.

  The analysis reads the `budget` column for the IsoFLOP groups, the counted `flops` for C, and
  the runs' metrics.jsonl under DIR/runs for Approach 1; it fits completed runs only."""
  out = os.path.join(sweep_dir, "analysis")
  command = [sys.executable, "-m", "analysis", "--results", os.path.join(sweep_dir, results_name),
             "--out", out, "--wandb-mode", wandb_mode]
  print(f"analysis: {shlex.join(command)}", flush=True)
  returncode = subprocess.run(command, cwd=ROOT).returncode
  fit_path = os.path.join(out, "fit.json")
  if returncode != 0 or not os.path.exists(fit_path):
    print(f"analysis failed (exit {returncode}); results are in {sweep_dir}/results.csv",
          file=sys.stderr)
    return None
  with open(fit_path) as f:
    return json.load(f)


def print_frontier(fit: dict, rows, report: str) -> dict:
  """The sweep's last words: the fitted compute-optimal frontier at its budgets; returns them."""
  approach3, approach2 = fit["chinchilla_approach3"], fit.get("chinchilla_approach2")
  largest = max(row["budget"] or float(row["flops_6nd"]) for row in rows)
  frontier = [point for point in fit["frontier"] if point["flops"] <= largest * 1.001]
  print(f"frontier: N_opt ∝ C^{approach3['a']:.3f}, D_opt ∝ C^{approach3['b']:.3f} (Chinchilla "
        "approach 3)" + (f"; IsoFLOP minima (approach 2): a = {approach2['a']:.3f}, "
                         f"b = {approach2['b']:.3f}" if approach2 else ""))
  print("tokens per parameter: " + ", ".join(
      f"{point['tokens_per_param']:.1f} at C = {point['flops']:.2g}" for point in frontier))
  summary = {"a": approach3["a"], "b": approach3["b"], "E": approach3["E"], "frontier": frontier,
             "report": report}
  if approach2:
    summary["approach2"] = {"a": approach2["a"], "b": approach2["b"]}
  floor = fit.get("loss_floor")
  if isinstance(floor, (int, float)):
    print(f"fitted irreducible loss E = {approach3['E']:.3f} nats; the data's exact floor is "
          f"{floor:.3f} nats")
    summary["loss_floor"] = floor
  if "isoflop" in fit.get("plots", {}):
    summary["isoflop_plot"] = os.path.join(os.path.dirname(report), fit["plots"]["isoflop"])
    print(f"IsoFLOP curves: {summary['isoflop_plot']}")
  print(f"report: {report}")
  return summary


def finish(sweep_dir: str, rows, wandb_mode: str) -> tuple[dict, bool]:
  """Collects results.csv, lists unfinished runs, and analyses; returns (summary, analysis ok)."""
  results = collect(sweep_dir, rows)
  by_status = {}
  for result in results:
    by_status.setdefault(result.get("status"), []).append(result)
  summary = {"results": os.path.join(sweep_dir, "results.csv"), "runs": len(rows),
             "completed": len(by_status.get("completed", [])),
             "not_finished": len(rows) - len(results)}
  print(f"results: {summary['results']} ({summary['completed']} completed of {len(rows)} runs)")
  for status in sorted(set(by_status) - {"completed"}, key=str):
    summary[status] = [r["run_id"] for r in by_status[status]]
    print(f"{len(by_status[status])} {status} (listed, not fitted):")
    for r in by_status[status]:
      why = r.get("error") or f"final train loss {r.get('final_train_loss')}"
      print(f"  {r['run_id']}: {why}")
  if summary["not_finished"]:
    print(f"{summary['not_finished']} runs have no result yet (running elsewhere, interrupted or "
          "not started); rerun this command to finish them")
  if not by_status.get("completed"):
    return summary, True
  results_name = "results.csv"
  fitted = best_lr_only(results)
  if len(fitted) < len(by_status["completed"]):  # an lr sweep: fit each point's best lr
    results_name = "results_best_lr.csv"
    write_csv_atomic(os.path.join(sweep_dir, results_name), fitted, result_columns(fitted))
    print(f"{len(fitted)} of {summary['completed']} completed runs have the best lr of their N, D "
          f"and seed: fitting those ({os.path.join(sweep_dir, results_name)})")
  fit = analyse(sweep_dir, wandb_mode, results_name)
  if fit is None:
    return summary, False
  report = os.path.join(sweep_dir, "analysis", "report.md")
  summary.update(print_frontier(fit, rows, report))
  return summary, True


# --------------------------------------------------------------------------------- dry-run probe

def probe(config_path: str, row: dict) -> dict:
  """A few real train steps of one plan shape: steady FLOP/s and the fixed cost of a run
  (interpreter start, compilation, final evaluation and checkpoint)."""
  with tempfile.TemporaryDirectory(prefix="sweep_probe_", ignore_cleanup_errors=True) as workdir:
    tokens = PROBE_STEPS * (row["tokens"] // row["steps"])
    overrides = shlex.split(row["overrides"]) + [
        f"--config.train.tokens={tokens}", "--config.train.log_every=1",
        f"--config.train.eval_every={PROBE_STEPS}", f"--config.train.checkpoint_every={PROBE_STEPS}",
        "--config.wandb.mode=disabled"]
    started = time.time()
    proc = start_run(config_path, workdir, overrides)
    try:
      returncode = proc.wait(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      raise RuntimeError(f"{PROBE_STEPS} steps of {row['run_id']} take over {PROBE_TIMEOUT_S} s "
                         "here; run --dry-run on the machine the sweep is for") from None
    if returncode != 0:
      error = open(os.path.join(workdir, "train.log"), errors="replace").read().strip()
      raise RuntimeError(f"the probe of {row['run_id']} failed: "
                         f"{error.splitlines()[-1] if error else f'exit {returncode}'}")
    wall = time.time() - started
    metrics = train.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  steady = sorted(m["tokens_per_sec"] for m in metrics[2:]) or [metrics[-1]["tokens_per_sec"]]
  tokens_per_sec = steady[len(steady) // 2]
  flops_per_token = float(row["flops"]) / row["tokens"]
  return {"run_id": row["run_id"], "flops_per_token": flops_per_token,
          "tokens_per_sec": tokens_per_sec, "flops_per_sec": tokens_per_sec * flops_per_token,
          "overhead_s": max(0.0, wall - tokens / tokens_per_sec)}


def estimate_seconds(rows, probes, eval_tokens: int) -> list[float]:
  """Wall seconds of each row, interpolating the probes' FLOP/s and overhead in log FLOPs/token.

  A run evaluates about 10 times (train.py's default), each eval_tokens forward tokens (1/3 the
  cost of a training token)."""
  probes = sorted(probes, key=lambda p: p["flops_per_token"])
  first, last = probes[0], probes[-1]

  def interpolate(key, x):
    if last["flops_per_token"] == first["flops_per_token"]:
      return first[key]
    t = (math.log(x) - math.log(first["flops_per_token"])) / (
        math.log(last["flops_per_token"]) - math.log(first["flops_per_token"]))
    t = min(1.0, max(0.0, t))
    if key == "flops_per_sec":
      return math.exp((1 - t) * math.log(first[key]) + t * math.log(last[key]))
    return (1 - t) * first[key] + t * last[key]

  estimates = []
  for row in rows:
    flops_per_token = float(row["flops"]) / row["tokens"]
    evals = min(10, int(row["steps"]))
    work = float(row["flops"]) + evals * eval_tokens * flops_per_token / 3
    estimates.append(interpolate("overhead_s", flops_per_token)
                     + work / interpolate("flops_per_sec", flops_per_token))
  return estimates


def dry_run(rows, config_path: str, config, workers: int) -> dict:
  """Probes the smallest and largest shapes and prints the plan with its estimated wall time."""
  by_cost = sorted(rows, key=lambda r: float(r["flops"]) / r["tokens"])
  shapes = [by_cost[0]] + ([by_cost[-1]] if len(by_cost) > 1 else [])
  print(f"probing throughput: {PROBE_STEPS} train steps of {len(shapes)} shape(s) ...", flush=True)
  total_flops = sum(float(r["flops"]) for r in rows)
  total_6nd = sum(float(r["flops_6nd"]) for r in rows)
  summary = {"runs": len(rows), "total_flops": total_flops, "total_flops_6nd": total_6nd}
  try:
    probes = [probe(config_path, row) for row in shapes]
  except RuntimeError as error:
    print_plan(rows)
    print(f"{len(rows)} runs, {total_flops:.3e} FLOPs counted ({total_6nd:.3e} as 6ND); no wall-time "
          f"estimate: {error}")
    return {**summary, "estimated_seconds": None, "probe_error": str(error)}
  estimates = estimate_seconds(rows, probes, config.train.eval_tokens)
  print_plan(rows, estimates)
  serial = sum(estimates)
  for p in probes:
    print(f"probe {p['run_id']}: {p['tokens_per_sec']:,.0f} tokens/s = "
          f"{p['flops_per_sec']:.3g} FLOP/s, {p['overhead_s']:.1f} s fixed cost per run")
  print(f"{len(rows)} runs, {total_flops:.3e} FLOPs counted ({total_6nd:.3e} as 6ND); estimated "
        f"wall time {serial / 60:.1f} min on one worker"
        + (f", about {serial / workers / 60:.1f} min with {workers} if the machine has room for them"
           if workers > 1 else ""))
  return {**summary, "estimated_seconds": serial, "estimated_seconds_per_row": estimates,
          "workers": workers, "probes": probes}


# ------------------------------------------------------------------------------------------ main

def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=DEFAULT_CONFIG,
                      help="experiments/NAME.py with a sweep section (default: the embedded default)")
  parser.add_argument("--workdir", help="the sweep directory (default: ./sweeps/<config name>)")
  parser.add_argument("--executor", choices=("local", "slurm", "wandb"), default="local")
  parser.add_argument("--workers", type=int,
                      help="runs trained at once (local; default: the config's sweep.workers)")
  parser.add_argument("--dry-run", action="store_true",
                      help="write and print the plan with a measured wall-time estimate, train nothing")
  parser.add_argument("--row", type=int, help="train only this plan row (Slurm tasks, W&B agents)")
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args, rest = parser.parse_known_args(argv)
  overrides = [arg for arg in rest if arg.startswith("--config.")]
  unknown = [arg for arg in rest if not arg.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  if args.workers is not None and args.workers < 1:
    parser.error("--workers must be at least 1")
  return args, overrides


def main(argv=None) -> int:
  args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
  # The planner only resolves configs; the runs get the accelerator.
  jax.config.update("jax_platforms", "cpu")
  config_path = os.path.abspath(args.config)
  try:
    config = load_config(config_path, overrides)
    sweep_dir = os.path.abspath(args.workdir or os.path.join("sweeps", config.name))
    if args.row is not None:
      return run_row(sweep_dir, config_path, args.row)
    rows = plan_sweep(config, overrides, sweep_dir)
    workers = args.workers or config.sweep.workers
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return train.EXIT_BAD_INPUT
  os.makedirs(sweep_dir, exist_ok=True)
  write_csv_atomic(os.path.join(sweep_dir, "plan.csv"), rows, PLAN_COLUMNS)
  print(f"sweep {config.name}: {len(rows)} runs ({config.sweep.kind}) planned in "
        f"{os.path.join(sweep_dir, 'plan.csv')}")
  summary, returncode = {"sweep_dir": sweep_dir, "plan": os.path.join(sweep_dir, "plan.csv")}, 0
  if args.dry_run:
    summary.update(dry_run(rows, config_path, config, workers))
  else:
    if args.executor == "local":
      print_plan(rows)
      outcome = execute_local(rows, sweep_dir, config_path, workers)
      if outcome["signal"]:
        return 128 + outcome["signal"]
      summary["locked"] = [run_id for run_id, _ in outcome["locked"]]
      if "failed" in outcome["statuses"].values():
        returncode = 1
    elif args.executor == "slurm":
      summary["sbatch"] = write_sbatch(sweep_dir, config_path, config, rows)
    else:
      summary["wandb_sweep"] = write_wandb_sweep(sweep_dir, config_path, config, rows)
    results, analysed = finish(sweep_dir, rows, config.wandb.mode)
    summary.update(results)
    returncode = returncode or (0 if analysed else 1)
  if args.json:
    print(json.dumps(summary))
  return returncode


if __name__ == "__main__":
  try:
    sys.exit(main())
  except KeyboardInterrupt:  # Ctrl-C outside training (planning, analysis): nothing to save
    print("interrupted", file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
