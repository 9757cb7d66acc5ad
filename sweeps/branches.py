"""Branch sweeps: one constant-lr trunk per model size (and seed and lr), a WSD cooldown branch per
token budget, and what they cost against independent runs.

Hägele et al. 2024: a constant learning rate followed by a short cooldown matches a cosine fitted
to the same D, so one trunk trained at the peak lr serves every D of its size: branch i starts from
the trunk's checkpoint at D_i (1 - cooldown_fraction) and cools down to exactly D_i. A branch is an
ordinary WSD run whose first steps were trained by its trunk: its row has the edge "after the trunk
reaches the branch step" (sweeps/deps.py), its run directory is seeded with the trunk's checkpoint
and metrics rows at that step (core.rundir.seed_from) and train.py resumes it with its own
schedule. An independent WSD run of the same (N, D) with the trunk's warmup and batch computes
exactly what the branch computes.
"""
import dataclasses
import os

from core import files, rundir
from model import recipe as recipe_lib
from sweeps import deps
from sweeps.processes import run_dir_of
from sweeps.rows import PREDICTED, TRUNK, Dependency, PlanRow

COST = "cost.json"


def shared_settings(config, planned) -> dict:
  """trunk family -> the warmup tokens and batch size its branches share: the rules of N and D
  taken at the family's smallest D, so every branch warms up as its trunk did and keeps the
  batch rule's minimum number of steps."""
  settings, recipe = {}, recipe_lib.from_config(config)
  for p in sorted(planned, key=lambda p: p.row.tokens, reverse=True):
    warmup = config.train.warmup_tokens or recipe.warmup(p.row.n_params, p.row.tokens)
    settings[p.family] = (int(warmup), int(p.row.batch_size))
  return settings


def branch_step(planned) -> int:
  """The step a branch leaves its trunk at: where its own schedule's constant phase ends."""
  return planned.branch_step


def trunk_overrides(schedule_overrides, steps: list[int]) -> list[str]:
  """What makes a run of a branch's config its trunk: its schedule's (training/schedules/: no
  cooldown) and a checkpoint kept at every branch step."""
  return [*schedule_overrides, f"--config.train.checkpoint_steps={tuple(steps)}"]


def add_trunks(planned: list, replan, schedule_overrides) -> list:
  """The branches (sweeps.plan.Planned) with their trunk, branch step and edge, followed by one
  trunk per family.

  `replan(planned, extra_overrides, tokens)` plans a run again with more overrides and another D
  (sweeps.plan); `schedule_overrides` make a run its trunk (the schedule's `trunk_overrides`). A trunk runs to its longest branch's start. Its id leaves its length out, so
  adding a larger budget extends the trunk a sweep already trained instead of training another.
  """
  families = {}
  for p in planned:
    families.setdefault(p.family, []).append(p)
  branched, trunks = {}, []
  for family, members in families.items():
    steps = sorted({branch_step(p) for p in members})
    longest = max(members, key=branch_step)
    tokens = steps[-1] * longest.row.tokens // longest.row.steps
    trunk = replan(longest, trunk_overrides(schedule_overrides, steps), tokens)
    trunk_id = f"trunk_{longest.row.run_id.split('_d', 1)[0]}_{family}"  # trunk_n1.2e4_<family>
    trunks.append(dataclasses.replace(trunk, row=dataclasses.replace(
        trunk.row, run_id=trunk_id, kind=TRUNK, budget=None)))
    for p in members:
      step = branch_step(p)
      branched[p.row.run_id] = dataclasses.replace(p, row=dataclasses.replace(
          p.row, trunk=trunk_id, branch_step=step, after=(Dependency(trunk_id, step),)))
  return [branched[p.row.run_id] for p in planned] + trunks


def seed_if_met(sweep_dir: str, row: PlanRow, rows_by_id: dict) -> None:
  """Starts branch `row`'s run directory from its trunk's checkpoint at the branch step, unless
  it has checkpoints of its own (it resumes them) or the trunk has no such checkpoint (it trains
  alone from step 0)."""
  if not row.trunk or rundir.checkpoint_steps(run_dir_of(sweep_dir, row)):
    return
  trunk = rows_by_id[row.trunk]
  if deps.edge_met(sweep_dir, trunk, row.branch_step):
    rundir.seed_from(run_dir_of(sweep_dir, trunk), row.branch_step, run_dir_of(sweep_dir, row))


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


def trained_fraction(row: PlanRow) -> float:
  """The share of a row's steps that its own process trains: a branch's cooldown, none of a
  predicted branch, else all."""
  if row.kind == PREDICTED:
    return 0.0
  return 1 - row.branch_step / row.steps if row.trunk else 1.0


def cost(rows: list[PlanRow]) -> dict:
  """Counted FLOPs of the plan as branches (trunks + cooldowns) and as independent runs."""
  independent = sum(row.flops for row in rows if row.kind != TRUNK)
  spent = sum(row.flops * trained_fraction(row) for row in rows)
  return {"flops_spent": spent, "flops_independent": independent,
          "ratio": spent / independent if independent else None,
          "predicted_runs": sum(row.kind == PREDICTED for row in rows),
          "flops_convention": "counted (Chinchilla Appendix F); evaluations not included"}


def write_cost(sweep_dir: str, rows: list[PlanRow]) -> dict:
  """DIR/cost.json: what the plan costs as planned against the same plan as independent runs."""
  figures = cost(rows)
  files.write_json_atomic(os.path.join(sweep_dir, COST), figures)
  return figures


def print_cost(figures: dict) -> None:
  predicted = (f" ({figures['predicted_runs']} branches predicted, not trained)"
               if figures.get("predicted_runs") else "")
  print(f"cost: {figures['flops_spent']:.3e} FLOPs (counted) with branches{predicted} against "
        f"{figures['flops_independent']:.3e} as independent runs: ratio {figures['ratio']:.3f}")
