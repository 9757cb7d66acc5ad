"""The per-run lock, DIR/runs/RUN_ID/sweep.lock: one process trains a run, across sweeps and hosts.

The lock file, created with O_CREAT|O_EXCL, holds the host, pid and start time of the process that
trains the run. It is stale when its host is this host and that process is gone; a lock of another
host is trusted (delete it by hand if that host died).
"""
import json
import os
import socket
import sys
import time

from core import files

LOCK_NAME = "sweep.lock"
UNREADABLE_LOCK_GRACE_S = 30  # a lock file being written is empty for a moment; a crash leaves it so


def _process_state(pid: int):
  """(state letter, start time) of a process from /proc, or None where /proc has no such entry."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], fields[19]
  except (OSError, IndexError):
    return None


def lock_record(pid: int) -> dict:
  state = _process_state(pid)
  return {"host": socket.gethostname(), "pid": pid, "start": state[1] if state else None}


def holder_alive(holder: dict) -> bool:
  """False only when the holder is provably gone: this host, and its pid dead, a zombie or reused."""
  if holder.get("host") != socket.gethostname():
    return True
  try:
    os.kill(holder["pid"], 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  state = _process_state(holder["pid"])
  if state is None:
    return True  # no /proc (macOS): the signal test above is all we can know
  return state[0] != "Z" and holder.get("start") in (None, state[1])


def _read_lock(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # being written, or cut short by a crash


def acquire_lock(run_dir: str):
  """Takes run_dir's lock for this process. Returns None when taken, else the live holder's record."""
  os.makedirs(run_dir, exist_ok=True)
  path = os.path.join(run_dir, LOCK_NAME)
  while True:
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = _read_lock(path)
      if holder is None:
        continue  # released meanwhile
      try:
        age = time.time() - os.path.getmtime(path)
      except FileNotFoundError:
        continue
      if (holder and holder_alive(holder)) or (not holder and age < UNREADABLE_LOCK_GRACE_S):
        return holder or {"host": "?", "pid": "?"}
      _take_over_stale(run_dir, path, holder)
      continue
    with os.fdopen(fd, "w") as f:
      json.dump(lock_record(os.getpid()), f)
    return None


def _take_over_stale(run_dir: str, path: str, holder: dict) -> None:
  """Removes a stale lock: moves it aside (an atomic rename, so of two processes taking over only
  one succeeds) and puts it back if what moved was a fresh lock taken meanwhile."""
  aside = f"{path}.stale{os.getpid()}"
  try:
    os.rename(path, aside)
  except FileNotFoundError:
    return
  if _read_lock(aside) != holder:
    os.rename(aside, path)
    return
  os.remove(aside)
  print(f"taking over the stale lock of {run_dir} (host {holder.get('host')}, pid "
        f"{holder.get('pid')})", file=sys.stderr)


def held(run_dir: str) -> bool:
  """Whether a live process (of any sweep) holds run_dir's lock."""
  holder = _read_lock(os.path.join(run_dir, LOCK_NAME))
  return holder is not None and (not holder or holder_alive(holder))


def hand_lock_to(run_dir: str, pid: int) -> None:
  """Points a lock this process holds at the process that trains the run (rewritten atomically):
  if the sweep dies, the lock lives exactly as long as the run does."""
  files.write_json_atomic(os.path.join(run_dir, LOCK_NAME), lock_record(pid))


def release_lock(run_dir: str) -> None:
  try:
    os.remove(os.path.join(run_dir, LOCK_NAME))
  except FileNotFoundError:
    pass
