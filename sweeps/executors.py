"""The executor interface and `get`, the lookup from `--executor NAME` to one: a built-in name
(EXECUTORS) or the dotted name of any importable module that defines
`execute(rows, sweep_dir, config_path, config, workers, wait) -> Outcome` (one module, no
registration; tests/executor_example.py is one)."""
import dataclasses
import importlib
from typing import Protocol

from core import rundir
from core.config import ConfigError
from sweeps import tables
from sweeps.local import execute_local
from sweeps.rows import PlanRow
from sweeps.slurm import execute_slurm
from sweeps.wandb_agents import write_wandb_sweep


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What an executor did with the plan."""
  summary: dict        # what the sweep's --json summary gains
  failed: bool = False  # a run failed: the sweep exits 1 (after collecting)
  signal: int = 0      # stopped by this signal: the sweep exits 128 + signal at once, uncollected


class Executor(Protocol):
  def __call__(self, rows: list[PlanRow], sweep_dir: str, config_path: str, config,
               workers: int, wait: bool) -> Outcome:
    """Trains the plan's rows, or submits or writes what trains them elsewhere (and, with `wait`,
    waits for a scheduler's jobs to end), in the order their `after` edges say (sweeps/deps.py)."""


def local(rows, sweep_dir, config_path, config, workers, wait=True) -> Outcome:
  """Trains the rows here, `workers` processes at a time."""
  del config, wait  # the rows carry everything a run needs; it always waits for its runs
  tables.print_plan(rows)
  outcome = execute_local(rows, sweep_dir, config_path, workers)
  return Outcome({"locked": [run_id for run_id, _ in outcome["locked"]]},
                 failed=rundir.FAILED in outcome["statuses"].values(), signal=outcome["signal"])


def slurm(rows, sweep_dir, config_path, config, workers, wait=False) -> Outcome:
  """DIR/sweep.sbatch, one array task per job (a run, or a group of replicas), submitted where
  sbatch is on PATH; the tasks train (`sweep.py --row K --with-group`)."""
  del workers  # Slurm schedules the tasks
  return Outcome(**execute_slurm(rows, sweep_dir, config_path, config, wait))


def wandb(rows, sweep_dir, config_path, config, workers, wait=False) -> Outcome:
  """DIR/wandb_sweep.yaml and the sweep when logged in; the agents train (`sweep.py --row K`)."""
  del workers, wait  # as many as agents are started, and they report to W&B
  return Outcome({"wandb_sweep": write_wandb_sweep(sweep_dir, config_path, config, rows)})


EXECUTORS: dict[str, Executor] = {"local": local, "slurm": slurm, "wandb": wandb}


def get(name: str) -> Executor:
  """The executor `--executor NAME` names; a ConfigError (one line) before anything is planned."""
  if name in EXECUTORS:
    return EXECUTORS[name]
  try:
    module = importlib.import_module(name)
  except ImportError as error:
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)} or an importable module "
                      f"defining execute(...); {name!r} does not import ({error})") from None
  if not callable(getattr(module, "execute", None)):
    raise ConfigError(f"--executor {name}: the module defines no execute(rows, sweep_dir, "
                      "config_path, config, workers, wait) function")
  return module.execute
