"""The compute-optimal frontier from every approach, side by side, and the extrapolation check.

The frontier is read at the sweep's own budgets plus every decade from 1e18 to 1e24 FLOPs (where
the papers quote tokens per parameter), next to the 20-tokens-per-parameter rule. Approach 3 and Kaplan's
joint law are minimised under C = 6ND; Approaches 1 and 2 are the power laws through their minima
in whatever FLOP column the table has, so they agree with the others only as far as those do.

The extrapolation check refits without the largest-compute runs (the largest IsoFLOP budget when
the table plans 3 or more budgets, otherwise the top 10% by C) and reports how well each law,
fitted on the rest, predicts the held-out final losses: the test a scaling law is for.
"""
import numpy as np

from analysis import approach3
from analysis import isoflop
from analysis import kaplan
from analysis import laws

PUBLISHED_BUDGETS = tuple(10.0 ** k for k in range(18, 25))
HOLDOUT_FRACTION = 0.10


def budgets_for(sweep_budgets=()) -> list[float]:
  return sorted(set(float(b) for b in sweep_budgets) | set(PUBLISHED_BUDGETS))


def _point(n_opt, d_opt) -> dict:
  return {"n_opt": float(n_opt), "d_opt": float(d_opt), "tokens_per_param": float(d_opt / n_opt)}


def table(budgets, fit3: approach3.Approach3Fit, approach2=None, approach1=None,
          kaplan_joint=None) -> list[dict]:
  """One row per budget: Approach 3 at the top level (the contract), then each other approach."""
  rows = []
  for flops in budgets:
    row = {"flops": float(flops), **_point(*laws.chinchilla_optimum(
        flops, fit3.A, fit3.B, fit3.alpha, fit3.beta))}
    if approach2:
      row["approach2"] = _point(*isoflop.optimum(approach2, flops))
    if approach1:
      row["approach1"] = _point(*isoflop.optimum(approach1, flops))
    if kaplan_joint:
      row["kaplan"] = _point(*laws.kaplan_optimum(
          flops, *(kaplan_joint[k] for k in kaplan.PARAMS)))
    row["rule_20x"] = _point(*laws.rule_optimum(flops))
    rows.append(row)
  return rows


def holdout_mask(runs) -> np.ndarray:
  """The runs held out: the largest planned budget when there are 3 or more, else the top
  HOLDOUT_FRACTION of runs by compute."""
  planned = np.unique(runs.budget[np.isfinite(runs.budget)])
  if len(planned) >= 3:
    return runs.budget == planned[-1]
  k = max(1, int(round(HOLDOUT_FRACTION * len(runs))))
  return np.isin(np.arange(len(runs)), np.argsort(runs.c)[-k:])


def _errors(predicted, actual) -> dict:
  error = predicted - actual
  return {"mean_abs_error": float(np.mean(np.abs(error))),
          "max_abs_error": float(np.max(np.abs(error))),
          "mean_error": float(np.mean(error)),
          "mean_abs_rel_error": float(np.mean(np.abs(error) / actual))}


def extrapolation_check(runs, held_out) -> dict | str:
  """Fits Approach 3 and Kaplan's joint law on the rest; their errors on the held-out runs."""
  fitted = runs.subset(~held_out)
  if len(fitted) <= 5 or len(np.unique(fitted.n)) < 2 or len(np.unique(fitted.d)) < 2:
    return "extrapolation check: too few runs left after holding out the largest-compute runs"
  test = runs.subset(held_out)
  fit3 = approach3.fit(fitted.n, fitted.d, fitted.loss)
  joint = kaplan.fit_joint(fitted.n_kaplan, fitted.d, fitted.loss)
  predicted3 = laws.chinchilla_loss(test.n, test.d, **fit3.law())
  predicted_kaplan = laws.kaplan_loss(test.n_kaplan, test.d, *(joint[k] for k in kaplan.PARAMS))
  return {"held_out": [str(r) for r in test.run_id], "held_out_flops_min": float(test.c.min()),
          "fitted_flops_max": float(fitted.c.max()), "n_fitted": len(fitted),
          "approach3": {**fit3.law(), **_errors(predicted3, test.loss)},
          "kaplan": {**{k: joint[k] for k in kaplan.PARAMS},
                     **_errors(predicted_kaplan, test.loss)},
          "observed": test.loss.tolist(), "predicted_approach3": predicted3.tolist(),
          "predicted_kaplan": predicted_kaplan.tolist()}
