"""Kaplan et al. (2020) laws: L(N), L(D), the joint L(N, D) and the compute envelope L(C).

- L(N) = (N_c/N)^alpha_N through the lowest loss of each model size (the best-trained run of a size
  stands in for "trained to convergence"), and L(D) = (D_c/D)^alpha_D through the lowest loss of each
  token count; both straight lines in log-log (their equations 1.1, 1.2).
- The joint L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (equation 1.5) over all runs,
  least squares on log L as Kaplan et al. fit it, by L-BFGS from a small grid of starts (lbfgs.py).
  Its alpha_N, alpha_D, N_c, D_c are the headline Kaplan numbers of fit.json: they use every run,
  where the one-variable fits only see the edges of the grid.
- L(C) = (C_c/C)^alpha_C through the compute-efficient envelope: the training-curve envelope when
  curves are given (as Kaplan et al. did), otherwise the final points that no cheaper run beats.
Sizes and token counts are grouped within 1% (runs.group_log) before taking minima.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from analysis import laws
from analysis import lbfgs
from analysis import runs as runs_lib

# Starts for the joint fit, in (log N_c - mean log N, log D_c - mean log D, alpha_N, alpha_D).
GRID = np.array(list(itertools.product((2.0, 5.0, 10.0, 20.0, 50.0), (2.0, 5.0, 10.0, 20.0, 50.0),
                                       (0.05, 0.1, 0.2, 0.5), (0.05, 0.1, 0.2, 0.5))))
PARAMS = ("alpha_N", "alpha_D", "N_c", "D_c")


def _objective(x, weights, data):
  log_n, log_d, log_loss = data
  log_nc, log_dc, alpha_n, alpha_d = x
  pred = alpha_d * jnp.logaddexp(alpha_n / alpha_d * (log_nc - log_n), log_dc - log_d)
  return jnp.sum(weights * (pred - log_loss) ** 2)


_value_and_grad = jax.vmap(jax.value_and_grad(_objective), in_axes=(0, 0, None))


def minimize_starts(n, d, loss, starts, weights) -> lbfgs.Minima:
  """L-BFGS from each start, rows (log N_c, log D_c, alpha_N, alpha_D) uncentred, in float64."""
  log_n, log_d = np.log(np.asarray(n, np.float64)), np.log(np.asarray(d, np.float64))
  centre = np.array([log_n.mean(), log_d.mean(), 0, 0])
  points = (log_n - centre[0], log_d - centre[1], np.log(np.asarray(loss, np.float64)))
  points, weights = lbfgs.pad_points(points, weights)
  with jax.enable_x64(True):
    minima = lbfgs.minimize(_value_and_grad, np.asarray(starts, np.float64) - centre, weights,
                            tuple(jnp.asarray(v, jnp.float64) for v in points), pool=64)
  return lbfgs.Minima(minima.x + centre, minima.f, minima.converged, minima.n_iter)


def to_law(x) -> dict:
  x = np.asarray(x)
  return {"alpha_N": x[..., 2], "alpha_D": x[..., 3], "N_c": np.exp(x[..., 0]),
          "D_c": np.exp(x[..., 1])}


def fit_joint(n, d, loss) -> dict:
  """The joint L(N, D): alpha_N, alpha_D, N_c, D_c, converged, rms_log_error, and `start` (the
  optimum as a row for warm-started refits)."""
  log_centre = np.array([np.log(n).mean(), np.log(d).mean(), 0, 0])
  starts = GRID + log_centre
  minima = minimize_starts(n, d, loss, starts, np.ones((len(starts), len(n))))
  best = int(np.argmin(np.where(np.isfinite(minima.f), minima.f, np.inf)))
  law = {k: float(v) for k, v in to_law(minima.x[best]).items()}
  return {**law, "converged": bool(minima.converged[best]),
          "rms_log_error": float(np.sqrt(minima.f[best] / len(n))), "start": minima.x[best]}


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
