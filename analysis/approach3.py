"""Chinchilla Approach 3: the law L(N, D) = E + A/N^alpha + B/D^beta, fitted as in the paper.

Hoffmann et al. (2022, section 3.3 and appendix D.2) minimise the Huber loss (delta = 1e-3) between
log L and the law in log-sum-exp form, LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b,
E = e^e, by L-BFGS from a grid of starting points (alpha, beta in {0, 0.5, .., 2}, e in {-1, -.5,
.., 1}, a, b in {0, 5, .., 25}: 4,500 starts), keeping the best final objective. Besiroglu et al.
(2024) replicate this on the paper's Figure 4 runs; tests/test_analysis_approach3.py checks their
numbers.

Choices of this implementation:
- All starts run in one jit-compiled L-BFGS loop (lbfgs.py), with a hand-written batched gradient
  (two exponentials and one logarithm per point and start), so the full grid takes seconds.
- log N and log D are centred (a' = a - alpha mean(log N)); this is the same set of starting points
  and the same minima, but the Hessian is far better conditioned, so L-BFGS needs about half the
  iterations.
- The objective is the sum of Huber losses divided by delta (the minimiser is unchanged).
- Float64 throughout, scoped with `jax.enable_x64(True)` around the fit only (a thread-local
  context, entered by whichever thread fits): code that imports this module (training, in the same
  process) keeps JAX's float32 default.
- Bootstrap refits start from the full-data optimum and the best distinct minima of the grid, not
  the whole grid again (bootstrap.py): resampled data move the optimum a little, not to a new basin.
"""
import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from analysis import laws
from analysis import lbfgs
from analysis import runs as runs_lib

HUBER_DELTA = 1e-3
# Starting points in (a, b, e, alpha, beta): Hoffmann et al. (2022), appendix D.2.
GRID = np.array([(a, b, e, alpha, beta) for a, b, e, alpha, beta in itertools.product(
    np.arange(0, 30, 5.0), np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5),
    np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))])
# Starts within this relative objective of the best count as having found the same minimum.
SAME_MINIMUM = 1e-6


@dataclasses.dataclass(frozen=True)
class Approach3Fit:
  """The fitted law and how the optimiser got there."""
  E: float
  A: float
  B: float
  alpha: float
  beta: float
  objective: float         # sum of Huber(delta) / delta over the points at the best start
  converged: bool          # a start at the best objective met the convergence test
  n_starts: int
  n_starts_converged: int
  n_starts_at_best: int    # starts that ended at the best objective (within SAME_MINIMUM)
  n_iter: int              # iterations the best start used
  alternates: np.ndarray   # [k, 5] the best distinct minima, (a, b, e, alpha, beta), best first

  @property
  def a(self) -> float:
    return laws.frontier_exponents(self.alpha, self.beta)[0]

  @property
  def b(self) -> float:
    return laws.frontier_exponents(self.alpha, self.beta)[1]

  @property
  def G(self) -> float:
    return laws.frontier_G(self.A, self.B, self.alpha, self.beta)

  def law(self) -> dict:
    return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}

  def to_dict(self) -> dict:
    return {**self.law(), "a": self.a, "b": self.b, "G": self.G, "objective": self.objective,
            "converged": self.converged, "n_starts": self.n_starts,
            "n_starts_converged": self.n_starts_converged,
            "n_starts_at_best": self.n_starts_at_best,
            "n_iter": self.n_iter, "huber_delta": HUBER_DELTA}


def _value_and_grad(x, weights, data):
  """Sum of Huber(log-sum-exp law - log L) / delta and its gradient, for each lane of x."""
  log_n, log_d, log_loss = data
  a, b, e, alpha, beta = (x[:, i:i + 1] for i in range(5))
  n_term = jnp.exp(a - alpha * log_n)
  d_term = jnp.exp(b - beta * log_d)
  e_term = jnp.exp(e)
  total = n_term + d_term + e_term
  r = jnp.log(total) - log_loss
  huber = jnp.where(jnp.abs(r) <= HUBER_DELTA, 0.5 * r * r,
                    HUBER_DELTA * (jnp.abs(r) - 0.5 * HUBER_DELTA))
  slope = weights * jnp.clip(r, -HUBER_DELTA, HUBER_DELTA) / (HUBER_DELTA * total)
  grad = jnp.stack([
      jnp.sum(slope * n_term, -1), jnp.sum(slope * d_term, -1), jnp.sum(slope, -1) * e_term[:, 0],
      -jnp.sum(slope * n_term * log_n, -1), -jnp.sum(slope * d_term * log_d, -1)], -1)
  return jnp.sum(weights * huber, -1) / HUBER_DELTA, grad


def minimize_starts(n, d, loss, starts, weights, max_iter: int = 1000) -> lbfgs.Minima:
  """L-BFGS from each start (rows (a, b, e, alpha, beta)) with its own point weights, in float64.

  Returns minima in the original (uncentred) parameters.
  """
  log_n, log_d = np.log(np.asarray(n, np.float64)), np.log(np.asarray(d, np.float64))
  centre_n, centre_d = log_n.mean(), log_d.mean()
  starts = np.array(starts, np.float64)
  starts[:, 0] -= starts[:, 3] * centre_n
  starts[:, 1] -= starts[:, 4] * centre_d
  points = (log_n - centre_n, log_d - centre_d, np.log(np.asarray(loss, np.float64)))
  points, weights = lbfgs.pad_points(points, weights)
  with jax.enable_x64(True):
    minima = lbfgs.minimize(_value_and_grad, starts, weights,
                            tuple(jnp.asarray(v, jnp.float64) for v in points), max_iter=max_iter)
  x = minima.x.copy()
  x[:, 0] += x[:, 3] * centre_n
  x[:, 1] += x[:, 4] * centre_d
  return dataclasses.replace(minima, x=x)


def to_law(x) -> dict:
  """(a, b, e, alpha, beta) rows -> {"E", "A", "B", "alpha", "beta"} arrays."""
  x = np.asarray(x)
  return {"E": np.exp(x[..., 2]), "A": np.exp(x[..., 0]), "B": np.exp(x[..., 1]),
          "alpha": x[..., 3], "beta": x[..., 4]}


def distinct_minima(minima: lbfgs.Minima, k: int, tol: float = 1e-3) -> np.ndarray:
  """The best k minima that differ from each other by more than tol in some parameter."""
  order = np.argsort(np.where(np.isfinite(minima.f), minima.f, np.inf))
  chosen = []
  for i in order:
    if not np.isfinite(minima.f[i]):
      break
    if all(np.max(np.abs(minima.x[i] - minima.x[j])) > tol for j in chosen):
      chosen.append(i)
    if len(chosen) == k:
      break
  return minima.x[chosen]


def fit(n, d, loss, starts=GRID, max_iter: int = 1000) -> Approach3Fit:
  """Fits L(N, D) = E + A/N^alpha + B/D^beta to runs (N params, D tokens, final loss)."""
  n, d, loss = (np.asarray(v, np.float64) for v in (n, d, loss))
  minima = minimize_starts(n, d, loss, starts, np.ones((len(starts), len(n))), max_iter)
  finite = np.isfinite(minima.f)
  if not finite.any():
    raise runs_lib.DataError("approach 3: the law's loss is not finite from any starting point; "
                             "check the N, D and loss columns")
  best = int(np.argmin(np.where(finite, minima.f, np.inf)))
  law = to_law(minima.x[best])
  at_best = minima.f <= minima.f[best] * (1 + SAME_MINIMUM)
  return Approach3Fit(
      **{k: float(v) for k, v in law.items()}, objective=float(minima.f[best]),
      converged=bool(np.any(minima.converged & at_best)), n_starts=len(starts),
      n_starts_converged=int(minima.converged.sum()), n_starts_at_best=int(at_best.sum()),
      n_iter=int(minima.n_iter[best]), alternates=distinct_minima(minima, 4))
