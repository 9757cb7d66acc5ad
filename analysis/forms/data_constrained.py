"""The data-constrained law of Muennighoff et al. (2023, "Scaling Data-Constrained Language Models").

L(N, U, D) = E + A/N'^alpha + B/D'^beta with the effective data and parameters
  D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),  R_D = D / U_D - 1 (epochs beyond the first),
  N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),  R_N = N / U_N - 1,
U_D the unique tokens and U_N = min(N, N_opt(U_D)), the compute-optimal size for U_D tokens of
the law's own Chinchilla part (N_opt(D) = G (G D)^(beta / alpha), G as Approach 3's). A repeated
token is worth less each epoch and R_D* is the repetitions at which it is worth 1 - 1/e of its
limit; N' does the same for parameters beyond what the unique data can use. Fresh data (R_D = 0) for
N <= N_opt(U) is Approach 3 exactly; a larger model's excess parameters count less even then.

Fitted as the paper does, in stages (`fit`): Approach 3 on the single-epoch runs, then R_D* and R_N*
with that part held (a grid of starts in log R*), then every parameter together from there, all
through analysis/fitter.py with Huber on log L. `optimum` gives, for a unique-token limit and a
compute budget C = 6 N D, the N and epochs of least predicted loss.
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms
from analysis.forms import chinchilla
from analysis.runs import DataError

STUDY = "data_constrained"
RAW = ("a", "b", "e", "alpha", "beta", "r_d", "r_n")  # r = log R*
PARAMS = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
# Starting points in log R*: R* in 0.5 .. 200 (the paper's 15.4 and 5.3 inside).
R_GRID = np.log([0.5, 1.5, 5.0, 15.0, 50.0, 200.0])
FRESH = 1 + 1e-9  # epochs at or below this are fresh data


def _effective(xp, log_unique, repeats, log_r_star):
  """log(U + U R* (1 - exp(-R / R*))) for log U, R and log R*."""
  r_star = xp.exp(log_r_star)
  return log_unique + xp.log1p(r_star * -xp.expm1(-repeats / r_star))


def log_n_opt(a, b, alpha, beta, log_d, xp=jnp):
  """log of Approach 3's compute-optimal N for D tokens."""
  log_g = (xp.log(alpha) + a - xp.log(beta) - b) / (alpha + beta)
  return log_g + beta / alpha * (log_g + log_d)


def _log_loss(xp, x, logs):
  """The law's log L in array namespace xp (jnp to fit, numpy to predict)."""
  a, b, e, alpha, beta, r_d, r_n = (x[i] for i in range(7))
  log_n, log_u, log_d = logs
  repeats_d = xp.maximum(xp.expm1(log_d - log_u), 0.0)
  log_d_eff = _effective(xp, log_u, repeats_d, r_d)
  log_u_n = xp.minimum(log_n, log_n_opt(a, b, alpha, beta, log_u, xp))
  log_n_eff = _effective(xp, log_u_n, xp.expm1(log_n - log_u_n), r_n)
  return xp.log(xp.exp(a - alpha * log_n_eff) + xp.exp(b - beta * log_d_eff) + xp.exp(e))


def log_loss(x, logs):
  return _log_loss(jnp, x, logs)


def to_params(x) -> dict:
  x = np.asarray(x)
  with np.errstate(over="ignore"):  # an unidentified R* of a resample runs off to inf: reported so
    return {"E": np.exp(x[..., 2]), "A": np.exp(x[..., 0]), "B": np.exp(x[..., 1]),
            "alpha": x[..., 3], "beta": x[..., 4], "R_D_star": np.exp(x[..., 5]),
            "R_N_star": np.exp(x[..., 6])}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"], p["beta"],
                   np.log(p["R_D_star"]), np.log(p["R_N_star"])])


FORM = forms.register(forms.Form(
    name="data_constrained", section="data_constrained",
    title="Data-constrained law (Muennighoff et al. 2023)",
    formula="L = E + A/N'^alpha + B/D'^beta, D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*)), "
            "N' = U_N + U_N R_N* (1 - exp(-R_N/R_N*))",
    params=PARAMS, raw=RAW, inputs=("n", "unique_tokens", "d"), loss=log_loss,
    to_params=to_params, to_raw=to_raw,
    grid=np.array([(0, 0, 0, 0.5, 0.5, r_d, r_n) for r_d, r_n in itertools.product(R_GRID, R_GRID)]),
    objective="huber", study=STUDY))


def fit(n, unique_tokens, tokens, loss, floor=None):
  """The law (a fitter.LawFit) fitted to runs of N parameters, `unique_tokens` distinct tokens and
  `tokens` seen; with `floor` (a known best loss, the synthetic source's), E is held there."""
  from analysis import fitter  # pylint: disable=g-import-not-at-top (fitter imports the forms)
  n, unique, d, loss = (np.asarray(v, np.float64) for v in (n, unique_tokens, tokens, loss))
  fresh = d <= unique * FRESH
  if fresh.sum() < 5:
    raise DataError(f"{FORM.title}: needs at least 5 single-epoch runs to fit "
                                    f"its Chinchilla part, got {int(fresh.sum())}")
  at_floor = {} if floor is None else {"e": float(np.log(floor))}
  base = fitter.fit(chinchilla.FORM, (n[fresh], d[fresh]), loss[fresh], fixed=at_floor)
  # Every distinct minimum of the fresh runs' fit starts the whole law (with each R* of the grid):
  # with few sizes E and A trade off along a flat valley, and the law's best minimum may lie off
  # the one the fresh fit happened to stop at (docs/results/2026-12-03-finite-data.md, evening).
  starts = np.array([[*minimum, r_d, r_n] for minimum in base.alternates
                     for r_d, r_n in itertools.product(R_GRID, R_GRID)])
  return fitter.fit(FORM, (n, unique, d), loss, starts, fixed=at_floor)


def bootstrap(law_fit, n, unique_tokens, tokens, loss, samples: int = 200,
              seed: int = 0) -> dict:
  """{parameter: samples} of refits on runs resampled with replacement (seeded)."""
  from analysis import fitter  # pylint: disable=g-import-not-at-top
  counts = np.random.default_rng(seed).multinomial(
      len(loss), np.full(len(loss), 1 / len(loss)), size=samples).astype(np.float64)
  return fitter.refit_samples(FORM, (n, unique_tokens, tokens), loss, law_fit, counts)


def predict(params: dict, n, unique_tokens, tokens) -> np.ndarray:
  """The law's L (numpy: no compilation)."""
  logs = tuple(np.log(np.asarray(v, np.float64)) for v in (n, unique_tokens, tokens))
  return np.exp(_log_loss(np, to_raw(params), logs))


def optimum(params: dict, flops: float, unique_tokens: float, k: float = 6.0,
            points: int = 4001) -> dict:
  """The N of least predicted loss at compute C = k N D with at most `unique_tokens` distinct
  tokens (D = C / (k N), epochs D / U), searched on a grid of log N spanning 1 .. C / k."""
  log_n = np.linspace(0.0, np.log(flops / k), points)
  n = np.exp(log_n)
  d = flops / (k * n)
  u = np.minimum(d, unique_tokens)
  loss = predict(params, n, u, d)
  best = int(np.nanargmin(loss))
  return {"flops": flops, "unique_tokens": unique_tokens, "n": float(n[best]), "d": float(d[best]),
          "epochs": float(d[best] / u[best]), "loss": float(loss[best])}
