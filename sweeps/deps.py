"""The plan's dependency edges at run time: whether a row may start, and the wait until it may.

Every executor asks the same question of a row's `after` edges (sweeps/rows.Dependency): the local
ready queue (sweeps/local.py), the order of Slurm's afterok arrays (sweeps/slurm.py) and a task
or agent row that trains its dependency first or waits for the process that does (sweeps/task.py).
"""
import time

from core import rundir
from sweeps import locks
from sweeps.processes import run_dir_of
from sweeps.rows import PlanRow

READY = "ready"    # edges met, or its own checkpoints to resume from (it no longer needs them)
WAIT = "wait"      # a dependency is still to reach its step, here or in a live process elsewhere
BROKEN = "broken"  # no dependency will reach its step (it failed, or passed the step without
                   # keeping it): a branch trains from step 0, an independent run of its config
WAIT_POLL_S = 5.0  # between looks at a dependency another process trains


def edge_met(sweep_dir: str, dependency: PlanRow, step: int) -> bool:
  return step in rundir.checkpoint_steps(run_dir_of(sweep_dir, dependency))


def edge_state(sweep_dir: str, dependency: PlanRow, step: int, pending: bool) -> str:
  """READY, WAIT or BROKEN for the edge "after `dependency` reaches `step`"; `pending`: this
  sweep is still to train (or is training) the dependency."""
  run_dir = run_dir_of(sweep_dir, dependency)
  steps = rundir.checkpoint_steps(run_dir)
  if step in steps:
    return READY
  reachable = max(steps, default=0) < step
  return WAIT if reachable and (pending or locks.held(run_dir)) else BROKEN


def state(sweep_dir: str, row: PlanRow, rows_by_id: dict, pending=lambda run_id: True) -> str:
  """Whether `row` may start: READY, WAIT or BROKEN (see above); `pending(run_id)`: whether this
  sweep is still to train that dependency (its lock says whether another process trains it)."""
  if not row.after or rundir.checkpoint_steps(run_dir_of(sweep_dir, row)):
    return READY
  states = {edge_state(sweep_dir, rows_by_id[dep.run_id], dep.step, pending(dep.run_id))
            for dep in row.after}
  return WAIT if WAIT in states else BROKEN if BROKEN in states else READY


def wait_for(sweep_dir: str, row: PlanRow, rows_by_id: dict, train, sleep=time.sleep,
             poll_s: float = WAIT_POLL_S) -> tuple[str, int]:
  """Waits until `row` may start; returns (its state, READY or BROKEN, and 0) or (WAIT and the
  non-zero exit code of `train`). A dependency a live process trains (its lock held) is waited
  for, `sleep(poll_s)` between looks; one nobody trains is trained here, once, by
  `train(dependency row) -> exit code`; one that ended without reaching its step breaks the edge."""
  tried = set()
  while (now := state(sweep_dir, row, rows_by_id)) == WAIT:
    waiting = [rows_by_id[dep.run_id] for dep in row.after
               if edge_state(sweep_dir, rows_by_id[dep.run_id], dep.step, True) == WAIT]
    if any(locks.held(run_dir_of(sweep_dir, dep)) for dep in waiting):
      sleep(poll_s)
      continue
    untried = [dep for dep in waiting if dep.run_id not in tried]
    if not untried:  # trained here and still short of the step (it diverged): the edge is broken
      return BROKEN, 0
    tried.add(untried[0].run_id)
    returncode = train(untried[0])
    if returncode:
      return WAIT, returncode
  return now, 0


def needed(sweep_dir: str, row: PlanRow, rows) -> bool:
  """Whether a run that only serves others (a trunk) is still to train: some unfinished row
  without checkpoints of its own has an edge to a step of it that it can still reach."""
  for other in rows:
    for dep in other.after:
      if (dep.run_id == row.run_id
          and edge_state(sweep_dir, row, dep.step, True) == WAIT
          and not rundir.checkpoint_steps(run_dir_of(sweep_dir, other))
          and rundir.read_status(run_dir_of(sweep_dir, other)) not in rundir.FINISHED):
        return True
  return False
