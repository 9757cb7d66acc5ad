"""`sweep.py --row K`: trains one plan row as a W&B agent's run does, or (`--with-group`) the job
of the plan it leads, a run alone or a group of replicas, as a Slurm array task does."""
import os
import time

from core import rundir
from core.config import ConfigError
from sweeps import branches, deps, locks, wandb_agents
from sweeps.local import execute_local
from sweeps.processes import Forwarder, run_dir_of, settle, start_run
from sweeps.rows import TRUNK, PlanRow, by_id, read_plan


def read_row(sweep_dir: str, index: int) -> tuple[list[PlanRow], PlanRow]:
  """The plan's rows and row `index` of them; ConfigError when there is no such row."""
  rows = read_plan(sweep_dir)
  if not 0 <= index < len(rows):
    raise ConfigError(f"--row {index} is outside the plan of {sweep_dir} (rows 0..{len(rows) - 1})")
  return rows, rows[index]


def run_row_with_group(sweep_dir: str, config_path: str, index: int) -> int:
  """Trains plan row `index` and the other unfinished rows of its group of replicas as one
  process, as the local executor would (a Slurm array task of sweeps/slurm.py); returns the exit
  code: 0, 1 when a run failed, 128 + the signal that stopped it (143: SIGTERM, checkpointed).
  Rows of a branch sweep (trunks, branches) and multi-task jobs go one at a time through run_row,
  where a branch trains its trunk first or waits for the task that does."""
  rows, row = read_row(sweep_dir, index)
  members = [other for other in rows if row.group and other.group == row.group] or [row]
  restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
  if restarts:
    print(f"Slurm requeued this task {restarts} time(s): resuming", flush=True)
  if (int(os.environ.get("SLURM_NTASKS", "1")) > 1  # one model over all the job's processes
      or any(member.kind == TRUNK or member.after for member in members)):
    for member in members:
      code = run_row(sweep_dir, config_path, member.row)
      if code:
        return code
    return 0
  outcome = execute_local(members, sweep_dir, config_path, workers=1)
  if outcome["signal"]:
    return 128 + outcome["signal"]
  return 1 if rundir.FAILED in outcome["statuses"].values() else 0


def run_row(sweep_dir: str, config_path: str, index: int, sleep=time.sleep) -> int:
  """Trains plan row `index` unless it is finished or locked; returns the exit code. A row whose
  edges are not met trains its dependencies first (or waits for the process that does; `sleep`
  between looks), so Slurm tasks and W&B agents may take the rows in any order."""
  rows, row = read_row(sweep_dir, index)
  if row.after:
    rows_by_id = by_id(rows)
    _, returncode = deps.wait_for(sweep_dir, row, rows_by_id, lambda dependency: _train_row(
        sweep_dir, config_path, rows, dependency, dependency.row, agents_row=False), sleep)
    if returncode:
      wandb_agents.report_to_agent(run_dir_of(sweep_dir, row), row,
                                   f"stopped while its trunk trained (exit {returncode})")
      return returncode
    branches.seed_if_met(sweep_dir, row, rows_by_id)
  return _train_row(sweep_dir, config_path, rows, row, index)


def _train_row(sweep_dir: str, config_path: str, rows, row, index: int,
               agents_row: bool = True) -> int:
  """Trains `row` unless it is finished, locked or (a trunk) not needed; returns the exit code.
  `agents_row`: the row this process was started for, whose W&B run a `wandb agent`'s run is;
  False for a trunk trained on the way to its branch."""
  run_dir = run_dir_of(sweep_dir, row)

  def report(status: str) -> None:
    if agents_row:
      wandb_agents.report_to_agent(run_dir, row, status)

  # A multi-task Slurm job trains one run with all its tasks: the array task is the lock there.
  tasks, task = int(os.environ.get("SLURM_NTASKS", "1")), os.environ.get("SLURM_PROCID", "0")
  if tasks == 1:
    holder = locks.acquire_lock(run_dir)
    if holder is not None:
      where = f"host {holder.get('host')} pid {holder.get('pid')}"
      print(f"row {index} ({row.run_id}) is being trained by {where}; nothing to do")
      report(f"locked by {where}")
      return 0
  try:
    status = rundir.read_status(run_dir)
    if row.kind == TRUNK:
      if not deps.needed(sweep_dir, row, rows):
        print(f"row {index} ({row.run_id}): every branch it serves has its checkpoint")
        report("not needed: every branch it serves has its checkpoint")
        return 0
      branches.prepare_trunk(run_dir, row.tokens)
    elif status in rundir.FINISHED:
      print(f"row {index} ({row.run_id}) is already {status}")
      report(status)
      return 0
    agent_overrides, env = wandb_agents.hand_off(run_dir, agents_row)
    started = time.time()
    with Forwarder() as forwarder:
      proc = start_run(config_path, run_dir, list(row.overrides) + agent_overrides,
                       log_name=rundir.TRAIN_LOG if task == "0" else f"train.{task}.log", env=env)
      if tasks == 1:
        locks.hand_lock_to(run_dir, proc.pid)
      forwarder.add(proc)
      returncode = proc.wait()
    status = settle(run_dir, returncode, started) if task == "0" else "done"
    print(f"row {index} ({row.run_id}): {status}")
    if task == "0":
      report(status)
    return returncode
  finally:
    if tasks == 1:
      locks.release_lock(run_dir)
