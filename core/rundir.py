"""The run directory (`train.py --workdir DIR`): its file names, its statuses and the one reader and
writer of each file. Trainer, sweeps, analysis and tools all go through here.

  config.json     the resolved config; `read_config` rebuilds it
  metrics.jsonl   one JSON row per logged step (step, tokens, flops, train_loss, lr, ...)
  result.json     written when the run ends: status (completed | diverged | failed) and its figures
  group.json      a group of replicas only: where each replica's run directory is, how it ended
  checkpoints/    orbax checkpoints (training/checkpoint.py)
  branch.json     a branch only: the trunk run directory it was seeded from and the step
  wandb/, wandb_run_id   the W&B run (offline by default) and the id it keeps across resumes
  train.log       the process's output when a sweep started it
"""
import json
import os
import shutil
import signal
import sys

import ml_collections

from core import files

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
GROUP = "group.json"
CHECKPOINTS = "checkpoints"
BRANCH = "branch.json"     # a run seeded from another's checkpoint (a branch of a trunk)
WANDB = "wandb"
WANDB_RUN_ID = "wandb_run_id"
TRAIN_LOG = "train.log"

# Statuses a run records in result.json (a group in group.json).
RUNNING = "running"        # group.json only: the group has started and not ended
COMPLETED = "completed"
DIVERGED = "diverged"      # the loss went non-finite or past the divergence threshold
FAILED = "failed"          # an error; rerunning retries the run
PREDICTED = "predicted"    # results.csv only: a branch never trained, its loss from a curve law
FINISHED = (COMPLETED, DIVERGED)  # a diverged run diverges again when rerun: it is done
# What a sweep calls a run stopped on request (SIGTERM): never recorded, the rerun resumes it.
INTERRUPTED = "interrupted"
# How train.py's process ends besides 0 (done) and 1 (an error, recorded as failed).
EXIT_BAD_INPUT = 2                       # one line on stderr; nothing was written
EXIT_PREEMPTED = 128 + signal.SIGTERM    # SIGTERM: a checkpoint was saved, rerun to resume
EXIT_INTERRUPTED = 128 + signal.SIGINT   # Ctrl-C (SIGINT): the same, asked for at the terminal


def path(workdir: str, name: str) -> str:
  return os.path.join(workdir, name)


def _read_json(file_path: str):
  """The file's JSON, or None when it is missing or unreadable (a crash mid-write, by hand)."""
  try:
    with open(file_path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except ValueError:
    print(f"warning: {file_path} is unreadable; treating it as absent", file=sys.stderr)
    return None


def write_config(workdir: str, config) -> None:
  files.write_json_atomic(path(workdir, CONFIG), json.loads(config.to_json()))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run recorded; FileNotFoundError when `workdir` is not a run directory."""
  obj = _read_json(path(workdir, CONFIG))
  if obj is None:
    raise FileNotFoundError(f"{workdir} is not a run directory: it has no readable {CONFIG}")
  return ml_collections.ConfigDict(obj)


def read_result(workdir: str) -> dict | None:
  return _read_json(path(workdir, RESULT))


def write_result(workdir: str, result: dict) -> None:
  files.write_json_atomic(path(workdir, RESULT), result)


def read_status(workdir: str) -> str | None:
  """The status a run (result.json) or a group of replicas (group.json) recorded; None: none yet."""
  for name in (RESULT, GROUP):
    recorded = _read_json(path(workdir, name))
    if recorded is not None:
      return recorded.get("status")
  return None


def write_group(workdir: str, status: str, config_hash: str, replicas: list[dict]) -> None:
  """group.json: the group's status and, per replica, {workdir, seed, lr, config_hash, status}."""
  files.write_json_atomic(path(workdir, GROUP),
                          {"status": status, "config_hash": config_hash, "replicas": replicas})


def read_metrics(workdir: str, warn=files.warn_on_stderr) -> list[dict]:
  """metrics.jsonl's rows; lines cut short by a crash are skipped (reported through `warn`)."""
  return files.read_jsonl(path(workdir, METRICS), warn)


def read_wandb_run_id(workdir: str) -> str | None:
  try:
    with open(path(workdir, WANDB_RUN_ID)) as f:
      return f.read().strip() or None
  except FileNotFoundError:
    return None


def write_wandb_run_id(workdir: str, run_id: str) -> None:
  files.write_atomic(path(workdir, WANDB_RUN_ID), run_id)


def checkpoint_steps(workdir: str) -> list[int]:
  """The steps of the complete checkpoints in `workdir`, ascending (orbax names them by step)."""
  try:
    names = os.listdir(path(workdir, CHECKPOINTS))
  except FileNotFoundError:
    return []
  return sorted(int(name) for name in names if name.isdigit())


def seed_from(source_dir: str, step: int, workdir: str) -> None:
  """Starts `workdir` as `source_dir` stood at `step`: its checkpoint of that step and its metrics
  rows up to it. Run from there, `workdir` continues as a resumed run of its own config (a branch
  from its trunk, or a trunk extended from a shorter one); its own numbers replace the source's."""
  os.makedirs(path(workdir, CHECKPOINTS), exist_ok=True)
  target = path(path(workdir, CHECKPOINTS), str(step))
  if not os.path.isdir(target):
    # Under a name orbax ignores until the copy is whole (hard links: the files never change).
    tmp = f"{target}.orbax-checkpoint-tmp-seed{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(path(path(source_dir, CHECKPOINTS), str(step)), tmp, copy_function=_link)
    os.replace(tmp, target)
  rows = [row for row in read_metrics(source_dir) if row.get("step", 0) <= step]
  files.write_jsonl_atomic(path(workdir, METRICS), rows)
  files.write_json_atomic(path(workdir, BRANCH), {"trunk": os.path.abspath(source_dir), "step": step})


def read_branch(workdir: str) -> dict | None:
  """{trunk: the run directory it was seeded from, step} of a branch; None for any other run."""
  return _read_json(path(workdir, BRANCH))


def _link(source: str, target: str) -> None:
  try:
    os.link(source, target)
  except OSError:  # another file system, or no hard links there
    shutil.copy2(source, target)


def discard(workdir: str) -> None:
  """Removes what a previous run left in `workdir` (train.py --force), keeping unrelated files."""
  for name in (CHECKPOINTS, WANDB):
    shutil.rmtree(path(workdir, name), ignore_errors=True)
  for name in (CONFIG, METRICS, RESULT, GROUP, WANDB_RUN_ID, BRANCH):
    if os.path.exists(path(workdir, name)):
      os.remove(path(workdir, name))
