"""The plan's rows (PlanRow, typed) and their dependency edges; DIR/plan.csv, their one serialisation.

Slurm tasks and W&B agents read their row from plan.csv, so its columns are a contract: a row's
`overrides` are stored shell-joined in one cell and its edges as `RUN_ID@STEP` words in `after`;
read_plan parses every column back to its type (plan.csv written before `after` existed gets the
edge of its branch rows from their `trunk` and `branch_step`).
"""
import csv
import dataclasses
import os
import shlex

from core import files
from core.config import ConfigError

PLAN = "plan.csv"
TRUNK = "trunk"  # `kind` of a run that only serves others (a branch sweep's trunk); "": a fitted run
# `kind` of a branch that is never trained: its final loss is predicted (sweeps/predict.py)
PREDICTED = "predicted"


@dataclasses.dataclass(frozen=True)
class Dependency:
  """An edge of the plan: the row may start once run `run_id` has a checkpoint at `step`."""
  run_id: str
  step: int

  def __str__(self) -> str:
    return f"{self.run_id}@{self.step}"


@dataclasses.dataclass(frozen=True)
class PlanRow:
  """One run of the plan: what makes train.py train it (`overrides`), its id, its N, D and FLOPs,
  and the runs it waits for (`after`)."""
  run_id: str
  row: int = 0                       # its index in plan.csv (Slurm's array task id, W&B's `row`)
  group: str = ""                    # the group of replicas it trains in ("": alone)
  budget: float | None = None        # the IsoFLOP budget C it was planned for
  n_target: float = 0.0              # the N asked of the sizing rule
  n_params: int = 0                  # non-embedding N of the shape it got
  n_params_total: int = 0
  tokens: int = 0                    # D, in whole batches
  tokens_per_param: float = 0.0
  batch_size: int = 0
  steps: int = 0
  seed: int = 0
  lr: float = 0.0
  flops: float = 0.0                 # counted training FLOPs (Chinchilla Appendix F)
  flops_6nd: float = 0.0
  kind: str = ""                     # "" | TRUNK | PREDICTED
  trunk: str = ""                    # a branch: the trunk whose checkpoint it starts from
  branch_step: int | None = None     # a branch: the trunk's step it starts from
  overrides: tuple[str, ...] = ()    # train.py's --config.* arguments
  after: tuple[Dependency, ...] = ()  # the edges: runs that must reach a step before this starts


PLAN_COLUMNS = ("row", "run_id", "group", "budget", "n_target", "n_params", "n_params_total",
                "tokens", "tokens_per_param", "batch_size", "steps", "seed", "lr", "flops",
                "flops_6nd", "kind", "trunk", "branch_step", "overrides", "after")
_TYPES = {"row": int, "n_params": int, "n_params_total": int, "tokens": int, "batch_size": int,
          "steps": int, "seed": int, "n_target": float, "tokens_per_param": float, "lr": float,
          "flops": float, "flops_6nd": float}


def to_csv(row: PlanRow) -> dict:
  """The plan.csv cells of a row."""
  cells = {field.name: getattr(row, field.name) for field in dataclasses.fields(PlanRow)}
  cells["overrides"] = shlex.join(row.overrides)
  cells["after"] = " ".join(map(str, row.after))
  return cells


def from_csv(cells: dict) -> PlanRow:
  """A row from its plan.csv cells: the one parser of plan.csv."""
  values = {key: cast(cells[key]) for key, cast in _TYPES.items()}
  budget, branch_step = cells.get("budget"), cells.get("branch_step")
  trunk = cells.get("trunk") or ""
  branch_step = int(branch_step) if branch_step else None
  if "after" in cells:
    after = tuple(Dependency(run_id, int(step)) for run_id, step in
                  (word.rsplit("@", 1) for word in (cells["after"] or "").split()))
  else:  # written before the edges had a column: a branch waits for its trunk at its branch step
    after = (Dependency(trunk, branch_step),) if trunk else ()
  return PlanRow(run_id=cells["run_id"], group=cells.get("group") or "",
                 budget=float(budget) if budget else None, kind=cells.get("kind") or "",
                 trunk=trunk, branch_step=branch_step,
                 overrides=tuple(shlex.split(cells["overrides"])), after=after, **values)


def write_plan(sweep_dir: str, rows: list[PlanRow]) -> str:
  """DIR/plan.csv, written before anything trains; returns its path."""
  path = os.path.join(sweep_dir, PLAN)
  files.write_csv_atomic(path, [to_csv(row) for row in rows], PLAN_COLUMNS)
  return path


def read_plan(sweep_dir: str) -> list[PlanRow]:
  path = os.path.join(sweep_dir, PLAN)
  if not os.path.exists(path):
    raise ConfigError(f"{sweep_dir} has no plan.csv; run sweep.py with --executor slurm or wandb "
                      "(or --dry-run) on this --workdir first")
  with open(path, newline="") as f:
    return [from_csv(cells) for cells in csv.DictReader(f)]


def by_id(rows) -> dict[str, PlanRow]:
  return {row.run_id: row for row in rows}


def depended_on(rows) -> set[str]:
  """The run ids some row of `rows` has an edge to."""
  return {dep.run_id for row in rows for dep in row.after}
