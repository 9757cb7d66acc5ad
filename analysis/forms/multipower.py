"""The multi-power law (Luo et al. 2025, "A Multi-Power Law for Loss Curve Prediction Across
Learning Rate Schedules"): L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t),
LD(t) = B sum_k (lr_{k-1} - lr_k) G(lr_k^-gamma S_k(t)), G(x) = 1 - (C x + 1)^-beta.

S1 + S_W is the area under the whole schedule so far (warmup included), S_k(t) the area from
update k to t; the sum runs over the drops after the warmup, each a quadrature node of
analysis/curves/areas.py. Huber (delta 1e-3) on log L from a grid of 54 starts; fitted on the
curves of one model size.
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms

INPUTS = ("s1", "eta_hi", "eta_lo", "eta", "area")
PARAMS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
# Starts in (log L0, log A, alpha, log B, log C, beta, gamma).
GRID = np.array(list(itertools.product(
    np.log([0.5, 1.0, 2.0]), np.log([0.3, 1.0, 3.0]), (0.5,), np.log([10.0, 100.0, 1000.0]),
    np.log([0.3, 3.0]), (0.5,), (0.5,))))


def loss_drop(b, c, beta, gamma, log_hi, log_lo, log_eta, log_area):
  x = jnp.exp(c - gamma * log_eta + log_area)
  g = -jnp.expm1(-beta * jnp.log1p(x))
  return jnp.exp(b) * jnp.sum((jnp.exp(log_hi) - jnp.exp(log_lo)) * g, -1)


def log_loss(x, logs):
  l0, a, alpha, b, c, beta, gamma = (x[i] for i in range(7))
  log_s1, log_hi, log_lo, log_eta, log_area = logs
  drop = loss_drop(b, c, beta, gamma, log_hi, log_lo, log_eta, log_area)
  return jnp.log(jnp.exp(l0) + jnp.exp(a - alpha * log_s1) - drop)


def to_params(x) -> dict:
  x = np.asarray(x)
  return {"L0": np.exp(x[..., 0]), "A": np.exp(x[..., 1]), "alpha": x[..., 2],
          "B": np.exp(x[..., 3]), "C": np.exp(x[..., 4]), "beta": x[..., 5], "gamma": x[..., 6]}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["L0"]), np.log(p["A"]), p["alpha"], np.log(p["B"]), np.log(p["C"]),
                   p["beta"], p["gamma"]])


FORM = forms.register(forms.Form(
    name="multipower", section="multipower", title="Multi-power law (Luo et al. 2025)",
    formula="L(t) = L0 + A S1^-alpha - B sum_k (lr_{k-1} - lr_k) (1 - (C lr_k^-gamma S_k(t) + 1)^-beta)",
    params=PARAMS, raw=("log_L0", "log_A", "alpha", "log_B", "log_C", "beta", "gamma"),
    inputs=INPUTS, loss=log_loss, to_params=to_params, to_raw=to_raw, grid=GRID,
    objective="huber", study=forms.CURVES))
