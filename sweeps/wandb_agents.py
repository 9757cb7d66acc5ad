"""The W&B executor's files: DIR/wandb_sweep.yaml, a grid over plan rows, and the sweep on the server."""
import os
import sys

from core import files
from sweeps import ROOT


def portable(path: str) -> str:
  """A path relative to the repository when it is inside it (agents run from their own checkout)."""
  path = os.path.abspath(path)
  return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def wandb_logged_in() -> bool:
  """Whether a W&B server is configured for this user, judged offline (no network call)."""
  if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
    return False
  if os.environ.get("WANDB_API_KEY"):
    return True
  import netrc  # pylint: disable=g-import-not-at-top
  host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
  try:
    return netrc.netrc().authenticators(host) is not None
  except (OSError, netrc.NetrcParseError):
    return False


def create_sweep(sweep: dict, config) -> str | None:
  """The id of the W&B sweep created from `sweep`; None when offline, logged out or refused."""
  if not wandb_logged_in():
    return None
  import wandb  # pylint: disable=g-import-not-at-top
  try:
    return wandb.sweep(sweep, entity=config.wandb.entity or None, project=config.wandb.project)
  except Exception as error:  # pylint: disable=broad-except  (no server, bad key, ...)
    print(f"could not create the W&B sweep ({error}); create it by hand:", file=sys.stderr)
    return None


def write_wandb_sweep(sweep_dir: str, config_path: str, config, rows) -> str:
  """DIR/wandb_sweep.yaml: a W&B grid over the plan's rows; creates the sweep when logged in."""
  import yaml  # pylint: disable=g-import-not-at-top
  sweep = {
      "name": config.name, "project": config.wandb.project, "program": "sweep.py",
      "method": "grid", "metric": {"name": "eval_loss", "goal": "minimize"},
      "parameters": {"row": {"values": [int(row["row"]) for row in rows]}},
      "command": ["${env}", "${interpreter}", "${program}", "--config", portable(config_path),
                  "--workdir", portable(sweep_dir), "${args}"]}
  if config.wandb.entity:
    sweep["entity"] = config.wandb.entity
  path = os.path.join(sweep_dir, "wandb_sweep.yaml")
  files.write_atomic(path, yaml.safe_dump(sweep, sort_keys=False))
  print(f"wrote {path} (a grid over {len(rows)} plan rows)")
  target = "/".join(filter(None, [config.wandb.entity, config.wandb.project]))
  sweep_id = create_sweep(sweep, config)
  if sweep_id:
    print(f"created W&B sweep {sweep_id}; on each machine (sharing {portable(sweep_dir)}), "
          f"from {ROOT}:\n  wandb agent {target}/{sweep_id}")
  else:
    print(f"W&B is offline or not logged in: create the sweep, then start agents (on machines "
          f"sharing {portable(sweep_dir)}, from {ROOT}):\n"
          f"  wandb sweep {path}\n  wandb agent {target}/SWEEP_ID   # the id `wandb sweep` prints")
  return path
