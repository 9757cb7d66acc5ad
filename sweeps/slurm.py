"""The Slurm executor: DIR/sweep.sbatch (one array task per job of the plan), its submission, the wait.

A job of the plan is what the local executor starts as one process: a run alone, or a group of
replicas. Array task K runs `sweep.py --row K --with-group`, which trains plan row K with the other
unfinished rows of its group (sweeps/task.py), so task ids are plan row indices and `--array=0,4,9`
submits exactly the jobs still to train. `submit_rows(script, rows, record, after)` submits one
array for any list of rows, after the jobs `after` (`--dependency=afterok:`, and
`--kill-on-invalid-dep=yes`: a dependency that fails cancels the array, which the next
submission resubmits). The rows are submitted in the order of their `after` edges
(`submit_in_order`): a branch sweep's trunks in one array, then its branches in arrays after the
array tasks that train their trunks, so no branch task holds a slot while its trunk trains; a
branch task whose trunk did not reach its step still trains its trunk first or trains alone
(sweeps/task.py). A sweep without edges is one array.

Preemption: the script asks for `--requeue` and `--open-mode=append`. A task that Slurm requeues
(preemption with PreemptMode=REQUEUE, `scontrol requeue`, a node failure) gets SIGTERM, its runs
checkpoint and exit 143, and the requeued task resumes them from the checkpoint, appending to the
same output file. A time limit or a `scancel` ends the task (TIMEOUT, CANCELLED) with its runs
checkpointed; the next `sweep.py --executor slurm` submits them again and they resume. A task of
several processes (one model, `--ntasks-per-node=2`) stops all of them after the same step, with one
checkpoint, wherever each took the SIGTERM (training/loop.py), and resumes with all of them.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys

from core import files, rundir
from core.config import ConfigError
from sweeps import ROOT, slurm_queue
from sweeps.local import jobs_of, to_train
from sweeps.processes import run_dir_of
from sweeps.rows import PlanRow


def array_spec(task_ids) -> str:
  """Slurm's --array list for these task ids, runs of consecutive ids as ranges: 0-3,7,9-10."""
  ids, parts = sorted(set(task_ids)), []
  for task in ids:
    if parts and parts[-1][1] == task - 1:
      parts[-1][1] = task
    else:
      parts.append([task, task])
  return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def array_tasks(rows) -> dict[int, list[dict]]:
  """The array tasks that train `rows`: task id (the first row's index) -> the rows it trains."""
  return {job[0].row: job for job in jobs_of(rows)}


def write_sbatch(sweep_dir: str, config_path: str, config, rows) -> str:
  sweep_dir, config_path = os.path.abspath(sweep_dir), os.path.abspath(config_path)
  tasks = array_tasks(rows)
  row_command = shlex.join([sys.executable, os.path.join(ROOT, "sweep.py"), "--config",
                            config_path, "--workdir", sweep_dir, "--with-group", "--row"])
  collect_command = shlex.join(["python", "sweep.py", "--config", config_path, "--workdir",
                                sweep_dir, "--executor", "slurm"])
  options = "".join(f"#SBATCH {option}\n" for option in config.sweep.sbatch)
  script = f"""#!/bin/bash
# Sweep {config.name}: one Slurm array task per job of {sweep_dir}/plan.csv ({len(rows)} runs in
# {len(tasks)} tasks: a group of replicas is one task, its id the group's first row). The collect
# command below submits the tasks still to train itself (--wait waits for them); from another
# machine, submit this script with `sbatch {sweep_dir}/sweep.sbatch`. Each task runs
# `sweep.py --row $SLURM_ARRAY_TASK_ID --with-group`, which trains its runs into
# {sweep_dir}/runs/RUN_ID: a finished run is skipped and an interrupted one resumes from its
# checkpoint, so resubmitting the script (or requeueing a task) is safe. A requeued task
# (preemption, `scontrol requeue`) resumes and appends to its output file; runs cut by a time limit
# or scancel resume on the next submission. To report, resubmit what is left, and collect
# results.csv and the analysis:
#   {collect_command}
#
# Multi-node runs (one model on several nodes): raise --nodes and set --ntasks-per-node to the
# GPUs per node (one JAX process per GPU), set sweep.devices to the total GPU count so batches are
# planned as its multiples, and keep the `srun` below: every task then runs the row, train.py
# calls jax.distributed.initialize() because SLURM_NTASKS > 1 (JAX reads the coordinator, process
# count and process id from Slurm's environment), and the data-parallel mesh spans all processes.
#SBATCH --job-name={config.name}
#SBATCH --array={array_spec(tasks)}
#SBATCH --output={sweep_dir}/slurm/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
{options}
set -euo pipefail
cd {shlex.quote(ROOT)}
srun {row_command} "$SLURM_ARRAY_TASK_ID"
"""
  os.makedirs(os.path.join(sweep_dir, "slurm"), exist_ok=True)
  path = os.path.join(sweep_dir, "sweep.sbatch")
  files.write_atomic(path, script)
  print(f"wrote {path} ({len(tasks)} array tasks); to submit it from a Slurm login node:\n"
        f"  sbatch {path}")
  return path


def submit_array(script: str, task_ids, after=()) -> str:
  """Submits the array tasks `task_ids` of `script`; returns the job id. `after`: job ids (or
  JOB_TASK ids of array tasks) that must complete first (--dependency=afterok)."""
  command = ["sbatch", "--parsable", f"--array={array_spec(task_ids)}"]
  if after:
    command += ["--dependency=afterok:" + ":".join(str(job) for job in after),
                "--kill-on-invalid-dep=yes"]
  done = subprocess.run(command + [script], capture_output=True, text=True)
  if done.returncode != 0:
    message = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    raise ConfigError(f"sbatch refused {script}: {message} (check sweep.sbatch)")
  return done.stdout.strip().split(";")[0]


def submit_rows(script: str, rows, record: dict, after=()) -> str:
  """Submits the array that trains `rows` (one task per job of them; after the jobs `after`) and
  adds it to the sweep's record; returns its job id. Trunk-then-branch sweeps call it once for the
  trunks' rows and then for each trunk's branches with after=[that trunk task's JOB_TASK id]."""
  tasks = array_tasks(rows)
  job_id = submit_array(script, tasks, after)
  slurm_queue.add_job(record, job_id, {task: [row.run_id for row in job]
                                       for task, job in tasks.items()})
  print(f"submitted Slurm job {job_id}: array tasks {array_spec(tasks)} ({len(rows)} runs)"
        + (f" after {', '.join(map(str, after))}" if after else ""))
  return job_id


def submit_unfinished(rows, sweep_dir: str, script: str, summary: dict) -> tuple[dict, bool]:
  """Reports how the sweep's earlier jobs left their runs and submits the runs that are neither
  finished nor queued; returns (the record, whether any run is queued now)."""
  record = slurm_queue.read_record(sweep_dir)
  entries = slurm_queue.queue()  # OSError when the controller does not answer: submit nothing
  slurm_queue.record_final_states(record, entries)
  queued = slurm_queue.queued_runs(record, entries)
  report(sweep_dir, rows, record, queued)
  todo = [row for row in rows if row.run_id not in queued and to_train(sweep_dir, rows, row)]
  print(f"{len(rows) - len(todo) - len(queued & {row.run_id for row in rows})} of {len(rows)} "
        f"runs finished, {len(queued)} in queued or running Slurm jobs, {len(todo)} to submit")
  if todo:
    summary["slurm_jobs"] = submit_in_order(script, todo, record, queued)
    summary["slurm_job"] = summary["slurm_jobs"][0]
    print(f"output in {sweep_dir}/slurm/JOB_TASK.out")
  slurm_queue.write_record(sweep_dir, record)
  return record, bool(todo or queued)


def submit_in_order(script: str, rows, record: dict, queued: set) -> list[str]:
  """Submits `rows` in the order of their edges: an array of the jobs that wait for nothing still
  to submit (a branch sweep's trunks), then arrays of their dependents, each after (afterok) the
  array tasks that train their dependencies, so no branch holds a slot while its trunk trains; a
  sweep without edges is one array. Returns the job ids, in submission order."""
  to_submit = {row.run_id for row in rows}
  trains = _tasks_training(record, {dep.run_id for row in rows for dep in row.after}, queued)
  jobs, job_ids = jobs_of(rows), []
  while jobs:
    wave = [job for job in jobs if all(dep.run_id in trains or dep.run_id not in to_submit
                                       for row in job for dep in row.after)] or jobs
    stages = {}
    for job in wave:
      after = tuple(sorted({trains[dep.run_id] for row in job for dep in row.after
                            if dep.run_id in trains}))
      stages.setdefault(after, []).extend(job)
      jobs.remove(job)
    for after, stage_rows in stages.items():
      job_ids.append(submit_rows(script, stage_rows, record, after))
      for task, task_rows in array_tasks(stage_rows).items():
        trains.update({row.run_id: f"{job_ids[-1]}_{task}" for row in task_rows})
  return job_ids


def _tasks_training(record: dict, run_ids: set, queued: set) -> dict:
  """{run id: JOB_TASK of the queued array task training it} from the sweep's record."""
  tasks = {}
  for job in record["jobs"]:
    for task, job_run_ids in job["tasks"].items():
      tasks.update({run_id: f"{job['job_id']}_{task}" for run_id in job_run_ids
                    if run_id in run_ids and run_id in queued})
  return tasks


def execute_slurm(rows, sweep_dir: str, config_path: str, config, wait: bool) -> dict:
  """Writes DIR/sweep.sbatch; where sbatch is on PATH, submits the jobs that are neither finished
  nor queued (submit_unfinished) and, with `wait`, waits for every job of the sweep and reports
  how each run that did not finish ended. Returns Outcome's fields (summary, failed, signal)."""
  summary = {"sbatch": write_sbatch(sweep_dir, config_path, config, rows)}
  if shutil.which("sbatch") is None:
    print("sbatch is not on PATH: nothing submitted")
    return {"summary": summary, "failed": False, "signal": 0}
  try:
    record, pending = submit_unfinished(rows, sweep_dir, summary["sbatch"], summary)
    if not wait:
      if pending:
        print("not waiting (--wait waits): rerun this command to collect what has finished and to "
              "submit what is left")
      return {"summary": summary, "failed": False, "signal": 0}
    entries = slurm_queue.wait(record)
  except KeyboardInterrupt:
    print("stopped waiting; the Slurm jobs go on: rerun this command to collect", file=sys.stderr)
    return {"summary": summary, "failed": False, "signal": signal.SIGINT}
  except OSError as error:
    print(f"error: {error}", file=sys.stderr)
    return {"summary": summary, "failed": True, "signal": 0}
  slurm_queue.record_final_states(record, entries)
  slurm_queue.write_record(sweep_dir, record)
  summary["slurm_unfinished"] = report(sweep_dir, rows, record, set())
  return {"summary": summary, "failed": bool(summary["slurm_unfinished"]), "signal": 0}


def report(sweep_dir: str, rows, record: dict, queued: set) -> dict:
  """Prints how each run of the record's jobs that is neither finished nor queued ended (failed,
  or interrupted by a time limit or scancel: it resumes when submitted again), with its logs;
  returns {run_id: {status, slurm_state, job, log, slurm_log}} of those runs, from the last job
  that trained each."""
  last = {}
  for job in record["jobs"]:
    for task, run_ids in job["tasks"].items():
      for run_id in run_ids:
        last[run_id] = (job, task)
  ended, planned = {}, {row.run_id: row for row in rows}
  for run_id, (job, task) in last.items():
    run_dir = run_dir_of(sweep_dir, planned.get(run_id, PlanRow(run_id)))
    status = rundir.read_status(run_dir) or rundir.INTERRUPTED
    if run_id in queued or status in rundir.FINISHED:
      continue
    end = ended[run_id] = {
        "status": status, "slurm_state": job.get("states", {}).get(task, "UNKNOWN"),
        "job": f"{job['job_id']}_{task}", "log": rundir.path(run_dir, rundir.TRAIN_LOG),
        "slurm_log": os.path.join(sweep_dir, "slurm", f"{job['job_id']}_{task}.out")}
    print(f"{status} {run_id} (Slurm job {end['job']}: {end['slurm_state']}); log: {end['log']} "
          f"(Slurm output: {end['slurm_log']})")
  return ended
