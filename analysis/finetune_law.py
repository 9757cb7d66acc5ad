"""The fine-tuning law of Zhang et al. (2024, "When Scaling Meets LLM Finetuning"), fitted.

L(X, D_f) = A X^-alpha D_f^-beta + E: X a scaling factor (here the base model's size N), D_f the
fine-tuning tokens; the multiplicative joint law the paper fits per fine-tuning method. Fitted
the way Chinchilla fits Approach 3 (analysis/approach3.py): Huber (delta 1e-3) between log L and
the law in log-sum-exp form LSE(a - alpha log X - beta log D_f, e), A = e^a, E = e^e, by L-BFGS
(analysis/lbfgs.py) from a grid of starts (a in {0, 5, .., 25}, e in {-1, -.5, .., 1}, alpha and
beta in {0, .5, .., 2}: 750), keeping the best; log X and log D_f centred, in float64.

With `fixed_E` (a data set whose irreducible loss is known exactly, like the synthetic source's
floor) E is held there and A, alpha, beta are fitted to the loss above it: the exponents of the
reducible loss, which a free E can blur when the runs sit far above the floor.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from analysis import lbfgs
from analysis.approach3 import HUBER_DELTA

# Starting points in (a, e, alpha, beta), the Chinchilla grid's values for these four.
GRID = np.array(list(itertools.product(np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5),
                                       np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))))
MIN_POINTS = 5  # four parameters: at least one point to spare


def finetune_loss(x, d, A, alpha, beta, E):
  return A * np.power(x, -alpha) * np.power(d, -beta) + E


def _value_and_grad(params, weights, data):
  """Sum of Huber(log-sum-exp law - log L) / delta and its gradient, for each lane; e moves only
  where free_e is 1."""
  log_x, log_d, log_loss, free_e = data
  a, e, alpha, beta = (params[:, i:i + 1] for i in range(4))
  term = jnp.exp(a - alpha * log_x - beta * log_d)
  e_term = jnp.exp(e)
  total = term + e_term
  r = jnp.log(total) - log_loss
  huber = jnp.where(jnp.abs(r) <= HUBER_DELTA, 0.5 * r * r,
                    HUBER_DELTA * (jnp.abs(r) - 0.5 * HUBER_DELTA))
  slope = weights * jnp.clip(r, -HUBER_DELTA, HUBER_DELTA) / (HUBER_DELTA * total)
  grad = jnp.stack([jnp.sum(slope * term, -1), free_e * jnp.sum(slope, -1) * e_term[:, 0],
                    -jnp.sum(slope * term * log_x, -1), -jnp.sum(slope * term * log_d, -1)], -1)
  return jnp.sum(weights * huber, -1) / HUBER_DELTA, grad


def fit(x, d, loss, starts=GRID, fixed_E: float | None = None) -> dict:
  """{A, alpha, beta, E, objective, converged, n_points, n_starts} of the law through the runs
  (E held at fixed_E when given)."""
  log_x, log_d = np.log(np.asarray(x, np.float64)), np.log(np.asarray(d, np.float64))
  centre_x, centre_d = log_x.mean(), log_d.mean()
  starts = np.array(starts, np.float64)
  if fixed_E is not None:
    starts[:, 1] = np.log(fixed_E)
    starts = np.unique(starts, axis=0)
  starts[:, 0] -= starts[:, 2] * centre_x + starts[:, 3] * centre_d
  points = (log_x - centre_x, log_d - centre_d, np.log(np.asarray(loss, np.float64)))
  points, weights = lbfgs.pad_points(points, np.ones((len(starts), len(log_x))))
  with jax.enable_x64(True):
    data = tuple(jnp.asarray(v, jnp.float64) for v in points) + (
        jnp.asarray(0.0 if fixed_E is not None else 1.0, jnp.float64),)
    minima = lbfgs.minimize(_value_and_grad, starts, weights, data)
  best = int(np.argmin(np.where(np.isfinite(minima.f), minima.f, np.inf)))
  a, e, alpha, beta = minima.x[best]
  a += alpha * centre_x + beta * centre_d
  return {"A": float(np.exp(a)), "alpha": float(alpha), "beta": float(beta), "E": float(np.exp(e)),
          "objective": float(minima.f[best]), "converged": bool(minima.converged[best]),
          "n_points": len(log_x), "n_starts": len(starts), "huber_delta": HUBER_DELTA}
