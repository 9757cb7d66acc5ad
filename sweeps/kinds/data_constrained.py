"""sweep.kind = data_constrained: model sizes x unique-token pools x epochs (Muennighoff et al. 2023).

Every model size N trains on every pool of U unique tokens (`data.unique_tokens`, data/pool.py)
for every number of epochs e (D = U e tokens), and on fresh data for the same D, so each repeated
run has the fresh run it is compared with (one epoch of a pool is fresh data: that run serves as
both). Fitted by `python -m analysis.data_constrained` (DIR/analysis/data_constrained.json).

Keys, beside the pre-training ones it reads (sweeps/plan.PRETRAINING_KEYS: seeds, lrs, flops,
max_replicas; branches are refused, as every run here is its own schedule):
  n_params       target non-embedding model sizes
  unique_tokens  pool sizes U in tokens
  epochs         passes over each pool; D = U x epochs
"""
import os
import shlex
import subprocess
import sys

from core.config import ConfigError
from sweeps import ROOT, kinds, plan

KEYS = {**plan.PRETRAINING_KEYS, "unique_tokens": (), "epochs": (1, 2, 4, 8, 16, 32)}


def check(config) -> None:
  sweep = config.sweep
  if not sweep.n_params or not sweep.unique_tokens:
    raise ConfigError("sweep.kind=data_constrained needs sweep.n_params and sweep.unique_tokens, "
                      "e.g. --config.sweep.n_params=(3e3,1.2e4) --config.sweep.unique_tokens=(3.2e4,)")
  if min(sweep.unique_tokens) <= 0 or not sweep.epochs or min(sweep.epochs) < 1:
    raise ConfigError(f"sweep.unique_tokens must be positive and sweep.epochs at least 1, got "
                      f"{sweep.unique_tokens} and {sweep.epochs}")
  if sweep.branches:
    raise ConfigError("sweep.kind=data_constrained trains every run on its own schedule; "
                      "leave sweep.branches False")
  plan.check_pretraining(config, sweep)


def plan_data_constrained(config, overrides, sweep_dir, workers, may_train):
  del workers, may_train  # it trains nothing to plan
  sweep = config.sweep
  fresh = [(None, n, u * e) for n in sweep.n_params for u in sweep.unique_tokens
           for e in sweep.epochs]
  rows = plan.plan_points(config, sweep, overrides, sweep_dir, fresh)
  for u in sweep.unique_tokens:
    pooled = [(None, n, u * e) for n in sweep.n_params for e in sweep.epochs if e > 1]
    if pooled:
      rows += plan.plan_points(config, sweep, [*overrides, f"--config.data.unique_tokens={int(u)}"],
                               sweep_dir, pooled)
  seen, kept = set(), []
  for row in rows:
    if row.run_id not in seen:
      seen.add(row.run_id)
      kept.append(row)
  return plan.numbered(kept)


def analyse(sweep_dir, rows, results, config):
  del rows, results, config  # the analysis reads DIR/results.csv
  results_path, out = os.path.join(sweep_dir, "results.csv"), os.path.join(sweep_dir, "analysis")
  command = [sys.executable, "-m", "analysis.data_constrained", "--results", results_path,
             "--out", out]
  print(f"analysis: {shlex.join(command)}", flush=True)
  if subprocess.run(command, cwd=ROOT).returncode != 0:
    print(f"analysis failed; results are in {results_path}", file=sys.stderr)
    return None
  return {"analysis": os.path.join(out, "data_constrained.json")}


kinds.register(kinds.SweepKind("data_constrained", KEYS, check, plan_data_constrained, analyse))
