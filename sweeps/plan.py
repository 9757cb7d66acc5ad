"""The plan: a sweep config's IsoFLOP or grid points resolved into the rows of plan.csv."""
import hashlib
import math
import os
import shlex

from core import defaults
from core.config import ConfigError, apply_override
from sweeps import branches
from sweeps.processes import run_dir_of
from training import memory, schedules
from training import plan as plan_lib

DEFAULT_COMPILATION_CACHE = defaults.get_config().train.compilation_cache
SWEEP_KEYS = tuple(defaults.sweep_section().keys())  # the schema is core/defaults.py's, once
FLOP_CONVENTIONS = ("counted", "6nd")


def isoflop_sizes(budget: float, sizes_per_budget: int, span: float,
                  tokens_per_param: float = 20.0) -> list[float]:
  """Target non-embedding N values of one IsoFLOP curve: evenly spaced in log N over `span`
  (largest / smallest), centred on the compute-optimal guess N = sqrt(C / (6 tokens_per_param))."""
  centre = math.sqrt(budget / (6 * tokens_per_param))
  if sizes_per_budget == 1:
    return [centre]
  return [centre * span ** (i / (sizes_per_budget - 1) - 0.5) for i in range(sizes_per_budget)]


def ladder_sizes(budget: float, sizes_per_budget: int, span: float,
                 tokens_per_param: float = 20.0) -> list[float]:
  """Target N values of one IsoFLOP curve taken from a ladder shared by every budget: the rungs
  r^j (r = span^(1/(sizes - 1)), j integer) nearest the curve's centre, so budgets reuse model
  sizes (and a branch sweep's trunks serve several budgets)."""
  centre = math.sqrt(budget / (6 * tokens_per_param))
  if sizes_per_budget == 1:
    return [centre]
  ratio = span ** (1 / (sizes_per_budget - 1))
  first = round(math.log(centre) / math.log(ratio) - (sizes_per_budget - 1) / 2)
  return [ratio ** j for j in range(first, first + sizes_per_budget)]


def short(x: float) -> str:
  """1.2e5 for 123456: the readable half of a run id."""
  mantissa, exponent = f"{x:.1e}".split("e")
  return f"{mantissa}e{int(exponent)}"


def plan_sweep(config, overrides: list[str], sweep_dir: str | None = None) -> list[dict]:
  """The plan rows of `config` (loaded with `overrides`), duplicates dropped (docs/design.md).
  With `sweep_dir`, the runs share the compilation cache DIR/compilation_cache."""
  sweep = checked_sweep_section(config)
  group = [] if config.wandb.group else [f"--config.wandb.group={config.name}"]
  # sweep.* keys are the sweep's; every other override reaches each run.
  run_overrides = ([o for o in overrides if not o.startswith("--config.sweep.")] + group
                   + compilation_cache_override(config, sweep_dir))
  if sweep.kind == "isoflop":
    sizes = ladder_sizes if sweep.ladder or sweep.branches else isoflop_sizes
    points = [(budget, n, None) for budget in sweep.budgets
              for n in sizes(budget, sweep.sizes_per_budget, sweep.span, sweep.tokens_per_param)]
  else:
    points = [(None, n, d) for n in sweep.n_params for d in sweep.tokens]
  # Runs that cannot fit this machine's accelerator are refused before anything is launched
  # (training/memory.py's estimate; no limit is known on a CPU, so nothing is refused there).
  device_memory = memory.device_memory_limit()
  # Repeats of every point: one run per seed and per peak lr (the lr rule's when none are given).
  variants = [([f"--config.seed={seed}"] if seed is not None else [])
              + ([f"--config.train.lr={float(lr)!r}"] if lr is not None else [])
              for seed in sweep.seeds or (None,) for lr in sweep.lrs or (None,)]
  plan = lambda overrides, n_target, budget, tokens: _plan_point(
      config, sweep, overrides, n_target, budget, tokens, device_memory)
  rows = [plan(run_overrides + variant, n_target, budget, tokens)
          for budget, n_target, tokens in points for variant in variants]
  if sweep.branches:  # the branches of a trunk share its warmup and batch: plan them again so
    settings = branches.shared_settings(config, rows)
    pinned = lambda row: [f"--config.train.warmup_tokens={settings[row['trunk_family']][0]}",
                          f"--config.train.batch_size={settings[row['trunk_family']][1]}"]
    rows = [plan(row["run_overrides"] + pinned(row), row["n_target"], row["budget"],
                 row["tokens"] if row["budget"] is None else None) for row in rows]
    rows = branches.add_trunks(_unique(rows), lambda row, extra, tokens: plan(
        row["run_overrides"] + extra, row["n_target"], None, tokens),
        schedules.get(config.train.schedule).trunk_overrides)
  rows = [{"row": i, **row} for i, row in enumerate(prefer_legacy_ids(_unique(rows), sweep_dir))]
  return group_rows(rows, sweep.max_replicas)


def prefer_legacy_ids(rows: list[dict], sweep_dir: str | None) -> list[dict]:
  """Rows whose run directory was written before config_hash, under the legacy id (training/plan.py
  legacy_config_hash), and not under the new one keep the legacy id: an upgraded sweep finds its
  runs and trunks (and so its groups, named by their members) instead of retraining them."""
  legacy_family = {row["trunk"]: row["legacy_trunk_family"] for row in rows if row.get("trunk")}
  renamed = {}
  for row in rows:
    legacy_id = row.pop("legacy_run_id")
    row.pop("legacy_trunk_family", None)
    if row.get("kind") == branches.TRUNK and row["run_id"] in legacy_family:  # trunk_n1.2e4_<family>
      legacy_id = f"{row['run_id'].rsplit('_', 1)[0]}_{legacy_family[row['run_id']]}"
    if (sweep_dir and not os.path.exists(run_dir_of(sweep_dir, row))
        and os.path.exists(run_dir_of(sweep_dir, {**row, "run_id": legacy_id}))):
      renamed[row["run_id"]] = row["run_id"] = legacy_id
  for row in rows:
    if row.get("trunk"):
      row["trunk"] = renamed.get(row["trunk"], row["trunk"])
  return rows


def _unique(rows: list[dict]) -> list[dict]:
  """The rows with distinct run ids, first kept: two sizes that round to one shape are one run."""
  seen, unique = set(), []
  for row in rows:
    if row["run_id"] not in seen:
      seen.add(row["run_id"])
      unique.append(row)
  return unique


def _plan_point(config, sweep, overrides, n_target, budget, tokens, device_memory) -> dict:
  try:
    return plan_row(config, sweep.devices, overrides, n_target, budget, tokens, device_memory,
                    sweep.flops)
  except ConfigError as error:
    where = f"budget {budget:.3g}, " if budget else ""
    raise ConfigError(f"plan point ({where}N {n_target:.3g}): {error}") from None


def compilation_cache_override(config, sweep_dir: str | None) -> list[str]:
  """The runs' persistent compilation cache, DIR/compilation_cache, unless the config names
  another place (or "" for none): the first run of a shape compiles, every later one loads, on
  any machine that shares the sweep directory (train.compilation_cache is not hashed)."""
  if sweep_dir is None or config.train.compilation_cache != DEFAULT_COMPILATION_CACHE:
    return []
  return [f"--config.train.compilation_cache={os.path.join(sweep_dir, 'compilation_cache')}"]


def group_rows(rows, max_replicas: int) -> list[dict]:
  """Sets each row's `group`: runs of one shape and budget that differ only in seed and lr train
  as one group of replicas (train.replicas, one process and one jitted step), at most
  `max_replicas` and as many as fit the device together; "" for a run trained alone."""
  by_shape = {}
  for row in rows:
    by_shape.setdefault(row.pop("shape"), []).append(row)
  for members in by_shape.values():
    size = max(1, min(max_replicas, *(row.pop("replicas_that_fit") for row in members)))
    for start in range(0, len(members), size):
      group = members[start:start + size]
      group_id = group_id_of([row["run_id"] for row in group]) if len(group) > 1 else ""
      for row in group:
        row["group"] = group_id
  return rows


def group_id_of(run_ids) -> str:
  """A group's directory name under DIR/groups: its members, so another membership is another
  group (train.py refuses to resume a group directory into a different set of replicas)."""
  return f"g{len(run_ids)}_" + hashlib.sha256(",".join(run_ids).encode()).hexdigest()[:12]


def checked_sweep_section(config):
  """config.sweep, checked against core.defaults.sweep_section's keys and their ranges."""
  if "sweep" not in config:
    raise ConfigError(f"config {config.name!r} has no sweep section; start from "
                      "experiments/default_sweep.py")
  sweep = config.sweep
  missing = [key for key in SWEEP_KEYS if key not in sweep]
  if missing:
    raise ConfigError(f"the sweep section lacks {', '.join(missing)}; see experiments/default_sweep.py")
  if sweep.kind == "isoflop":
    if not sweep.budgets or min(sweep.budgets) <= 0:
      raise ConfigError(f"sweep.budgets must be positive FLOP budgets, got {sweep.budgets}")
    if sweep.sizes_per_budget < 1 or sweep.span < 1 or sweep.tokens_per_param <= 0:
      raise ConfigError("sweep needs sizes_per_budget >= 1, span >= 1 and tokens_per_param > 0")
  elif sweep.kind == "grid":
    if not sweep.n_params or not sweep.tokens:
      raise ConfigError("sweep.kind=grid needs sweep.n_params and sweep.tokens, e.g. "
                        "--config.sweep.n_params=(1e4,1e5) --config.sweep.tokens=(1e6,4e6)")
  else:
    raise ConfigError(f"sweep.kind must be isoflop or grid, got {sweep.kind!r}")
  if sweep.workers < 1 or sweep.devices < 1 or sweep.max_replicas < 1:
    raise ConfigError("sweep.workers, sweep.devices and sweep.max_replicas must be at least 1")
  if sweep.flops not in FLOP_CONVENTIONS:
    raise ConfigError(f"sweep.flops must be one of {', '.join(FLOP_CONVENTIONS)}, got {sweep.flops!r}")
  if sweep.branches and not schedules.get(config.train.schedule).supports_branches:
    raise ConfigError(f"sweep.branches needs a schedule with a constant phase, not "
                      f"train.schedule={config.train.schedule}: add --config.train.schedule=wsd")
  if any(not isinstance(lr, (int, float)) or lr <= 0 for lr in sweep.lrs):
    raise ConfigError(f"sweep.lrs must be positive peak learning rates, got {sweep.lrs}")
  if any(not isinstance(seed, int) for seed in sweep.seeds) or len(set(sweep.seeds)) != len(sweep.seeds):
    raise ConfigError(f"sweep.seeds must be distinct integers, got {sweep.seeds}")
  return sweep


def plan_row(config, n_devices, run_overrides, n_target, budget=None, tokens=None,
             device_memory=None, flops: str = "counted") -> dict:
  """One run: the overrides that make train.py train it, its id and its N, D and FLOPs. With a
  budget, D = budget / counted FLOPs per token (flops="counted") or budget / 6N ("6nd")."""
  def resolved(*extra):
    run_config = config.copy_and_resolve_references()
    for override in run_overrides + list(extra):
      apply_override(run_config, override)
    return plan_lib.resolve(run_config, n_devices)

  size = f"--config.model.target_params={float(n_target)!r}"
  # The first resolve gives the exact N of the derived shape (and a batch for a provisional D).
  provisional = tokens if budget is None else budget / (6 * n_target)
  _, _, _, plan = resolved(size, f"--config.train.tokens={max(1, round(provisional))}")
  if budget is not None:
    tokens = budget / (plan.flops_per_token if flops == "counted" else 6 * plan.n_params)
    _, _, _, plan = resolved(size, f"--config.train.tokens={max(1, round(tokens))}")
  steps = max(1, round(tokens / plan.tokens_per_step))
  row_overrides = [size, f"--config.train.tokens={steps * plan.tokens_per_step}",
                   f"--config.train.batch_size={plan.batch_size}"]
  run_config, _, _, plan = resolved(*row_overrides)
  # The budget is a W&B label (config `budget`, unhashed): the Report's IsoFLOP panels filter on it.
  budget_label = [f"--config.wandb.budget={float(budget)!r}"] if budget else []
  needed = memory.required_bytes(memory.check_fits(run_config, device_memory, n_devices))
  # Runs that differ only in seed and lr share a shape, a budget and so a compiled step.
  shape_config = run_config.copy_and_resolve_references()
  shape_config.seed, shape_config.train.lr = 0, 0.0
  # A branch sweep's trunk serves the runs that differ only in their budget (and the warmup and
  # batch rules that follow from it).
  family_config = run_config.copy_and_resolve_references()
  family_config.train.tokens = family_config.train.warmup_tokens = 0
  family_config.train.batch_size = 0
  prefix = f"n{short(plan.n_params)}_d{short(plan.tokens)}"
  return {
      "run_id": f"{prefix}_{plan_lib.config_hash(run_config)}",
      "legacy_run_id": f"{prefix}_{plan_lib.legacy_config_hash(run_config)}",  # prefer_legacy_ids
      "legacy_trunk_family": plan_lib.legacy_config_hash(family_config),
      "shape": plan_lib.config_hash(shape_config),
      "replicas_that_fit": int(device_memory // needed) if device_memory else 1 << 30,
      "seed": run_config.seed, "lr": plan.lr,
      "budget": budget, "n_target": n_target, "n_params": plan.n_params,
      "n_params_total": plan.n_params_total, "tokens": plan.tokens,
      "tokens_per_param": plan.tokens / plan.n_params, "batch_size": plan.batch_size,
      "steps": plan.steps, "flops": plan.flops_per_token * plan.tokens,
      "flops_6nd": 6 * plan.n_params * plan.tokens,
      "overrides": shlex.join(run_overrides + row_overrides + budget_label),
      "run_overrides": run_overrides, "branch_point": plan.branch_step,
      "trunk_family": plan_lib.config_hash(family_config)}
