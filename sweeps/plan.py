"""The shared row planner: one resolved run per point (plan_run) and a pre-training sweep's rows
(plan_points: seed x lr repeats, branch trunks, groups of replicas), for every sweep kind."""
import dataclasses
import hashlib
import os

from core import defaults, rundir
from core.config import ConfigError, apply_override
from sweeps import branches, predict
from sweeps.processes import run_dir_of
from sweeps.rows import PREDICTED, Dependency, PlanRow
from training import limits, memory, schedules
from training import plan as plan_lib

DEFAULT_COMPILATION_CACHE = defaults.get_config().train.compilation_cache
FLOP_CONVENTIONS = ("counted", "6nd")

# The sweep keys of the pre-training kinds (isoflop, grid), beside kinds.COMMON_KEYS:
#   budgets           IsoFLOP compute budgets C in FLOPs, counted as `flops` says
#   flops             counted: a run's D is its budget / its counted training FLOPs per token
#                     (Chinchilla Appendix F: embeddings, attention, logits), so every run of a
#                     budget spends it and results.csv's `flops` equals its `budget` within one
#                     batch; 6nd: D = C / (6 N), N non-embedding (Kaplan's approximation)
#   sizes_per_budget  model sizes on each IsoFLOP curve
#   span              largest / smallest N on a curve, evenly spaced in log N around the centre
#   tokens_per_param  the curve's centre: N = sqrt(C / (6 tokens_per_param)); Chinchilla's is 20
#   ladder            take each curve's sizes from one ladder of N shared by every budget (r^j,
#                     r = span^(1/(sizes_per_budget - 1))) instead of centring them on each budget
#   branches          one constant-lr trunk per model size (and seed and lr) and a cooldown branch
#                     per budget (sweeps/branches.py); needs a schedule whose lr before its first
#                     cooldown does not depend on the run's length (wsd, wsd_s, constant,
#                     inverse_sqrt); implies ladder
#   n_params, tokens  the grid's target non-embedding N values and token budgets D
#   seeds, lrs        repeats of every point: one run per seed x peak lr ((): config.seed, the lr rule)
#   max_replicas      runs of one shape and budget (differing in seed or lr) trained together as one
#                     group of replicas (train.replicas) by --executor local and slurm; 1: alone
#   predict_branches  a branch sweep that trains every trunk but, in each trunk's family, only its
#                     shortest and longest branch (and `held_out_branches` others): the rest get
#                     their final loss from a curve law fitted on those (sweeps/predict.py;
#                     DIR/analysis/curves.json; results.csv status `predicted`), fitted beside the
#                     trained runs; needs branches
#   held_out_branches predicted branches trained anyway, to measure the prediction's error
#   inference_tokens  tokens the trained models will serve; > 0 adds the inference-aware frontier
#                     (python -m analysis --inference-tokens: least 6ND + 2N x this, Sardana et
#                     al. 2023) to the analysis and the sweep's last lines; 0: none
PRETRAINING_KEYS = dict(
    budgets=(), flops="counted", sizes_per_budget=5, span=16.0, tokens_per_param=20.0,
    ladder=False, branches=False, n_params=(), tokens=(), seeds=(), lrs=(), max_replicas=8,
    predict_branches=False, held_out_branches=2, inference_tokens=0.0)


@dataclasses.dataclass(frozen=True)
class Planned:
  """A planned run: its plan row and what re-planning and grouping it needs."""
  row: PlanRow
  run_overrides: tuple[str, ...]  # what it was planned from (before its own N, D and batch)
  shape: str              # runs differing only in seed and lr share a compiled step
  family: str             # runs differing only in D (and the warmup and batch that follow) share a trunk
  replicas_that_fit: int  # on the device, of this shape
  branch_step: int | None  # where its schedule's constant phase ends (a branch leaves its trunk)
  legacy_run_id: str      # its id under training.plan.legacy_config_hash (prefer_legacy_ids)
  legacy_family: str


def short(x: float) -> str:
  """1.2e5 for 123456: the readable half of a run id."""
  mantissa, exponent = f"{x:.1e}".split("e")
  return f"{mantissa}e{int(exponent)}"


def run_id_of(plan, run_config, legacy: bool = False) -> str:
  """A run's directory name: its N and D to read, its config's hash for identity (the legacy
  hash: its name before the hash hashed the difference from the defaults)."""
  hash_of = plan_lib.legacy_config_hash if legacy else plan_lib.config_hash
  return f"n{short(plan.n_params)}_d{short(plan.tokens)}_{hash_of(run_config)}"


def run_overrides_of(config, overrides: list[str], sweep_dir: str | None) -> list[str]:
  """What every run of a sweep gets: the command line's overrides but its sweep.* keys, the W&B
  group (the sweep's name unless the config names one) and the compilation cache."""
  group = [] if config.wandb.group else [f"--config.wandb.group={config.name}"]
  return ([o for o in overrides if not o.startswith("--config.sweep.")] + group
          + compilation_cache_override(config, sweep_dir))


def compilation_cache_override(config, sweep_dir: str | None) -> list[str]:
  """The runs' persistent compilation cache, DIR/compilation_cache, unless the config names
  another place (or "" for none): the first run of a shape compiles, every later one loads, on
  any machine that shares the sweep directory (train.compilation_cache is not hashed)."""
  if sweep_dir is None or config.train.compilation_cache != DEFAULT_COMPILATION_CACHE:
    return []
  return [f"--config.train.compilation_cache={os.path.join(sweep_dir, 'compilation_cache')}"]


def plan_run(config, n_devices: int, run_overrides, n_target: float | None = None,
             budget: float | None = None, tokens: float | None = None, device_memory=None,
             flops: str = "counted", memory_here=(None, "")) -> Planned:
  """One run: the overrides that make train.py train it, its id and its N, D and FLOPs. With
  `n_target` the sizing rule derives its shape (else the overrides give one); with a budget,
  D = budget / counted FLOPs per token (flops="counted") or budget / 6N ("6nd"), else `tokens`;
  D is rounded to whole batches. `memory_here`: (bytes, what) of training.limits.memory_here: a
  run whose weights alone exceed them is refused before its shapes are traced."""
  def resolved(*extra):
    run_config = config.copy_and_resolve_references()
    for override in list(run_overrides) + list(extra):
      apply_override(run_config, override)
    return plan_lib.resolve(run_config, n_devices)

  size = [] if n_target is None else [f"--config.model.target_params={float(n_target)!r}"]
  # The first resolve gives the exact N of the derived shape (and a batch for a provisional D).
  provisional = tokens if budget is None else budget / (6 * n_target)
  _, _, _, plan = resolved(*size, f"--config.train.tokens={max(1, round(provisional))}")
  if budget is not None:
    tokens = budget / (plan.flops_per_token if flops == "counted" else 6 * plan.n_params)
    _, _, _, plan = resolved(*size, f"--config.train.tokens={max(1, round(tokens))}")
  steps = max(1, round(tokens / plan.tokens_per_step))
  row_overrides = size + [f"--config.train.tokens={steps * plan.tokens_per_step}",
                          f"--config.train.batch_size={plan.batch_size}"]
  run_config, _, _, plan = resolved(*row_overrides)
  limits.check_weights(run_config, plan, *memory_here)
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
  row = PlanRow(
      run_id=run_id_of(plan, run_config), seed=run_config.seed, lr=plan.lr, budget=budget,
      n_target=float(n_target or 0.0), n_params=plan.n_params,
      n_params_total=plan.n_params_total, tokens=plan.tokens,
      tokens_per_param=plan.tokens / plan.n_params, batch_size=plan.batch_size, steps=plan.steps,
      flops=float(plan.flops_per_token * plan.tokens),
      flops_6nd=float(6 * plan.n_params * plan.tokens),
      overrides=tuple(list(run_overrides) + row_overrides + budget_label))
  return Planned(row, tuple(run_overrides), plan_lib.config_hash(shape_config),
                 plan_lib.config_hash(family_config),
                 int(device_memory // needed) if device_memory else 1 << 30, plan.branch_step,
                 run_id_of(plan, run_config, legacy=True),
                 plan_lib.legacy_config_hash(family_config))


def resolved_config(config, row: PlanRow, n_devices: int = 1):
  """The resolved config train.py would train plan row `row` with (its schedule, its steps)."""
  run_config = config.copy_and_resolve_references()
  for override in row.overrides:
    apply_override(run_config, override)
  return plan_lib.resolve(run_config, n_devices)[0]


def check_pretraining(config, sweep) -> None:
  """The checks every pre-training kind (isoflop, grid) makes of its section."""
  if sweep.max_replicas < 1:
    raise ConfigError("sweep.max_replicas must be at least 1")
  if sweep.flops not in FLOP_CONVENTIONS:
    raise ConfigError(f"sweep.flops must be one of {', '.join(FLOP_CONVENTIONS)}, got {sweep.flops!r}")
  if sweep.branches:
    check_branches(config)
  if sweep.predict_branches and not sweep.branches:
    raise ConfigError("sweep.predict_branches predicts branches of trunks: add "
                      "--config.sweep.branches=True")
  if not isinstance(sweep.held_out_branches, int) or sweep.held_out_branches < 0:
    raise ConfigError(f"sweep.held_out_branches must be a whole number >= 0, got "
                      f"{sweep.held_out_branches!r}")
  if any(not isinstance(lr, (int, float)) or lr <= 0 for lr in sweep.lrs):
    raise ConfigError(f"sweep.lrs must be positive peak learning rates, got {sweep.lrs}")
  if any(not isinstance(seed, int) for seed in sweep.seeds) or len(set(sweep.seeds)) != len(sweep.seeds):
    raise ConfigError(f"sweep.seeds must be distinct integers, got {sweep.seeds}")


def check_branches(config) -> None:
  """sweep.branches needs a schedule with a constant phase: a trunk runs it without cooldown."""
  if not schedules.get(config.train.schedule).supports_branches:
    raise ConfigError(f"sweep.branches needs a schedule with a constant phase, not "
                      f"train.schedule={config.train.schedule}: add --config.train.schedule=wsd")


def plan_points(config, sweep, overrides: list[str], sweep_dir: str | None,
                points) -> list[PlanRow]:
  """The rows of a pre-training sweep's points [(budget or None, n_target, tokens or None)]:
  one run per point x seed x peak lr, a branch sweep's trunks, duplicates dropped, groups of
  replicas set (docs/design.md). With `sweep_dir`, the runs share DIR/compilation_cache."""
  run_overrides = run_overrides_of(config, overrides, sweep_dir)
  # Runs that cannot fit this machine's accelerator are refused before anything is launched
  # (training/memory.py's estimate). No accelerator limit is known on a CPU (sweep.py plans on
  # the CPU): there a run whose weights alone exceed the host's share is refused from its counts,
  # untraced (tracing a model of 1e13 parameters for the estimate takes minutes).
  device_memory = memory.device_memory_limit()
  here = limits.memory_here() if device_memory is None else (None, "")
  # Repeats of every point: one run per seed and per peak lr (the lr rule's when none are given).
  variants = [([f"--config.seed={seed}"] if seed is not None else [])
              + ([f"--config.train.lr={float(lr)!r}"] if lr is not None else [])
              for seed in sweep.seeds or (None,) for lr in sweep.lrs or (None,)]

  def plan(overrides, n_target, budget, tokens) -> Planned:
    try:
      return plan_run(config, sweep.devices, overrides, n_target, budget, tokens, device_memory,
                      sweep.flops, here)
    except ConfigError as error:
      where = f"budget {budget:.3g}, " if budget else ""
      raise ConfigError(f"plan point ({where}N {n_target:.3g}): {error}") from None

  planned = [plan(run_overrides + variant, n_target, budget, tokens)
             for budget, n_target, tokens in points for variant in variants]
  if sweep.branches:  # the branches of a trunk share its warmup and batch: plan them again so
    settings = branches.shared_settings(config, planned)
    pinned = lambda p: [f"--config.train.warmup_tokens={settings[p.family][0]}",
                        f"--config.train.batch_size={settings[p.family][1]}"]
    planned = [plan(list(p.run_overrides) + pinned(p), p.row.n_target, p.row.budget,
                    p.row.tokens if p.row.budget is None else None) for p in planned]
    planned = branches.add_trunks(unique(planned), lambda p, extra, tokens: plan(
        list(p.run_overrides) + extra, p.row.n_target, None, tokens),
        schedules.get(config.train.schedule).trunk_overrides)
    if sweep.predict_branches:
      marked = {r.run_id: r for r in predict.choose([p.row for p in planned],
                                                    sweep.held_out_branches)}
      # A branch an earlier sweep trained is measured, not predicted: its result is kept.
      trained = {p.row.run_id for p in planned if sweep_dir and rundir.read_status(
          run_dir_of(sweep_dir, p.row)) == rundir.COMPLETED}
      planned = [dataclasses.replace(p, row=marked[p.row.run_id]) if p.row.run_id not in trained
                 else p for p in planned]
  return numbered(group_rows(prefer_legacy_ids(unique(planned), sweep_dir), sweep.max_replicas))


def prefer_legacy_ids(planned: list[Planned], sweep_dir: str | None) -> list[Planned]:
  """Runs whose directory was written under the legacy id (training/plan.py legacy_config_hash),
  and not under the new one, keep the legacy id: an upgraded sweep finds its runs and trunks
  (and so its groups, named by their members) instead of retraining them."""
  if not sweep_dir:
    return planned
  legacy_family = {p.row.trunk: p.legacy_family for p in planned if p.row.trunk}
  renamed = {}
  for p in planned:
    legacy_id = p.legacy_run_id
    if p.row.kind == branches.TRUNK and p.row.run_id in legacy_family:  # trunk_n1.2e4_<family>
      legacy_id = f"{p.row.run_id.rsplit('_', 1)[0]}_{legacy_family[p.row.run_id]}"
    if only_legacy_dir(sweep_dir, p.row, legacy_id):
      renamed[p.row.run_id] = legacy_id
  if not renamed:
    return planned
  rename = lambda run_id: renamed.get(run_id, run_id)
  return [dataclasses.replace(p, row=dataclasses.replace(
      p.row, run_id=rename(p.row.run_id), trunk=rename(p.row.trunk),
      after=tuple(Dependency(rename(edge.run_id), edge.step) for edge in p.row.after)))
          for p in planned]


def only_legacy_dir(sweep_dir: str, row: PlanRow, legacy_id: str) -> bool:
  """Whether `row`'s run was written under `legacy_id` and not (yet) under its own id."""
  return (not os.path.exists(run_dir_of(sweep_dir, row))
          and os.path.exists(run_dir_of(sweep_dir, dataclasses.replace(row, run_id=legacy_id))))


def unique(planned: list[Planned]) -> list[Planned]:
  """The runs with distinct run ids, first kept: two sizes that round to one shape are one run."""
  seen, kept = set(), []
  for p in planned:
    if p.row.run_id not in seen:
      seen.add(p.row.run_id)
      kept.append(p)
  return kept


def numbered(rows: list[PlanRow]) -> list[PlanRow]:
  """The rows with their plan.csv index."""
  return [dataclasses.replace(row, row=i) for i, row in enumerate(rows)]


def group_rows(planned: list[Planned], max_replicas: int) -> list[PlanRow]:
  """The rows with their `group`: runs of one shape and budget that differ only in seed and lr
  train as one group of replicas (train.replicas, one process and one jitted step), at most
  `max_replicas` and as many as fit the device together; "" for a run trained alone."""
  by_shape, group_of = {}, {}
  for p in planned:
    if p.row.kind == PREDICTED:  # never trained
      group_of[p.row.run_id] = ""
      continue
    by_shape.setdefault(p.shape, []).append(p)
  for members in by_shape.values():
    size = max(1, min(max_replicas, *(p.replicas_that_fit for p in members)))
    for start in range(0, len(members), size):
      group = [p.row.run_id for p in members[start:start + size]]
      for run_id in group:
        group_of[run_id] = group_id_of(group) if len(group) > 1 else ""
  return [dataclasses.replace(p.row, group=group_of[p.row.run_id]) for p in planned]


def group_id_of(run_ids) -> str:
  """A group's directory name under DIR/groups: its members, so another membership is another
  group (train.py refuses to resume a group directory into a different set of replicas)."""
  return f"g{len(run_ids)}_" + hashlib.sha256(",".join(run_ids).encode()).hexdigest()[:12]
