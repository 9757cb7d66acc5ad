"""Atomic file writes and the JSONL reader: the one implementation every module uses.

A file is written under a temporary name, flushed to disk and renamed into place, so a crash or a
full disk never leaves half a file and the previous version stays intact until the new one is
complete; the temporary file is removed when the write fails.
"""
import csv
import errno
import io
import json
import os
import shutil
import sys


# What a write that runs out of room fails with: a full disk, a quota, a file-size limit.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "File too large")


def write_atomic(path: str, content: str | bytes) -> None:
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb" if isinstance(content, bytes) else "w") as f:
      f.write(content)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as error:
    error.filename = error.filename if error.filename and error.filename != tmp else path
    raise
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json_atomic(path: str, obj) -> None:
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def write_jsonl_atomic(path: str, rows: list[dict]) -> None:
  write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def write_csv_atomic(path: str, rows: list[dict], columns) -> None:
  """A CSV of `rows` with these columns (others ignored; None written as an empty cell)."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: "" if v is None else v for k, v in row.items()})
  write_atomic(path, buffer.getvalue())


def out_of_space(error: BaseException) -> tuple[bool, str | None]:
  """(whether `error`, or an error it arose from, is a write that ran out of room, the file it
  names if any): OSErrors by errno, and libraries' wrappers (orbax, tensorstore) by their text."""
  found, filename, seen = False, None, set()
  while error is not None and id(error) not in seen:  # the first that names its file, if any
    seen.add(id(error))
    if (isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS
        or any(text in str(error) for text in _NO_SPACE_TEXT)):
      found, filename = True, filename or getattr(error, "filename", None)
    error = error.__cause__ or error.__context__
  return found, filename


def no_space_message(filename: str | None, directory: str) -> str:
  """One line saying a write ran out of room, where, and what to free."""
  where = os.path.dirname(os.path.abspath(filename)) if filename else os.path.abspath(directory)
  try:
    free = f"{shutil.disk_usage(where).free / 2 ** 20:,.0f} MiB free there"
  except OSError:
    free = "its free space unknown"
  return (f"out of disk space writing {filename or 'under ' + where} ({free}): free space on "
          "that file system (older runs' checkpoints/, the compilation cache, a lower "
          "train.keep_checkpoints) and rerun to resume")


def warn_on_stderr(message: str) -> None:
  print(f"warning: {message}", file=sys.stderr)


def read_jsonl(path: str, warn=warn_on_stderr) -> list[dict]:
  """The JSON objects of a .jsonl file ([] when it does not exist). A line cut short by a crash,
  or one that is not an object, is skipped and reported through `warn(message)`."""
  rows = []
  if not os.path.exists(path):
    return rows
  with open(path, errors="replace") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        warn(f"{path}:{number}: skipped a line that is not JSON (truncated?)")
        continue
      if isinstance(row, dict):
        rows.append(row)
      else:
        warn(f"{path}:{number}: skipped a line that is not a JSON object")
  return rows
