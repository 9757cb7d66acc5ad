"""Tissue et al. (2024, "Scaling Law with Learning Rate Annealing"): L(s) = L0 + A S1^-alpha - C S2.

S1 is the area under the lr schedule up to step s, S2 the annealing area: S2 = sum_i m_i with
momentum m_i = lambda m_{i-1} + (lr_{i-1} - lr_i), i.e. each lr drop d_u counts
(1 - lambda^(s-u)) / (1 - lambda) (analysis/curves/areas.py builds S1 and the drop history of each
point). lambda is fitted here (the paper fixes 0.999 for runs of tens of thousands of steps; its
time constant -1/ln(lambda), in steps, is the raw variable log_tau). Huber (delta 1e-3) on log L
from a grid of 81 starts; fitted on the curves of one model size.
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms

INPUTS = ("s1", "eta_hi", "eta_lo", "lag")
PARAMS = ("L0", "A", "alpha", "C", "lambda")
# Starts in (log L0, log A, alpha, log C, log tau).
GRID = np.array(list(itertools.product(
    np.log([0.5, 1.0, 2.0]), np.log([0.3, 1.0, 3.0]), (0.5,), np.log([1.0, 10.0, 100.0]),
    np.log([3.0, 30.0, 300.0]))))


def annealing_area(log_tau, log_hi, log_lo, log_lag):
  """S2 of each point from its drop nodes ([n, M] logs), lambda = exp(-1/tau)."""
  inv_tau = jnp.exp(-log_tau)
  kernel = jnp.expm1(-jnp.exp(log_lag) * inv_tau) / jnp.expm1(-inv_tau)
  return jnp.sum((jnp.exp(log_hi) - jnp.exp(log_lo)) * kernel, -1)


def log_loss(x, logs):
  l0, a, alpha, c, log_tau = x[0], x[1], x[2], x[3], x[4]
  log_s1, log_hi, log_lo, log_lag = logs
  s2 = annealing_area(log_tau, log_hi, log_lo, log_lag)
  return jnp.log(jnp.exp(l0) + jnp.exp(a - alpha * log_s1) - jnp.exp(c) * s2)


def to_params(x) -> dict:
  x = np.asarray(x)
  return {"L0": np.exp(x[..., 0]), "A": np.exp(x[..., 1]), "alpha": x[..., 2],
          "C": np.exp(x[..., 3]), "lambda": np.exp(-np.exp(-x[..., 4]))}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["L0"]), np.log(p["A"]), p["alpha"], np.log(p["C"]),
                   np.log(-1.0 / np.log(p["lambda"]))])


def derived(p) -> dict:
  return {"tau_steps": -1.0 / np.log(p["lambda"])}


FORM = forms.register(forms.Form(
    name="tissue", section="tissue", title="Tissue et al. (2024) L(s) = L0 + A S1^-alpha - C S2",
    formula="L(s) = L0 + A S1^-alpha - C S2, S2 = sum m_i, m_i = lambda m_{i-1} + lr_{i-1} - lr_i",
    params=PARAMS, raw=("log_L0", "log_A", "alpha", "log_C", "log_tau"), inputs=INPUTS,
    loss=log_loss, to_params=to_params, to_raw=to_raw, grid=GRID, objective="huber",
    derived=derived, study=forms.CURVES))
