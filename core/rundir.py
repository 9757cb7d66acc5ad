"""The run directory (`train.py --workdir DIR`): its file names, its statuses and the one reader and
writer of each file. Trainer, sweeps, analysis and tools all go through here.

  config.json     the resolved config; `read_config` rebuilds it
  metrics.jsonl   one JSON row per logged step (step, tokens, flops, train_loss, lr, ...)
  result.json     written when the run ends: status (completed | diverged | failed) and its figures
  group.json      a group of replicas only: where each replica's run directory is, how it ended
  checkpoints/    orbax checkpoints (training/checkpoint.py)
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
WANDB = "wandb"
WANDB_RUN_ID = "wandb_run_id"
TRAIN_LOG = "train.log"

# Statuses a run records in result.json (a group in group.json).
RUNNING = "running"        # group.json only: the group has started and not ended
COMPLETED = "completed"
DIVERGED = "diverged"      # the loss went non-finite or past the divergence threshold
FAILED = "failed"          # an error; rerunning retries the run
FINISHED = (COMPLETED, DIVERGED)  # a diverged run diverges again when rerun: it is done
# What a sweep calls a run stopped on request (SIGTERM): never recorded, the rerun resumes it.
INTERRUPTED = "interrupted"
# How train.py's process ends besides 0 (done) and 1 (an error, recorded as failed).
EXIT_BAD_INPUT = 2                       # one line on stderr; nothing was written
EXIT_PREEMPTED = 128 + signal.SIGTERM    # SIGTERM: a checkpoint was saved, rerun to resume


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


def discard(workdir: str) -> None:
  """Removes what a previous run left in `workdir` (train.py --force), keeping unrelated files."""
  for name in (CHECKPOINTS, WANDB):
    shutil.rmtree(path(workdir, name), ignore_errors=True)
  for name in (CONFIG, METRICS, RESULT, GROUP, WANDB_RUN_ID):
    if os.path.exists(path(workdir, name)):
      os.remove(path(workdir, name))
