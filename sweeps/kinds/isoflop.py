"""sweep.kind = isoflop: model sizes on an IsoFLOP curve per compute budget (Chinchilla Approach 2),
fitted by `python -m analysis`, then a held-out verification run (sweeps/verify.py). Its keys are
the pre-training ones (sweeps/plan.PRETRAINING_KEYS) and VERIFY_KEYS."""
import math

from core.config import ConfigError
from sweeps import collect, kinds, plan, predict, verify

# The isoflop kind's own key, beside the pre-training ones:
#   verify_factor  after the fit, predict then train the compute-optimal run at this many times the
#                  largest budget (DIR/analysis/verify.json: the predicted loss and its bootstrap
#                  interval written before it trains, then the measured loss; held out of the fit;
#                  sweeps/verify.py); 0: no verification run
VERIFY_KEYS = dict(verify_factor=4.0)


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


def check(config) -> None:
  sweep = config.sweep
  if not sweep.budgets or min(sweep.budgets) <= 0:
    raise ConfigError(f"sweep.budgets must be positive FLOP budgets, got {sweep.budgets}")
  if sweep.sizes_per_budget < 1 or sweep.span < 1 or sweep.tokens_per_param <= 0:
    raise ConfigError("sweep needs sizes_per_budget >= 1, span >= 1 and tokens_per_param > 0")
  factor = sweep.get("verify_factor", 0.0)
  if not isinstance(factor, (int, float)) or not 0 <= factor < math.inf:
    raise ConfigError(f"sweep.verify_factor must be 0 (off) or a positive factor, got {factor!r}")
  plan.check_pretraining(config, sweep)


def plan_isoflop(config, overrides, sweep_dir, workers, may_train):
  del workers, may_train  # it trains nothing to plan
  sweep = config.sweep
  sizes = ladder_sizes if sweep.ladder or sweep.branches else isoflop_sizes
  points = [(budget, n, None) for budget in sweep.budgets
            for n in sizes(budget, sweep.sizes_per_budget, sweep.span, sweep.tokens_per_param)]
  return plan.plan_points(config, sweep, overrides, sweep_dir, points)


def analyse(sweep_dir, rows, results, config):
  """The fit (shared with the grid kind), after the predicted branches' losses
  (sweep.predict_branches) join the results; with a verification run, its budget's frontier row and
  the bootstrap its predicted interval comes from."""
  budget = verify.budget_of(config.sweep) if config.sweep.kind == "isoflop" else None
  if config.sweep.predict_branches:
    results = predict.add_predictions(sweep_dir, config, results)
  return collect.fit_laws(sweep_dir, rows, results, config.wandb.mode,
                          config.sweep.inference_tokens, config.sweep.flops, verify_budget=budget,
                          bootstrap=verify.N_BOOTSTRAP if budget else 0,
                          predicted=config.sweep.predict_branches)


kinds.register(kinds.SweepKind("isoflop", {**plan.PRETRAINING_KEYS, **VERIFY_KEYS}, check,
                               plan_isoflop, analyse, after_fit=verify.verify))
