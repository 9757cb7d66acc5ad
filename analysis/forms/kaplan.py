"""Kaplan et al. (2020)'s joint law: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.

Their equation 1.5, no irreducible term, over all runs with non-embedding N, least squares on
log L as Kaplan et al. fit it, by L-BFGS from a small grid of starts around the data's centre.
Under C = k N^gamma D its minimum over N is laws.kaplan_optimum. Its one-variable laws L(N),
L(D), L(C) are analysis/kaplan.py.
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms
from analysis import laws

# Starts in (log N_c - mean log N, log D_c - mean log D, alpha_N, alpha_D).
GRID = np.array(list(itertools.product((2.0, 5.0, 10.0, 20.0, 50.0), (2.0, 5.0, 10.0, 20.0, 50.0),
                                       (0.05, 0.1, 0.2, 0.5), (0.05, 0.1, 0.2, 0.5))))
PARAMS = ("alpha_N", "alpha_D", "N_c", "D_c")


def log_loss(x, logs):
  log_nc, log_dc, alpha_n, alpha_d = x[0], x[1], x[2], x[3]
  log_n, log_d = logs
  return alpha_d * jnp.logaddexp(alpha_n / alpha_d * (log_nc - log_n), log_dc - log_d)


def to_params(x) -> dict:
  x = np.asarray(x)
  return {"alpha_N": x[..., 2], "alpha_D": x[..., 3], "N_c": np.exp(x[..., 0]),
          "D_c": np.exp(x[..., 1])}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["N_c"]), np.log(p["D_c"]), p["alpha_N"], p["alpha_D"]])


def shift(x, centre):
  x = np.array(x, np.float64)
  x[..., 0] -= centre[0]
  x[..., 1] -= centre[1]
  return x


def optimum(p, flops, k=6.0, gamma=1.0):
  return laws.kaplan_optimum(flops, *(p[name] for name in PARAMS), k=k, gamma=gamma)


def derived(p) -> dict:
  return {"n_opt_exponent": p["alpha_D"] / (p["alpha_N"] + p["alpha_D"])}


FORM = forms.register(forms.Form(
    name="kaplan", section="kaplan", title="Kaplan et al. (2020) L(N, D)",
    formula="L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
    params=PARAMS, raw=("log_N_c", "log_D_c", "alpha_N", "alpha_D"), inputs=("n_kaplan", "d"),
    loss=log_loss, to_params=to_params, to_raw=to_raw,
    grid=lambda centre: GRID + np.array([centre[0], centre[1], 0, 0]),
    objective="squares", shift=shift, optimum=optimum, derived=derived))
