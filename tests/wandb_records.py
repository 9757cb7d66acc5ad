"""Reads an offline W&B run back, for tests: wandb 0.31 ships no reader for its own files.

A `run-*.wandb` file is a LevelDB-style log: a 7-byte file header (":W&B", magic 0xBEE1, version 0),
then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type: full, first, middle,
last); a block tail too short for a header is zero padding. Each reassembled record is a
`wandb_internal_pb2.Record` protobuf.
"""
import glob
import json
import os
import struct
import sys

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str):
  """Yields the protobuf records of one .wandb file in order."""
  with open(path, "rb") as f:
    data = f.read()
  ident, magic, version = struct.unpack("<4sHB", data[:7])
  assert ident == b":W&B" and magic == 0xBEE1 and version == 0, f"{path} is not a W&B log"
  position, parts = 7, []
  while position + HEADER.size <= len(data):
    room = BLOCK - position % BLOCK
    if room < HEADER.size:
      position += room
      continue
    _, length, kind = HEADER.unpack_from(data, position)
    position += HEADER.size
    if kind == 0 and length == 0:  # zero padding at the end of a block or the file
      position += room - HEADER.size
      continue
    parts.append(data[position:position + length])
    position += length
    if kind in (FULL, LAST):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(b"".join(parts))
      parts = []
      yield record


def run_files(workdir: str) -> list[str]:
  """The .wandb files of every offline run under `workdir`, oldest first (one per resume).

  run.finish() returns before wandb-core has written the run's file (it closes the stream
  asynchronously), so the runs this process finished are flushed first: wandb.teardown() waits.
  """
  if "wandb" in sys.modules:
    sys.modules["wandb"].teardown()
  return sorted(glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "run-*.wandb")))


def history(path: str) -> list[dict]:
  """The rows logged with run.log(), as dicts of decoded values (W&B's own `_step` etc. included)."""
  return [_updates(record.history.item) for record in records(path)
          if record.WhichOneof("record_type") == "history"]


def synced_history(paths) -> list[dict]:
  """The history W&B holds once the offline folders of one run are synced in order: a row whose
  `_step` is not above the last one kept is ignored, as W&B ignores a step below its own."""
  kept = []
  for path in paths:
    for row in history(path):
      if not kept or row["_step"] > kept[-1]["_step"]:
        kept.append(row)
  return kept


def _updates(items) -> dict:
  return {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in items}


def run(path: str) -> dict:
  """The run record: id, group, job type and config (as W&B stores it: top-level keys)."""
  for record in records(path):
    if record.WhichOneof("record_type") == "run":
      return {"id": record.run.run_id, "group": record.run.run_group,
              "job_type": record.run.job_type, "config": _updates(record.run.config.update)}
  raise ValueError(f"{path} has no run record")


def run_id(path: str) -> str:
  return run(path)["id"]


def summary(path: str) -> dict:
  """The run's summary at its end: every summary update applied in order."""
  folded = {}
  for record in records(path):
    if record.WhichOneof("record_type") == "summary":
      folded.update(_updates(record.summary.update))
  return folded


def ending(path: str) -> dict:
  """How the run ended: whether it was marked preempting, and its exit code (None: no exit)."""
  kinds = [(record.WhichOneof("record_type"), record) for record in records(path)]
  exits = [record.exit.exit_code for kind, record in kinds if kind == "exit"]
  return {"preempting": any(kind == "preempting" for kind, _ in kinds),
          "exit_code": exits[-1] if exits else None}
