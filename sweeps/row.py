"""`sweep.py --row K`: trains one plan row, as a W&B agent's run does, or (`--with-group`) the job
of the plan it leads, a run alone or a group of replicas, as a Slurm array task does."""
import os
import shlex
import time

from core import rundir
from core.config import ConfigError
from sweeps import locks, tables
from sweeps.local import execute_local
from sweeps.processes import Forwarder, run_dir_of, settle, start_run


def plan_row(sweep_dir: str, index: int) -> tuple[list[dict], dict]:
  """The plan's rows and row `index` of them; ConfigError when there is no such row."""
  rows = tables.read_plan(sweep_dir)
  if not 0 <= index < len(rows):
    raise ConfigError(f"--row {index} is outside the plan of {sweep_dir} (rows 0..{len(rows) - 1})")
  return rows, rows[index]


def run_row_with_group(sweep_dir: str, config_path: str, index: int) -> int:
  """Trains plan row `index` and the other unfinished rows of its group of replicas as one
  process, as the local executor would (a Slurm array task of sweeps/slurm.py); returns the exit
  code: 0, 1 when a run failed, 128 + the signal that stopped it (143: SIGTERM, checkpointed)."""
  rows, row = plan_row(sweep_dir, index)
  group = row["group"]
  members = [other for other in rows if group and other["group"] == group] or [row]
  restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
  if restarts:
    print(f"Slurm requeued this task {restarts} time(s): resuming", flush=True)
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # one model over all the job's processes
    for member in members:
      code = run_row(sweep_dir, config_path, int(member["row"]))
      if code:
        return code
    return 0
  outcome = execute_local(members, sweep_dir, config_path, workers=1)
  if outcome["signal"]:
    return 128 + outcome["signal"]
  return 1 if rundir.FAILED in outcome["statuses"].values() else 0


def run_row(sweep_dir: str, config_path: str, index: int) -> int:
  """Trains plan row `index` unless it is finished or locked; returns the exit code."""
  _, row = plan_row(sweep_dir, index)
  run_dir = run_dir_of(sweep_dir, row)
  # A multi-task Slurm job trains one run with all its tasks: the array task is the lock there.
  tasks, task = int(os.environ.get("SLURM_NTASKS", "1")), os.environ.get("SLURM_PROCID", "0")
  if tasks == 1:
    holder = locks.acquire_lock(run_dir)
    if holder is not None:
      print(f"row {index} ({row['run_id']}) is being trained by host {holder.get('host')} pid "
            f"{holder.get('pid')}; nothing to do")
      return 0
  try:
    if rundir.read_status(run_dir) in rundir.FINISHED:
      print(f"row {index} ({row['run_id']}) is already {rundir.read_status(run_dir)}")
      return 0
    overrides = row_overrides(row, run_dir)
    started = time.time()
    with Forwarder() as forwarder:
      proc = start_run(config_path, run_dir, overrides,
                       log_name=rundir.TRAIN_LOG if task == "0" else f"train.{task}.log")
      if tasks == 1:
        locks.hand_lock_to(run_dir, proc.pid)
      forwarder.add(proc)
      returncode = proc.wait()
    status = settle(run_dir, returncode, started) if task == "0" else "done"
    print(f"row {index} ({row['run_id']}): {status}")
    return returncode
  finally:
    if tasks == 1:
      locks.release_lock(run_dir)


def row_overrides(row: dict, run_dir: str) -> list[str]:
  """The row's train.py overrides; under `wandb agent`, the run must be the agent's run (its id)
  and online to join the sweep, and a run resumed by a later agent keeps the W&B run it started as."""
  overrides = shlex.split(row["overrides"])
  if os.environ.get("WANDB_SWEEP_ID"):
    overrides.append("--config.wandb.mode=online")
    if (not os.path.exists(rundir.path(run_dir, rundir.WANDB_RUN_ID))
        and os.environ.get("WANDB_RUN_ID")):
      rundir.write_wandb_run_id(run_dir, os.environ["WANDB_RUN_ID"])
  return overrides
