"""The executor interface and EXECUTORS, the lookup from `--executor NAME` to one."""
import dataclasses
from typing import Protocol

from core import rundir
from sweeps import tables
from sweeps.local import execute_local
from sweeps.slurm import write_sbatch
from sweeps.wandb_agents import write_wandb_sweep


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What an executor did with the plan."""
  summary: dict        # what the sweep's --json summary gains
  failed: bool = False  # a run failed: the sweep exits 1 (after collecting)
  signal: int = 0      # stopped by this signal: the sweep exits 128 + signal at once, uncollected


class Executor(Protocol):
  def __call__(self, rows: list[dict], sweep_dir: str, config_path: str, config,
               workers: int) -> Outcome:
    """Trains the plan's rows, or writes what trains them elsewhere."""


def local(rows, sweep_dir, config_path, config, workers) -> Outcome:
  """Trains the rows here, `workers` processes at a time."""
  del config  # the rows carry everything a run needs
  tables.print_plan(rows)
  outcome = execute_local(rows, sweep_dir, config_path, workers)
  return Outcome({"locked": [run_id for run_id, _ in outcome["locked"]]},
                 failed=rundir.FAILED in outcome["statuses"].values(), signal=outcome["signal"])


def slurm(rows, sweep_dir, config_path, config, workers) -> Outcome:
  """DIR/sweep.sbatch, one array task per row; the tasks train (`sweep.py --row K`)."""
  del workers  # Slurm schedules the tasks
  return Outcome({"sbatch": write_sbatch(sweep_dir, config_path, config, rows)})


def wandb(rows, sweep_dir, config_path, config, workers) -> Outcome:
  """DIR/wandb_sweep.yaml and the sweep when logged in; the agents train (`sweep.py --row K`)."""
  del workers  # as many as agents are started
  return Outcome({"wandb_sweep": write_wandb_sweep(sweep_dir, config_path, config, rows)})


EXECUTORS: dict[str, Executor] = {"local": local, "slurm": slurm, "wandb": wandb}
