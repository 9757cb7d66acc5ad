"""sweep.kind = grid: every target N x token budget D (Kaplan-style), fitted by `python -m analysis`
as an IsoFLOP sweep is. Its keys are the pre-training ones (sweeps/plan.PRETRAINING_KEYS)."""
from core.config import ConfigError
from sweeps import kinds, plan
from sweeps.kinds import isoflop


def check(config) -> None:
  sweep = config.sweep
  if not sweep.n_params or not sweep.tokens:
    raise ConfigError("sweep.kind=grid needs sweep.n_params and sweep.tokens, e.g. "
                      "--config.sweep.n_params=(1e4,1e5) --config.sweep.tokens=(1e6,4e6)")
  plan.check_pretraining(config, sweep)


def plan_grid(config, overrides, sweep_dir, workers, may_train):
  del workers, may_train  # it trains nothing to plan
  points = [(None, n, d) for n in config.sweep.n_params for d in config.sweep.tokens]
  return plan.plan_points(config, config.sweep, overrides, sweep_dir, points)


kinds.register(kinds.SweepKind("grid", plan.PRETRAINING_KEYS, check, plan_grid, isoflop.analyse))
