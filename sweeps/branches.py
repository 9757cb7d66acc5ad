"""Branch sweeps: one constant-lr trunk per model size (and seed and lr), a WSD cooldown branch per
token budget, and what they cost against independent runs.

Hägele et al. 2024: a constant learning rate followed by a short cooldown matches a cosine fitted
to the same D, so one trunk trained at the peak lr serves every D of its size: branch i starts from
the trunk's checkpoint at D_i (1 - cooldown_fraction) and cools down to exactly D_i. A branch is an
ordinary WSD run whose first steps were trained by its trunk: its run directory is seeded with the
trunk's checkpoint and metrics rows at the branch step (core.rundir.seed_from) and train.py resumes
it with its own schedule. An independent WSD run of the same (N, D) with the trunk's warmup and
batch computes exactly what the branch computes.
"""
import os

from core import files, rundir
from model import recipe as recipe_lib
from sweeps import locks
from sweeps.processes import run_dir_of

TRUNK = "trunk"  # plan.csv `kind` of a trunk row ("" for a run whose results are fitted)
COST = "cost.json"


def shared_settings(config, rows) -> dict:
  """trunk family -> the warmup tokens and batch size its branches share: the rules of N and D
  taken at the family's smallest D, so every branch warms up as its trunk did and keeps the
  batch rule's minimum number of steps."""
  settings, recipe = {}, recipe_lib.from_config(config)
  for row in sorted(rows, key=lambda row: row["tokens"], reverse=True):
    warmup = config.train.warmup_tokens or recipe.warmup(row["n_params"], row["tokens"])
    settings[row["trunk_family"]] = (int(warmup), int(row["batch_size"]))
  return settings


def add_trunks(rows: list[dict], resolve_row, trunk_overrides) -> list[dict]:
  """The branch rows with their trunk and branch step, followed by one trunk row per trunk.

  `resolve_row(row, extra_overrides, tokens)` re-plans a row with more overrides and another
  budget (sweeps.plan); `trunk_overrides` make a row its trunk (the schedule's, training/schedules/:
  no cooldown). A trunk is a run without cooldown (e.g. constant after its warmup) to its
  longest branch's start, keeping a checkpoint at every branch step. Its id leaves its length
  out, so adding a larger budget extends the trunk a sweep already trained instead of training
  another.
  """
  families = {}
  for row in rows:
    row.update(kind="", branch_step=row["branch_point"])
    families.setdefault(row["trunk_family"], []).append(row)
  trunk_rows = []
  for family, branches in families.items():
    steps = sorted({row["branch_step"] for row in branches})
    longest = max(branches, key=lambda row: row["branch_step"])
    tokens = steps[-1] * longest["tokens"] // longest["steps"]
    trunk = resolve_row(longest, [*trunk_overrides,
                                  f"--config.train.checkpoint_steps={tuple(steps)}"], tokens)
    trunk_id = f"trunk_{longest['run_id'].split('_d', 1)[0]}_{family}"  # trunk_n1.2e4_<family>
    trunk.update(run_id=trunk_id, kind=TRUNK, budget=None, branch_step="", trunk="")
    for row in branches:
      row["trunk"] = trunk_id
    trunk_rows.append(trunk)
  return rows + trunk_rows


# What a branch needs before it can train (`readiness`).
READY = "ready"      # its own checkpoints (seeded earlier, or interrupted): train.py resumes it
SEED = "seed"        # its trunk has the checkpoint at its branch step: seed it, then resume
WAIT = "wait"        # its trunk is still to get there
ALONE = "alone"      # no trunk will get there (it failed, or passed the step without keeping
                     # it): the branch trains from step 0, an independent run of its own config


def trunk_of(rows: list[dict], row: dict) -> dict | None:
  return next((r for r in rows if r["run_id"] == row.get("trunk")), None)


def readiness(sweep_dir: str, row: dict, trunk: dict, trunk_pending: bool) -> str:
  """What branch `row` needs; `trunk_pending`: this sweep is still to train (or is training) it."""
  if rundir.checkpoint_steps(run_dir_of(sweep_dir, row)):
    return READY
  trunk_dir = run_dir_of(sweep_dir, trunk)
  if row["branch_step"] in rundir.checkpoint_steps(trunk_dir):
    return SEED
  reachable = max(rundir.checkpoint_steps(trunk_dir), default=0) < row["branch_step"]
  return WAIT if reachable and (trunk_pending or locks.held(trunk_dir)) else ALONE


def seed(sweep_dir: str, row: dict, trunk: dict) -> None:
  """Starts branch `row`'s run directory from its trunk's checkpoint at the branch step."""
  rundir.seed_from(run_dir_of(sweep_dir, trunk), row["branch_step"], run_dir_of(sweep_dir, row))


def trunk_needed(sweep_dir: str, trunk: dict, branches: list[dict]) -> bool:
  """Whether some unfinished, unseeded branch waits for a checkpoint this trunk can still make."""
  return any(readiness(sweep_dir, row, trunk, True) == WAIT
             and rundir.read_status(run_dir_of(sweep_dir, row)) not in rundir.FINISHED
             for row in branches if row.get("trunk") == trunk["run_id"])


def prepare_trunk(trunk_dir: str, tokens: int) -> None:
  """Lets a trunk directory that holds a shorter trunk (an earlier sweep's, before a larger budget
  was added) continue to `tokens`: its config and result are dropped, so train.py resumes it from
  its newest checkpoint as a run of the longer trunk (its checkpoints and rows are kept)."""
  try:
    recorded = rundir.read_config(trunk_dir).train.tokens
  except FileNotFoundError:
    return
  if recorded < tokens:
    for name in (rundir.CONFIG, rundir.RESULT, rundir.GROUP):
      if os.path.exists(rundir.path(trunk_dir, name)):
        os.remove(rundir.path(trunk_dir, name))


def trained_fraction(row: dict) -> float:
  """The share of a row's steps that its own process trains: a branch's cooldown, else all."""
  return 1 - int(row["branch_step"]) / int(row["steps"]) if row.get("trunk") else 1.0


def cost(rows: list[dict]) -> dict:
  """Counted FLOPs of the plan as branches (trunks + cooldowns) and as independent runs."""
  independent = sum(float(row["flops"]) for row in rows if row.get("kind") != TRUNK)
  spent = sum(float(row["flops"]) * trained_fraction(row) for row in rows)
  return {"flops_spent": spent, "flops_independent": independent,
          "ratio": spent / independent if independent else None,
          "flops_convention": "counted (Chinchilla Appendix F); evaluations not included"}


def write_cost(sweep_dir: str, rows: list[dict]) -> dict:
  """DIR/cost.json: what the plan costs as planned against the same plan as independent runs."""
  figures = cost(rows)
  files.write_json_atomic(os.path.join(sweep_dir, COST), figures)
  return figures


def print_cost(figures: dict) -> None:
  print(f"cost: {figures['flops_spent']:.3e} FLOPs (counted) with branches against "
        f"{figures['flops_independent']:.3e} as independent runs: ratio {figures['ratio']:.3f}")
