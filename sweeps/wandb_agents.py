"""The W&B executor: DIR/wandb_sweep.yaml (a grid over plan rows), the sweep on the server, and
what a plan row run by `wandb agent` hands to train.py and reports to the agent's run."""
import os
import sys

from core import files, rundir
from core.config import one_line
from sweeps import ROOT
from training import wandb_run


def portable(path: str) -> str:
  """A path relative to the repository when it is inside it (agents run from their own checkout)."""
  path = os.path.abspath(path)
  return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def create_sweep(sweep: dict, config) -> str | None:
  """The id of the W&B sweep created from `sweep`; None when offline, logged out or refused."""
  if os.environ.get("WANDB_MODE") in ("offline", "disabled") or not wandb_run.logged_in():
    return None
  import wandb  # pylint: disable=g-import-not-at-top
  try:
    return wandb.sweep(sweep, entity=config.wandb.entity or None, project=config.wandb.project)
  except Exception as error:  # pylint: disable=broad-except  (no server, bad key, ...)
    print(f"could not create the W&B sweep ({one_line(error)}); create it by hand:",
          file=sys.stderr)
    return None


def write_wandb_sweep(sweep_dir: str, config_path: str, config, rows) -> str:
  """DIR/wandb_sweep.yaml: a W&B grid over the plan's rows; creates the sweep when logged in."""
  import yaml  # pylint: disable=g-import-not-at-top
  sweep = {
      "name": config.name, "project": config.wandb.project, "program": "sweep.py",
      # final_eval_loss: a scalar summary (the history's eval_loss summary holds its min and last).
      "method": "grid", "metric": {"name": "final_eval_loss", "goal": "minimize"},
      "parameters": {"row": {"values": [row.row for row in rows]}},
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


def agent_run_id() -> str | None:
  """The W&B run `wandb agent` started this row for; None outside an agent."""
  return os.environ.get("WANDB_RUN_ID") if os.environ.get("WANDB_SWEEP_ID") else None


def agent_mode() -> str:
  """A row's W&B mode under an agent: online, to join the sweep, unless the agent's environment
  sets WANDB_MODE=offline or disabled."""
  mode = os.environ.get("WANDB_MODE")
  return mode if mode in ("offline", "disabled") else "online"


def hand_off(run_dir: str, agents_row: bool = True) -> tuple[list[str], dict]:
  """(train.py overrides, environment) of a row under an agent: the agent's mode, and WANDB_RUN_ID
  naming the W&B run that holds the row's history, kept in the run directory: the agent's own
  for a new row, the run it started as for a resumed one (under a sweep, wandb.init takes its id
  from WANDB_RUN_ID, not from train.py). A run trained on the way to the agent's row (a branch's
  trunk) leaves the sweep: a W&B run of its own. Nothing outside an agent."""
  agent_run = agent_run_id()
  if agent_run is None:
    return [], {}
  mode = [f"--config.wandb.mode={agent_mode()}"]
  if not agents_row:
    return mode, {"WANDB_SWEEP_ID": None, "WANDB_RUN_ID": None, "WANDB_SWEEP_PARAM_PATH": None}
  if rundir.read_wandb_run_id(run_dir) is None:
    rundir.write_wandb_run_id(run_dir, agent_run)
  return mode, {"WANDB_RUN_ID": rundir.read_wandb_run_id(run_dir)}


def report_to_agent(run_dir: str, row, status: str) -> None:
  """Under an agent whose run did not train the row (it was finished or locked when the agent came,
  or was resumed under the run it started as), the agent's run records the row, its status, the
  W&B run holding its history and its final eval loss: every agent run accounts for its row."""
  agent_run, row_run = agent_run_id(), rundir.read_wandb_run_id(run_dir)
  if agent_run is None or agent_run == row_run:
    return
  result = rundir.read_result(run_dir) or {}
  wandb_run.record(run_dir, agent_run, agent_mode(), job_type="agent",
                   config={"row": row.row, "run_id": row.run_id},
                   summary={"status": status, "wandb_run": row_run,
                            "final_eval_loss": result.get("final_eval_loss")})
