"""sweep.kind = finetune: base models x fine-tuning budgets D_f x methods, fitted by analysis.finetune.

The base models are the completed decoder runs of a pre-training sweep, one per model size N (the
one trained on the most tokens): the sweep directory `sweep.base_sweep` names, or by default
DIR/base, which is trained first from the small pre-training sweep `sweep.base_config` when it does
not hold every run of that plan yet (rerunning finds it complete and skips it). Each base is then
fine-tuned on the config's own data (experiments/finetune_sweep.py: a related synthetic language)
for every budget in `sweep.tokens`, once in full and once per LoRA rank in `sweep.lora_ranks`, each
run a `train.py --config.init_from=BASE` of exactly the base's shape, with the peak lr its method's
scale times the base run's. The runs share the sweep's compilation cache with the base sweep.

`--config.*` overrides given to the fine-tuning sweep reach its runs, not the base sweep. The
analysis, `python -m analysis.finetune`, fits L(N, D_f) = A N^-alpha D_f^-beta + E per method and
writes the cost and forgetting tables and the plots.

Its sweep keys, beside sweeps.kinds.COMMON_KEYS:
  base_sweep     a pre-training sweep directory whose completed decoder runs are the base models,
                 one per size N (the one with the most tokens); "": DIR/base, trained first from
                 base_config when it is not complete
  base_config    the pre-training sweep that makes DIR/base (a path from the repository root)
  tokens         fine-tuning token budgets D_f
  methods        full (every weight trains) and/or lora (adapters only, at each of lora_ranks)
  lora_ranks     LoRA ranks r; finetune.lora_alpha and finetune.lora_targets apply to each
  full_lr_scale  a full fine-tuning run's peak lr: this times its base run's peak lr
  lora_lr_scale  a LoRA run's peak lr: this times its base run's peak lr
"""
import dataclasses
import os
import shlex
import subprocess
import sys

from core import rundir
from core.config import ConfigError, load_config
from sweeps import ROOT, kinds
from sweeps.collect import collect
from sweeps.local import execute_local
from sweeps.plan import only_legacy_dir, plan_run, run_overrides_of
from sweeps.processes import run_dir_of
from sweeps.rows import PLAN, read_plan, write_plan
from sweeps.tables import print_plan
from training import memory

# The base run's model keys a fine-tuning run copies, so the weights load into the same shape.
SHAPE_KEYS = ("family", "n_layer", "d_model", "n_heads", "d_ff", "mlp", "pos", "tie_embeddings")
KEYS = dict(base_sweep="", base_config="experiments/finetune_base_sweep.py", tokens=(),
            methods=("full", "lora"), lora_ranks=(2, 8), full_lr_scale=1.0, lora_lr_scale=3.0)


def check(config) -> None:
  sweep = config.sweep
  if not sweep.tokens or min(sweep.tokens) <= 0:
    raise ConfigError(f"sweep.tokens must be positive fine-tuning budgets, got {sweep.tokens}")
  if not sweep.methods or set(sweep.methods) - {"full", "lora"}:
    raise ConfigError(f"sweep.methods must name full and/or lora, got {sweep.methods}")
  if "lora" in sweep.methods and (not sweep.lora_ranks or min(sweep.lora_ranks) < 1):
    raise ConfigError(f"sweep.lora_ranks must be positive ranks, got {sweep.lora_ranks}")
  if min(sweep.full_lr_scale, sweep.lora_lr_scale) <= 0:
    raise ConfigError("sweep.full_lr_scale and sweep.lora_lr_scale must be positive")


def base_sweep_dir(sweep, sweep_dir: str) -> str:
  return os.path.abspath(sweep.base_sweep) if sweep.base_sweep else os.path.join(sweep_dir, "base")


def train_base_sweep(sweep, sweep_dir: str, workers: int) -> None:
  """Trains the embedded pre-training sweep into DIR/base unless every run of it has finished."""
  base_dir = base_sweep_dir(sweep, sweep_dir)
  path = os.path.join(ROOT, sweep.base_config)
  cache = [f"--config.train.compilation_cache={os.path.join(sweep_dir, 'compilation_cache')}"]
  config = load_config(path, cache)
  rows = kinds.plan_sweep(config, cache, base_dir)
  if all(rundir.read_status(run_dir_of(base_dir, row)) in rundir.FINISHED for row in rows):
    return
  print(f"base models: the pre-training sweep {sweep.base_config} into {base_dir}", flush=True)
  os.makedirs(base_dir, exist_ok=True)
  write_plan(base_dir, rows)
  print_plan(rows)
  outcome = execute_local(rows, base_dir, path, workers)
  if outcome["signal"]:
    raise KeyboardInterrupt  # the runs saved checkpoints; rerunning the sweep resumes them
  collect(base_dir, rows)


def base_runs(base_dir: str) -> list[dict]:
  """One completed decoder run per model size of a pre-training sweep (the most tokens wins),
  smallest first: [{"run_dir", "config", "result"}]."""
  if not os.path.isfile(os.path.join(base_dir, PLAN)):
    raise ConfigError(f"sweep.base_sweep={base_dir!r} is not a sweep directory (no plan.csv); "
                      "name a pre-training sweep's --workdir, or leave it empty to train one")
  by_size = {}
  for row in read_plan(base_dir):
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
                  may_train: bool) -> list:
  """The plan rows: every base x budget x method (see the module docstring). With may_train,
  the default base sweep is trained first when it is not complete."""
  sweep = config.sweep
  base_dir = base_sweep_dir(sweep, sweep_dir)
  if not sweep.base_sweep:
    if may_train:
      train_base_sweep(sweep, sweep_dir, workers)
    elif not os.path.isfile(os.path.join(base_dir, PLAN)):
      raise ConfigError(f"the base models are not trained yet ({base_dir} is empty); run this "
                        "sweep with --executor local and without --dry-run to train them first, "
                        "or set sweep.base_sweep to a pre-training sweep directory")
  bases = base_runs(base_dir)
  run_overrides = run_overrides_of(config, overrides, sweep_dir)
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
        try:  # the base's shape comes with the overrides: no sizing rule, D_f in whole batches
          planned = plan_run(config, sweep.devices, run_overrides + shape + method + lr,
                             tokens=tokens, device_memory=device_memory)
        except ConfigError as error:
          raise ConfigError(f"plan point ({label}, base {base['run_dir']}, D_f {tokens:.3g}): "
                            f"{error}") from None
        row = dataclasses.replace(planned.row, row=len(rows), run_id=f"{label}_{planned.row.run_id}",
                                  n_target=float(base["result"]["n_params"]))
        legacy_id = f"{label}_{planned.legacy_run_id}"  # a run written before config_hash's rule
        rows.append(dataclasses.replace(row, run_id=legacy_id)
                    if only_legacy_dir(sweep_dir, row, legacy_id) else row)
  return rows


def analyse(sweep_dir: str, rows, results, config) -> dict | None:
  """`python -m analysis.finetune` on DIR/results.csv into DIR/analysis; returns the summary's
  part of it (the report), or None when it failed."""
  del rows, results, config  # it reads results.csv and the runs' directories
  results_path, out = os.path.join(sweep_dir, "results.csv"), os.path.join(sweep_dir, "analysis")
  command = [sys.executable, "-m", "analysis.finetune", "--results", results_path, "--out", out]
  print(f"analysis: {shlex.join(command)}", flush=True)
  if subprocess.run(command, cwd=ROOT).returncode != 0:
    print(f"analysis failed; results are in {results_path}", file=sys.stderr)
    return None
  return {"report": os.path.join(out, "finetune.md")}  # the analysis printed its path


kinds.register(kinds.SweepKind("finetune", KEYS, check, plan_finetune, analyse))
