"""The local executor: every unfinished run of the plan, `workers` train.py processes at a time."""
import os
import time

from core import rundir
from sweeps import branches, deps, locks, progress
from sweeps.plan import group_id_of
from sweeps.processes import KILLED_CODES, Forwarder, run_dir_of, settle, start_run
from sweeps.rows import TRUNK, PlanRow, by_id, depended_on

POLL_S = 0.2


def jobs_of(rows) -> list[list[PlanRow]]:
  """The plan as the local executor launches it: each group's rows together, other rows alone."""
  jobs, group_index = [], {}
  for row in rows:
    if row.group and row.group in group_index:
      jobs[group_index[row.group]].append(row)
      continue
    if row.group:
      group_index[row.group] = len(jobs)
    jobs.append([row])
  return jobs


def group_dir_of(sweep_dir: str, rows) -> str:
  return os.path.join(sweep_dir, "groups", group_id_of([row.run_id for row in rows]))


def start_job(sweep_dir: str, config_path: str, rows, workers: int):
  """`python train.py` for one run, or for a group of them as replicas; returns (process, log)."""
  if len(rows) == 1:
    run_dir = run_dir_of(sweep_dir, rows[0])
    return (start_run(config_path, run_dir, list(rows[0].overrides), workers),
            rundir.path(run_dir, rundir.TRAIN_LOG))
  # The runs' common overrides (their seed and lr are the replicas' own) and where each one goes;
  # every replica directory is the run directory its single run would have written.
  common = [o for o in rows[0].overrides
            if not o.startswith(("--config.seed=", "--config.train.lr="))]
  group_dir = group_dir_of(sweep_dir, rows)
  overrides = common + [
      f"--config.train.replicas={len(rows)}",
      f"--config.train.replica_seeds=({', '.join(str(row.seed) for row in rows)},)",
      f"--config.train.replica_lrs=({', '.join(repr(row.lr) for row in rows)},)",
      "--replica-workdirs", *(run_dir_of(sweep_dir, row) for row in rows)]
  return (start_run(config_path, group_dir, overrides, workers),
          rundir.path(group_dir, rundir.TRAIN_LOG))


def claim(sweep_dir: str, job, locked: list, say=print) -> list[dict]:
  """The rows of `job` this process now holds the lock of and that are still to train; rows locked
  by a live process are appended to `locked` as (run_id, holder)."""
  claimed = []
  for row in job:
    run_dir = run_dir_of(sweep_dir, row)
    holder = locks.acquire_lock(run_dir)
    if holder is not None:
      locked.append((row.run_id, holder))
      say(f"skip {row.run_id}: locked by host {holder.get('host')} pid {holder.get('pid')}")
    elif (row.kind != TRUNK  # a finished trunk may be extended
          and rundir.read_status(run_dir) in rundir.FINISHED):  # finished by another sweep meanwhile
      locks.release_lock(run_dir)
    else:
      claimed.append(row)
  return claimed


def describe(job) -> str:
  first = job[0]
  if first.kind == TRUNK:
    return (f"{'trunk' if len(job) == 1 else f'{len(job)} trunks'} of N={first.n_params:.3g} "
            f"to D={first.tokens:.3g}: {', '.join(row.run_id for row in job)}")
  if len(job) == 1:
    return f"{first.run_id}  (N={first.n_params:.3g}, D={first.tokens:.3g})"
  return (f"{len(job)} replicas of N={first.n_params:.3g}, D={first.tokens:.3g}: "
          f"{', '.join(row.run_id for row in job)}")


def reap(sweep_dir: str, running: dict, statuses: dict, say=print) -> list:
  """Settles the processes of `running` that have ended: each run's status, its lock released;
  returns the (job, wall seconds) of those."""
  ended = []
  for pid, (proc, job, started, number, log_path) in list(running.items()):
    if proc.poll() is None:
      continue
    del running[pid]
    ended.append((job, time.time() - started))
    for row in job:
      run_dir = run_dir_of(sweep_dir, row)
      status = statuses[row.run_id] = settle(run_dir, proc.returncode, started, log_path,
                                             len(job))
      locks.release_lock(run_dir)
      result = rundir.read_result(run_dir) or {}
      detail = (f"eval loss {result.get('final_eval_loss'):.4f}" if status == rundir.COMPLETED
                else result.get("error") if proc.returncode in KILLED_CODES
                else f"exit {proc.returncode}")
      say(f"[{number}] {status} {row.run_id}  {detail}  {time.time() - started:.0f} s "
          f"(log: {log_path})")
  return ended


def to_train(sweep_dir: str, rows, row) -> bool:
  """Whether `row` is left to train: a run not finished, a trunk some branch still waits for."""
  if row.kind == TRUNK:
    return deps.needed(sweep_dir, row, rows)
  return rundir.read_status(run_dir_of(sweep_dir, row)) not in rundir.FINISHED


def next_ready(sweep_dir: str, rows, todo, running):
  """The first job of `todo` none of whose rows waits on an edge (None: all wait): a dependency
  this sweep is still to train or is training, or that a live process elsewhere trains."""
  pending = {row.run_id for job in todo for row in job}
  pending |= {row.run_id for _, job, *_ in running.values() for row in job}
  rows_by_id = by_id(rows)
  for job in todo:
    if all(deps.state(sweep_dir, row, rows_by_id, pending.__contains__) != deps.WAIT
           for row in job):
      return job
  return None


def prepare(sweep_dir: str, rows, job) -> None:
  """A trunk extended where a shorter one stands; branches seeded from their trunks' checkpoints."""
  rows_by_id = by_id(rows)
  for row in job:
    if row.kind == TRUNK:
      branches.prepare_trunk(run_dir_of(sweep_dir, row), row.tokens)
    else:
      branches.seed_if_met(sweep_dir, row, rows_by_id)
  if len(job) > 1 and job[0].kind == TRUNK:
    branches.prepare_trunk(group_dir_of(sweep_dir, job), job[0].tokens)


class Tracker:
  """The sweep's progress line (sweeps/progress.py) from the executor's state."""

  def __init__(self, rows, unfinished, workers: int):
    self.total, self.workers, self.finished = len(rows), workers, []
    self.rows_by_id, self.flops_total = by_id(rows), progress.job_flops(rows)
    self.progress = progress.Progress()

  def show(self, todo, running, locked) -> None:
    now = time.time()
    left = [(progress.job_flops(job), 0.0) for job in todo]
    left += [(progress.job_flops(job), now - started) for _, job, started, *_ in running.values()]
    runs_left = sum(len(job) for job in todo) + sum(len(job) for _, job, *_ in running.values())
    flops_left = sum(flops for flops, _ in left)
    flops_elsewhere = progress.job_flops([self.rows_by_id[run_id] for run_id, _ in locked])
    self.progress.show(progress.line(
        self.total - runs_left - len(locked), runs_left, len(running),
        self.flops_total - flops_left - flops_elsewhere, flops_left,
        progress.time_left(self.finished, left, self.workers), len(self.finished),
        elsewhere=len(locked)))


def execute_local(rows, sweep_dir: str, config_path: str, workers: int) -> dict:
  """Trains the rows that are not finished, `workers` processes at a time, the rows of a plan
  group as one process (what is left of it: finished and locked runs are left out).

  Returns {"signal": signum or 0, "locked": [(run_id, holder)], "statuses": {run_id: status}}.
  """
  unfinished = [row for row in rows if to_train(sweep_dir, rows, row)]
  # What others wait for first (trunks): their dependents start as soon as their edges are met.
  served = depended_on(rows)
  todo = sorted(jobs_of(unfinished), key=lambda job: not any(row.run_id in served for row in job))
  print(f"{len(rows) - len(unfinished)} of {len(rows)} runs already finished; {len(unfinished)} to "
        f"train in {len(todo)} processes with {workers} worker{'s' * (workers > 1)}")
  running, locked, statuses, count = {}, [], {}, 0
  tracker = Tracker(rows, unfinished, workers)
  with Forwarder() as forwarder:
    tracker.show(todo, running, locked)
    while (todo and not forwarder.received) or running:
      while todo and len(running) < workers and not forwarder.received:
        job = next_ready(sweep_dir, rows, todo, running)
        if job is None:
          break
        todo.remove(job)
        job = claim(sweep_dir, job, locked, tracker.progress.say)
        if not job:
          continue
        prepare(sweep_dir, rows, job)
        count += 1
        started = time.time()
        proc, log_path = start_job(sweep_dir, config_path, job, workers)
        for row in job:
          locks.hand_lock_to(run_dir_of(sweep_dir, row), proc.pid)
        forwarder.add(proc)
        running[proc.pid] = (proc, job, started, count, log_path)
        tracker.progress.say(f"[{count}/{len(todo) + count}] start {describe(job)}")
        tracker.show(todo, running, locked)
      time.sleep(POLL_S)
      ended = reap(sweep_dir, running, statuses, tracker.progress.say)
      if ended:  # the line changes when a job starts or ends (a log gets no line per poll)
        tracker.finished += [(progress.job_flops(job), seconds) for job, seconds in ended]
        tracker.show(todo, running, locked)
  tracker.progress.close()
  return {"signal": forwarder.received[0] if forwarder.received else 0, "locked": locked,
          "statuses": statuses}
