"""Kaplan et al. (2020)'s one-variable laws: L(N), L(D) and the compute envelope L(C).

- L(N) = (N_c/N)^alpha_N through the lowest loss of each model size (the best-trained run of a size
  stands in for "trained to convergence"), and L(D) = (D_c/D)^alpha_D through the lowest loss of each
  token count; both straight lines in log-log (their equations 1.1, 1.2).
- The joint L(N, D) (equation 1.5) is a law form, analysis/forms/kaplan.py: its alpha_N, alpha_D,
  N_c, D_c are the headline Kaplan numbers of fit.json (they use every run, where the
  one-variable fits only see the edges of the grid).
- L(C) = (C_c/C)^alpha_C through the compute-efficient envelope: the training-curve envelope when
  curves are given (as Kaplan et al. did), otherwise the final points that no cheaper run beats.
Sizes and token counts are grouped within 1% (runs.group_log) before taking minima.
"""
import numpy as np

from analysis import laws
from analysis import runs as runs_lib


def fit_one_variable(x, loss, weights=None) -> dict | None:
  """L = (x_c/x)^alpha through the lowest loss at each distinct x; None with fewer than 2 values."""
  x, loss = np.asarray(x, np.float64), np.asarray(loss, np.float64)
  if weights is not None:
    x, loss = x[weights > 0], loss[weights > 0]
  labels = runs_lib.group_log(x, 0.01)
  groups = np.unique(labels)
  if len(groups) < 2:
    return None
  xs = np.array([np.exp(np.mean(np.log(x[labels == g]))) for g in groups])
  best = np.array([loss[labels == g].min() for g in groups])
  coef, slope = laws.fit_power_law(xs, best)
  return {"alpha": -slope, "x_c": _scale(coef, -slope), "x": xs, "loss": best}


def _scale(coef: float, alpha: float) -> float:
  """x_c of L = coef x^-alpha = (x_c/x)^alpha: coef^(1/alpha), inf when it overflows (alpha near 0:
  the loss barely falls, so no finite scale describes it) and NaN at alpha = 0."""
  with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
    return float(np.power(np.float64(coef), 1 / np.float64(alpha))) if alpha else float("nan")


def pareto_envelope(flops, loss):
  """The final points that no run with less compute beats (ascending C)."""
  order = np.argsort(flops)
  best = np.minimum.accumulate(loss[order])
  keep = loss[order] <= best
  return flops[order][keep], loss[order][keep]


def fit_compute(flops, loss) -> dict | None:
  """L(C) = (C_c/C)^alpha_C through an envelope's points; None with fewer than 2 points."""
  if len(np.unique(flops)) < 2:
    return None
  coef, slope = laws.fit_power_law(flops, loss)
  return {"alpha_C": -slope, "C_c": _scale(coef, -slope)}
