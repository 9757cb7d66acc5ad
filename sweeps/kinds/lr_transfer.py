"""sweep.kind = lr_transfer: does the best learning rate stay put as the model widens and deepens?

For every parametrization (model.parametrization, model/parametrization.py), every shape of the
width line (each of `widths` at n_layer `width_depth`) and of the depth line (each of `depths` at
d_model `depth_width`) trains once per lr of sweep.lrs, for sweep.tokens[0] tokens, the lrs of a
shape as one group of replicas (sweep.max_replicas). The base shape of mup and completep is the
smallest width and depth. Fitted by `python -m analysis.lr_transfer` (DIR/analysis/
lr_transfer.json, `optima`: one entry per parametrization, width and depth, and
lr_transfer.png, the muTransfer figure).

Keys, beside the pre-training ones it reads (sweeps/plan.PRETRAINING_KEYS: lrs, seeds, tokens,
max_replicas; branches are refused):
  parametrizations  the parametrizations compared
  widths            d_model values of the width line (the config's model.n_heads divides each)
  width_depth       its n_layer
  depths            n_layer values of the depth line
  depth_width       its d_model
"""
import os
import shlex
import subprocess
import sys

from core.config import ConfigError
from model.parametrization import PARAMETRIZATIONS
from sweeps import ROOT, kinds, plan

KEYS = {**plan.PRETRAINING_KEYS, "parametrizations": PARAMETRIZATIONS, "widths": (32, 64, 128, 256),
        "width_depth": 2, "depths": (2, 4, 8), "depth_width": 64}


def shapes(sweep) -> list[tuple[int, int]]:
  """(d_model, n_layer) of the width line then the depth line, each shape once."""
  lines = [(w, sweep.width_depth) for w in sweep.widths] + [(sweep.depth_width, d)
                                                            for d in sweep.depths]
  return list(dict.fromkeys(lines))


def check(config) -> None:
  sweep = config.sweep
  if len(sweep.lrs) < 3 or len(sweep.tokens) != 1:
    raise ConfigError("sweep.kind=lr_transfer needs at least 3 sweep.lrs (a parabola per shape) "
                      "and one sweep.tokens budget, e.g. --config.sweep.lrs=(1e-3,3e-3,1e-2)")
  unknown = [p for p in sweep.parametrizations if p not in PARAMETRIZATIONS]
  if unknown or not sweep.parametrizations:
    raise ConfigError(f"sweep.parametrizations must name some of {', '.join(PARAMETRIZATIONS)}, "
                      f"got {tuple(sweep.parametrizations)}")
  sizes = [*sweep.widths, *sweep.depths, sweep.width_depth, sweep.depth_width]
  if len(sweep.widths) < 2 or len(sweep.depths) < 1 or min(sizes) < 1:
    raise ConfigError("sweep.widths needs at least two widths, sweep.depths at least one depth, "
                      "all positive")
  heads = config.model.n_heads
  if not heads or any(w % heads for w in (*sweep.widths, sweep.depth_width)):
    raise ConfigError(f"model.n_heads={heads} must be set and divide every width of sweep.widths "
                      "and sweep.depth_width")
  if sweep.branches:
    raise ConfigError("sweep.kind=lr_transfer trains every run on its own schedule; leave "
                      "sweep.branches False")
  plan.check_pretraining(config, sweep)


def plan_lr_transfer(config, overrides, sweep_dir, workers, may_train):
  del workers, may_train  # it trains nothing to plan
  sweep = config.sweep
  base = [f"--config.model.base_width={min(sweep.widths + (sweep.depth_width,))}",
          f"--config.model.base_depth={min(sweep.depths + (sweep.width_depth,))}"]
  rows = []
  for name in sweep.parametrizations:
    for width, depth in shapes(sweep):
      shape = [f"--config.model.parametrization={name}", f"--config.model.d_model={width}",
               f"--config.model.n_layer={depth}", "--config.model.target_params=0.0", *base]
      rows += plan.plan_points(config, sweep, [*overrides, *shape], sweep_dir,
                               [(None, None, float(sweep.tokens[0]))])
  return plan.numbered(rows)


def analyse(sweep_dir, rows, results, config):
  del rows, results, config  # the analysis reads DIR/results.csv and the runs' configs
  out = os.path.join(sweep_dir, "analysis")
  command = [sys.executable, "-m", "analysis.lr_transfer", "--sweep", sweep_dir, "--out", out]
  print(f"analysis: {shlex.join(command)}", flush=True)
  if subprocess.run(command, cwd=ROOT).returncode != 0:
    print(f"analysis failed; results are in {os.path.join(sweep_dir, 'results.csv')}",
          file=sys.stderr)
    return None
  return {"analysis": os.path.join(out, "lr_transfer.json")}


kinds.register(kinds.SweepKind("lr_transfer", KEYS, check, plan_lr_transfer, analyse))
