"""Sweep kinds by name (`sweep.kind`): each module of this package registers one, with its sweep
section's keys, its checks, its plan and its analysis.

Adding a kind is adding a module that calls `register(SweepKind(...))` on import: a module of
this package is imported when a config names it; one elsewhere (a test's) by importing it first.
sweep.py plans through `plan_sweep` and ends through sweeps.collect.finish with the kind's analysis.
"""
import dataclasses
import importlib
import pkgutil
from typing import Callable

import ml_collections

from core.config import ConfigError

# The keys every kind's section has (sweep.py and the executors read them):
#   devices  devices each run trains on: batches are planned as multiples of it
#   workers  runs trained at once by --executor local (--workers overrides it)
#   sbatch   extra `#SBATCH` options for --executor slurm, e.g. ("--gpus-per-node=1",
#            "--time=4:00:00"); a run cut by its time limit resumes on the next submission
COMMON_KEYS = dict(devices=1, workers=1, sbatch=())


@dataclasses.dataclass(frozen=True)
class SweepKind:
  """What a kind of sweep is: the rest (train, collect, finish) is the same for every kind."""
  name: str
  keys: dict  # its section's own keys and their defaults, beside COMMON_KEYS (documented in its module)
  check: Callable  # (config) -> None: raises ConfigError on a bad section
  # (config, overrides, sweep_dir, workers, may_train) -> [PlanRow]: the plan; `overrides` are
  # the command line's (sweep.* among them); `may_train`: it may train what it plans from
  # (--executor local without --dry-run)
  plan: Callable
  analyse: Callable  # (sweep_dir, rows, results, config) -> summary dict, or None if it failed
  # (config, overrides, sweep_dir, rows, results summary, train) -> (summary dict, executor
  # Outcome or None): a phase after the analysis that plans more rows from the fit and trains them
  # with `train(rows)` (the isoflop kind's verification run, sweeps/verify.py); None: none
  after_fit: Callable | None = None


KINDS: dict[str, SweepKind] = {}


def register(kind: SweepKind) -> SweepKind:
  KINDS[kind.name] = kind
  return kind


def names() -> list[str]:
  return sorted(set(KINDS) | {module.name for module in pkgutil.iter_modules(__path__)})


def get(name: str) -> SweepKind:
  """The kind `name`, importing sweeps/kinds/NAME.py when it is not registered yet."""
  if name not in KINDS and name in names():
    importlib.import_module(f"{__name__}.{name}")
  if name not in KINDS:
    raise ConfigError(f"sweep.kind must be one of {', '.join(names())}, got {name!r}")
  return KINDS[name]


def section(kind: str, **values) -> ml_collections.ConfigDict:
  """The `sweep` section of a sweep config of this kind, with `values` changed (sweep.py reads
  it; it is left out of a run's hash)."""
  sweep = ml_collections.ConfigDict(dict(kind=kind, **get(kind).keys, **COMMON_KEYS))
  for key, value in values.items():
    if key not in sweep:
      raise ConfigError(f"unknown {kind} sweep key {key!r}")
    sweep[key] = value
  return sweep


def checked(config) -> SweepKind:
  """config.sweep's kind, after checking the section has the kind's keys and passes its checks."""
  if "sweep" not in config:
    raise ConfigError(f"config {config.name!r} has no sweep section; start from "
                      "experiments/default_sweep.py")
  kind = get(config.sweep.get("kind", ""))
  missing = [key for key in (*kind.keys, *COMMON_KEYS) if key not in config.sweep]
  if missing:
    raise ConfigError(f"the {kind.name} sweep section lacks {', '.join(missing)}; see "
                      f"sweeps/kinds/{kind.name}.py")
  if config.sweep.workers < 1 or config.sweep.devices < 1:
    raise ConfigError("sweep.workers and sweep.devices must be at least 1")
  kind.check(config)
  return kind


def plan_sweep(config, overrides: list[str], sweep_dir: str | None = None, workers: int = 1,
               may_train: bool = False) -> list:
  """The plan rows (sweeps.rows.PlanRow) of `config`, loaded with `overrides`, by its kind."""
  return checked(config).plan(config, overrides, sweep_dir, workers, may_train)
