"""Chinchilla Approach 3 (Hoffmann et al. 2022): L(N, D) = E + A/N^alpha + B/D^beta.

Fitted as in the paper (section 3.3, appendix D.2): Huber (delta 1e-3) between log L and the law
in log-sum-exp form LSE(a - alpha log N, b - beta log D, e), A = e^a, B = e^b, E = e^e, by L-BFGS
from the grid alpha, beta in {0, 0.5, .., 2}, e in {-1, -.5, .., 1}, a, b in {0, 5, .., 25}
(4,500 starts), keeping the best. Besiroglu et al. (2024) replicate it on the paper's Figure 4
runs; tests/test_analysis_approach3.py checks their numbers. The compute-optimal allocation under
C = k N^gamma D is laws.chinchilla_optimum (G, a, b: the paper's equation 4 at 6ND).
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms
from analysis import laws

# Starting points in (a, b, e, alpha, beta): Hoffmann et al. (2022), appendix D.2.
GRID = np.array([(a, b, e, alpha, beta) for a, b, e, alpha, beta in itertools.product(
    np.arange(0, 30, 5.0), np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5),
    np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))])


def log_loss(x, logs):
  a, b, e, alpha, beta = x[0], x[1], x[2], x[3], x[4]
  log_n, log_d = logs
  return jnp.log(jnp.exp(a - alpha * log_n) + jnp.exp(b - beta * log_d) + jnp.exp(e))


def to_params(x) -> dict:
  x = np.asarray(x)
  return {"E": np.exp(x[..., 2]), "A": np.exp(x[..., 0]), "B": np.exp(x[..., 1]),
          "alpha": x[..., 3], "beta": x[..., 4]}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"], p["beta"]])


def shift(x, centre):
  x = np.array(x, np.float64)
  x[..., 0] -= x[..., 3] * centre[0]
  x[..., 1] -= x[..., 4] * centre[1]
  return x


def optimum(p, flops, k=6.0, gamma=1.0):
  return laws.chinchilla_optimum(flops, p["A"], p["B"], p["alpha"], p["beta"], k=k, gamma=gamma)


def derived(p) -> dict:
  a, b = laws.frontier_exponents(p["alpha"], p["beta"])
  return {"a": a, "b": b, "G": laws.frontier_G(p["A"], p["B"], p["alpha"], p["beta"])}


FORM = forms.register(forms.Form(
    name="approach3", section="chinchilla_approach3",
    title="Chinchilla Approach 3", formula="L(N, D) = E + A/N^alpha + B/D^beta",
    params=("E", "A", "B", "alpha", "beta"), raw=("a", "b", "e", "alpha", "beta"),
    inputs=("n", "d"), loss=log_loss, to_params=to_params, to_raw=to_raw, grid=GRID,
    objective="huber", shift=shift, optimum=optimum, derived=derived, floor="e"))
