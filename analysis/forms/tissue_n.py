"""Tissue et al.'s curve law across model sizes: L(s, N) = L0 + B N^-beta + A S1^-alpha - C S2.

This project's joint form: the curve law of analysis/forms/tissue.py with Chinchilla's model-size
term added, all parameters shared by every size, so curves of a few sizes predict the curves of
another size. Huber (delta 1e-3) on log L from tissue's 81 starts x beta in {0.3, 0.6} x
B N^-beta in {0.3, 1} at the data's mean log N (324 starts).
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms
from analysis.forms import tissue

INPUTS = tissue.INPUTS + ("n",)
PARAMS = ("L0", "B", "beta", "A", "alpha", "C", "lambda")


def log_loss(x, logs):
  l0, b, beta, a, alpha, c, log_tau = (x[i] for i in range(7))
  log_s1, log_hi, log_lo, log_lag, log_n = logs
  s2 = tissue.annealing_area(log_tau, log_hi, log_lo, log_lag)
  return jnp.log(jnp.exp(l0) + jnp.exp(b - beta * log_n) + jnp.exp(a - alpha * log_s1)
                 - jnp.exp(c) * s2)


def grid(centre):
  rows = []
  for start, beta, scale in itertools.product(tissue.GRID, (0.3, 0.6), np.log([0.3, 1.0])):
    rows.append((start[0], beta * centre[-1] + scale, beta, *start[1:]))
  return np.array(rows)


def to_params(x) -> dict:
  x = np.asarray(x)
  return {"L0": np.exp(x[..., 0]), "B": np.exp(x[..., 1]), "beta": x[..., 2],
          "A": np.exp(x[..., 3]), "alpha": x[..., 4], "C": np.exp(x[..., 5]),
          "lambda": np.exp(-np.exp(-x[..., 6]))}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["L0"]), np.log(p["B"]), p["beta"], np.log(p["A"]), p["alpha"],
                   np.log(p["C"]), np.log(-1.0 / np.log(p["lambda"]))])


FORM = forms.register(forms.Form(
    name="tissue_n", section="tissue_n", title="Tissue et al. (2024) across sizes",
    formula="L(s, N) = L0 + B N^-beta + A S1^-alpha - C S2",
    params=PARAMS, raw=("log_L0", "log_B", "beta", "log_A", "alpha", "log_C", "log_tau"),
    inputs=INPUTS, loss=log_loss, to_params=to_params, to_raw=to_raw, grid=grid,
    objective="huber", derived=tissue.derived, study=forms.CURVES))
