"""A fine-tuning sweep (sweep.kind = finetune): base models x fine-tuning budgets D_f x methods.

The base models are the completed decoder runs of a pre-training sweep, one per model size N (the
one trained on the most tokens): the sweep directory `sweep.base_sweep` names, or by default
DIR/base, which is trained first from the small pre-training sweep `sweep.base_config` when it does
not hold every run of that plan yet (rerunning finds it complete and skips it). Each base is then
fine-tuned on the config's own data (experiments/finetune_sweep.py: a related synthetic language)
for every budget in `sweep.tokens`, once in full and once per LoRA rank in `sweep.lora_ranks`, each
run a `train.py --config.init_from=BASE` of exactly the base's shape, with the peak lr its method's
scale times the base run's. The runs share the sweep's compilation cache with the base sweep.

`--config.*` overrides given to the fine-tuning sweep reach its runs, not the base sweep.
`finish_finetune` collects results.csv and runs `python -m analysis.finetune` (the law
L(N, D_f) = A N^-alpha D_f^-beta + E per method, the cost and forgetting tables, the plots).
"""
import os
import shlex
import subprocess
import sys

from core import defaults, rundir
from core.config import ConfigError, apply_override, load_config
from sweeps import ROOT, tables
from sweeps.collect import collect, list_unfitted
from sweeps.local import execute_local
from sweeps.plan import compilation_cache_override, plan_sweep, short
from sweeps.processes import run_dir_of
from training import memory
from training import plan as plan_lib

# The base run's model keys a fine-tuning run copies, so the weights load into the same shape.
SHAPE_KEYS = ("family", "n_layer", "d_model", "n_heads", "d_ff", "mlp", "pos", "tie_embeddings")
FINETUNE_KEYS = tuple(defaults.finetune_sweep_section().keys())


def checked_section(config):
  """config.sweep of a fine-tuning sweep, checked against core.defaults' keys and ranges."""
  sweep = config.sweep
  missing = [key for key in FINETUNE_KEYS if key not in sweep]
  if missing:
    raise ConfigError(f"the finetune sweep section lacks {', '.join(missing)}; start from "
                      "experiments/finetune_sweep.py")
  if not sweep.tokens or min(sweep.tokens) <= 0:
    raise ConfigError(f"sweep.tokens must be positive fine-tuning budgets, got {sweep.tokens}")
  if not sweep.methods or set(sweep.methods) - {"full", "lora"}:
    raise ConfigError(f"sweep.methods must name full and/or lora, got {sweep.methods}")
  if "lora" in sweep.methods and (not sweep.lora_ranks or min(sweep.lora_ranks) < 1):
    raise ConfigError(f"sweep.lora_ranks must be positive ranks, got {sweep.lora_ranks}")
  if min(sweep.full_lr_scale, sweep.lora_lr_scale) <= 0:
    raise ConfigError("sweep.full_lr_scale and sweep.lora_lr_scale must be positive")
  if sweep.workers < 1 or sweep.devices < 1:
    raise ConfigError("sweep.workers and sweep.devices must be at least 1")
  return sweep


def base_sweep_dir(sweep, sweep_dir: str) -> str:
  return os.path.abspath(sweep.base_sweep) if sweep.base_sweep else os.path.join(sweep_dir, "base")


def train_base_sweep(sweep, sweep_dir: str, workers: int) -> None:
  """Trains the embedded pre-training sweep into DIR/base unless every run of it has finished."""
  base_dir = base_sweep_dir(sweep, sweep_dir)
  path = os.path.join(ROOT, sweep.base_config)
  cache = [f"--config.train.compilation_cache={os.path.join(sweep_dir, 'compilation_cache')}"]
  config = load_config(path, cache)
  rows = plan_sweep(config, cache, base_dir)
  if all(rundir.read_status(run_dir_of(base_dir, row)) in rundir.FINISHED for row in rows):
    return
  print(f"base models: the pre-training sweep {sweep.base_config} into {base_dir}", flush=True)
  os.makedirs(base_dir, exist_ok=True)
  tables.write_plan(base_dir, rows)
  tables.print_plan(rows)
  outcome = execute_local(rows, base_dir, path, workers)
  if outcome["signal"]:
    raise KeyboardInterrupt  # the runs saved checkpoints; rerunning the sweep resumes them
  collect(base_dir, rows)


def base_runs(base_dir: str) -> list[dict]:
  """One completed decoder run per model size of a pre-training sweep (the most tokens wins),
  smallest first: [{"run_dir", "config", "result"}]."""
  if not os.path.isfile(os.path.join(base_dir, tables.PLAN)):
    raise ConfigError(f"sweep.base_sweep={base_dir!r} is not a sweep directory (no plan.csv); "
                      "name a pre-training sweep's --workdir, or leave it empty to train one")
  by_size = {}
  for row in tables.read_plan(base_dir):
    run_dir = run_dir_of(base_dir, row)
    result = rundir.read_result(run_dir)
    if not result or result.get("status") != rundir.COMPLETED or result.get("family") != "decoder":
      continue
    best = by_size.get(result["n_params"])
    if best is None or result["tokens"] > best["result"]["tokens"]:
      by_size[result["n_params"]] = {"run_dir": run_dir, "result": result,
                                     "config": rundir.read_config(run_dir)}
  if not by_size:
    raise ConfigError(f"the pre-training sweep {base_dir} has no completed decoder run to "
                      "fine-tune; finish it first")
  return [by_size[n] for n in sorted(by_size)]


def method_variants(sweep) -> list[tuple[str, list[str]]]:
  """(label, overrides) of each method: full, and LoRA at each rank."""
  variants = [("full", ["--config.finetune.method=full"])] if "full" in sweep.methods else []
  if "lora" in sweep.methods:
    variants += [(f"lora{rank}", ["--config.finetune.method=lora",
                                  f"--config.finetune.lora_rank={int(rank)}"])
                 for rank in sweep.lora_ranks]
  return variants


def plan_finetune(config, overrides: list[str], sweep_dir: str, workers: int,
                  train_bases: bool) -> list[dict]:
  """The plan rows: every base x budget x method (see the module docstring). With train_bases,
  the default base sweep is trained first when it is not complete."""
  sweep = checked_section(config)
  base_dir = base_sweep_dir(sweep, sweep_dir)
  if not sweep.base_sweep:
    if train_bases:
      train_base_sweep(sweep, sweep_dir, workers)
    elif not os.path.isfile(os.path.join(base_dir, tables.PLAN)):
      raise ConfigError(f"the base models are not trained yet ({base_dir} is empty); run this "
                        "sweep with --executor local and without --dry-run to train them first, "
                        "or set sweep.base_sweep to a pre-training sweep directory")
  bases = base_runs(base_dir)
  group = [] if config.wandb.group else [f"--config.wandb.group={config.name}"]
  run_overrides = ([o for o in overrides if not o.startswith("--config.sweep.")] + group
                   + compilation_cache_override(config, sweep_dir))
  device_memory = memory.device_memory_limit()
  rows = []
  for base in bases:
    model, base_lr = base["config"].model, base["config"].train.lr
    shape = ([f"--config.init_from={base['run_dir']}", "--config.model.target_params=0.0",
              f"--config.train.seq_len={base['config'].train.seq_len}"]
             + [f"--config.model.{key}={model[key]}" for key in SHAPE_KEYS])
    for tokens in sweep.tokens:
      for label, method in method_variants(sweep):
        scale = sweep.full_lr_scale if label == "full" else sweep.lora_lr_scale
        lr = [f"--config.train.lr={scale * base_lr!r}"]
        try:
          row = plan_row(config, sweep.devices, run_overrides + shape + method + lr, tokens,
                         device_memory)
        except ConfigError as error:
          raise ConfigError(f"plan point ({label}, base {base['run_dir']}, D_f {tokens:.3g}): "
                            f"{error}") from None
        row["run_id"] = f"{label}_{row['run_id']}"
        rows.append({"row": len(rows), **row, "n_target": base["result"]["n_params"]})
  return rows


def plan_row(config, n_devices: int, run_overrides: list[str], tokens: float,
             device_memory) -> dict:
  """One fine-tuning run: its overrides, id and N, D_f and FLOPs (D_f in whole batches)."""
  def resolved(*extra):
    run_config = config.copy_and_resolve_references()
    for override in run_overrides + list(extra):
      apply_override(run_config, override)
    return plan_lib.resolve(run_config, n_devices)

  _, _, _, plan = resolved(f"--config.train.tokens={max(1, round(tokens))}")
  steps = max(1, round(tokens / plan.tokens_per_step))
  row_overrides = [f"--config.train.tokens={steps * plan.tokens_per_step}",
                   f"--config.train.batch_size={plan.batch_size}"]
  run_config, _, _, plan = resolved(*row_overrides)
  memory.check_fits(run_config, device_memory, n_devices)
  return {
      "run_id": f"n{short(plan.n_params)}_d{short(plan.tokens)}_{plan_lib.config_hash(run_config)}",
      "group": "", "budget": None, "seed": run_config.seed, "lr": plan.lr,
      "n_params": plan.n_params, "n_params_total": plan.n_params_total, "tokens": plan.tokens,
      "tokens_per_param": plan.tokens / plan.n_params, "batch_size": plan.batch_size,
      "steps": plan.steps, "flops": plan.flops_per_token * plan.tokens,
      "flops_6nd": 6 * plan.n_params * plan.tokens,
      "overrides": shlex.join(run_overrides + row_overrides)}


def finish_finetune(sweep_dir: str, rows) -> tuple[dict, bool]:
  """Collects results.csv and runs `python -m analysis.finetune` into DIR/analysis; returns
  (summary, analysis ok)."""
  results = collect(sweep_dir, rows)
  by_status = {}
  for result in results:
    by_status.setdefault(result.get("status"), []).append(result)
  completed = len(by_status.get(rundir.COMPLETED, []))
  summary = {"results": os.path.join(sweep_dir, tables.RESULTS), "runs": len(rows),
             rundir.COMPLETED: completed, "not_finished": len(rows) - len(results)}
  print(f"results: {summary['results']} ({completed} completed of {len(rows)} runs)")
  list_unfitted(by_status, summary)
  if not completed:
    return summary, True
  out = os.path.join(sweep_dir, "analysis")
  command = [sys.executable, "-m", "analysis.finetune", "--results", summary["results"],
             "--out", out]
  print(f"analysis: {shlex.join(command)}", flush=True)
  if subprocess.run(command, cwd=ROOT).returncode != 0:
    print(f"analysis failed; results are in {summary['results']}", file=sys.stderr)
    return summary, False
  summary["report"] = os.path.join(out, "finetune.md")  # the analysis printed its path
  return summary, True
