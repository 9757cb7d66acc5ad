"""Where and from what a result came: the code's commit, the machine, the date (`record`), and a
sweep's DIR/provenance.json (`write_sweep`, read back by `read_sweep`): what the analysis report
opens with."""
import datetime
import json
import os
import platform
import socket
import subprocess

from core import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_PROVENANCE = "provenance.json"


def commit() -> str:
  """The repository's HEAD commit, "-dirty" when tracked files differ from it; "unknown" outside
  a git checkout (an unpacked copy of the project) or without git."""
  try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          timeout=10)
    if head.returncode != 0:
      return "unknown"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=ROOT,
                           capture_output=True, timeout=10).returncode != 0
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return head.stdout.strip() + ("-dirty" if dirty else "")


def record() -> dict:
  """The commit, the host and machine, and the date (UTC) of now."""
  return {"commit": commit(), "host": socket.gethostname(),
          "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
                     f"Python {platform.python_version()}",
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def write_sweep(sweep_dir: str, config, config_path: str, argv: list[str]) -> str:
  """DIR/provenance.json: the sweep's command, its config (the file, relative to the repository
  when inside it; its kind, recipe, data source and sweep section) and record(), rewritten by
  every invocation that plans it; returns its path."""
  inside = os.path.commonpath([ROOT, config_path]) == ROOT
  path = os.path.join(sweep_dir, SWEEP_PROVENANCE)
  files.write_json_atomic(path, {
      "config": os.path.relpath(config_path, ROOT) if inside else config_path,
      "name": config.name, "command": ["python", "sweep.py", *argv],
      "recipe": config.recipe.name, "data": config.data.source,
      "sweep": config.sweep.to_dict(), **record()})
  return path


def read_sweep(sweep_dir: str) -> dict | None:
  """DIR/provenance.json, or None where there is none (a table no sweep wrote)."""
  try:
    with open(os.path.join(sweep_dir, SWEEP_PROVENANCE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None
