"""The sweep's Slurm jobs: their record, DIR/slurm/jobs.json, and what squeue and scontrol say of them.

jobs.json lists every array the sweep submitted: {"jobs": [{"job_id", "submitted", "tasks": {task
id: [run ids]}, "states": {task id: final Slurm state}}]}. A later `sweep.py --executor slurm`
reads it to leave alone the runs whose tasks are still queued or running, and writes into it the
final state (COMPLETED, FAILED, TIMEOUT, CANCELLED, ...) of each task that has left the queue since.
Only squeue and scontrol are used: a cluster without slurmdbd has no sacct, and scontrol knows a
finished job for MinJobAge (300 s by default); a state read later than that is UNKNOWN.
"""
import datetime
import getpass
import json
import os
import re
import subprocess
import time

from core import files

RECORD = os.path.join("slurm", "jobs.json")
POLL_S = 1.0
QUEUE_ERROR_PATIENCE_S = 60  # squeue failing for this long (controller down): stop waiting


def read_record(sweep_dir: str) -> dict:
  path = os.path.join(sweep_dir, RECORD)
  if not os.path.exists(path):
    return {"jobs": []}
  with open(path) as f:
    return json.load(f)


def write_record(sweep_dir: str, record: dict) -> None:
  os.makedirs(os.path.join(sweep_dir, "slurm"), exist_ok=True)
  files.write_json_atomic(os.path.join(sweep_dir, RECORD), record)


def add_job(record: dict, job_id: str, tasks: dict) -> None:
  record["jobs"].append({"job_id": job_id, "submitted": datetime.datetime.now().isoformat(
      timespec="seconds"), "tasks": {str(task): run_ids for task, run_ids in tasks.items()}})


def queue() -> dict[tuple[str, str], str]:
  """{(array job id, task id): state} of this user's jobs in the queue (pending, running,
  requeued, completing); one entry per task (--array). Raises OSError when squeue fails."""
  done = subprocess.run(["squeue", "--noheader", "--array", "--format=%F|%K|%T",
                         f"--user={getpass.getuser()}"], capture_output=True, text=True)
  if done.returncode != 0:
    raise OSError(f"squeue failed: {done.stderr.strip()}")
  entries = {}
  for line in done.stdout.splitlines():
    job_id, task, state = line.strip().split("|")
    entries[(job_id, task)] = state
  return entries


def queued_runs(record: dict, entries=None) -> set[str]:
  """The run ids of the record's tasks that are still in the queue."""
  entries = queue() if entries is None else entries
  return {run_id for job in record["jobs"] for task, run_ids in job["tasks"].items()
          if (job["job_id"], task) in entries for run_id in run_ids}


def final_states(job_id: str) -> dict[str, str]:
  """{task id: JobState} of an array job's tasks as scontrol knows them ({} once it forgot it)."""
  done = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True,
                        text=True)
  states = {}
  for line in done.stdout.splitlines() if done.returncode == 0 else []:
    fields = dict(re.findall(r"(\w+)=(\S*)", line))
    if fields.get("ArrayTaskId", "").isdigit():
      states[fields["ArrayTaskId"]] = fields.get("JobState", "")
  return states


def record_final_states(record: dict, entries: dict) -> None:
  """Fills in the final Slurm state of each task of the record that has left the queue
  (`entries`, from queue()) and has none yet."""
  for job in record["jobs"]:
    states = job.setdefault("states", {})
    ended = [task for task in job["tasks"]
             if task not in states and (job["job_id"], task) not in entries]
    if ended:
      known = final_states(job["job_id"])
      for task in ended:
        states[task] = known.get(task, "UNKNOWN")  # scontrol forgets a job after MinJobAge
        print(f"Slurm job {job['job_id']}_{task}: ended {states[task]}", flush=True)


def wait(record: dict) -> dict:
  """Waits until none of the record's tasks is in the queue, printing each task's state as it
  changes; returns the queue's entries at the end (for record_final_states)."""
  ours = {(job["job_id"], task) for job in record["jobs"] for task in job["tasks"]}
  seen, failing_since = {}, None
  while True:
    try:
      entries = queue()
      failing_since = None
    except OSError as error:
      failing_since = failing_since or time.time()
      if time.time() - failing_since > QUEUE_ERROR_PATIENCE_S:
        raise OSError(f"{error}; stopped waiting (rerun to collect)") from None
      time.sleep(POLL_S)
      continue
    waiting = {key: state for key, state in entries.items() if key in ours}
    for (job_id, task), state in sorted(waiting.items()):
      if seen.get((job_id, task)) != state:
        print(f"Slurm job {job_id}_{task}: {state}", flush=True)
    seen.update(waiting)
    if not waiting:
      return entries
    time.sleep(POLL_S)
