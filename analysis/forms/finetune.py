"""The fine-tuning law of Zhang et al. (2024, "When Scaling Meets LLM Finetuning").

L(X, D_f) = A X^-alpha D_f^-beta + E: X a scaling factor (here the base model's size N), D_f the
fine-tuning tokens; the multiplicative joint law the paper fits per fine-tuning method. Fitted as
Chinchilla fits Approach 3: Huber (delta 1e-3) on log L with the law in log-sum-exp form
LSE(a - alpha log X - beta log D_f, e), from a grid of starts (a in {0, 5, .., 25}, e in
{-1, -.5, .., 1}, alpha and beta in {0, .5, .., 2}: 750). With E known exactly (a synthetic
source's floor) analysis/finetune.py holds the raw variable e at log E (`fixed`).
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms

# Starting points in (a, e, alpha, beta), the Chinchilla grid's values for these four.
GRID = np.array(list(itertools.product(np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5),
                                       np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))))
MIN_POINTS = 5  # four parameters: at least one point to spare


def log_loss(x, logs):
  a, e, alpha, beta = x[0], x[1], x[2], x[3]
  log_x, log_d = logs
  return jnp.log(jnp.exp(a - alpha * log_x - beta * log_d) + jnp.exp(e))


def to_params(x) -> dict:
  x = np.asarray(x)
  return {"A": np.exp(x[..., 0]), "alpha": x[..., 2], "beta": x[..., 3], "E": np.exp(x[..., 1])}


def to_raw(p) -> np.ndarray:
  return np.array([np.log(p["A"]), np.log(p["E"]), p["alpha"], p["beta"]])


def shift(x, centre):
  x = np.array(x, np.float64)
  x[..., 0] -= x[..., 2] * centre[0] + x[..., 3] * centre[1]
  return x


def finetune_loss(x, d, A, alpha, beta, E):
  return A * np.power(x, -alpha) * np.power(d, -beta) + E


FORM = forms.register(forms.Form(
    name="finetune", section="laws", title="Fine-tuning law (Zhang et al. 2024)",
    formula="L(N, D_f) = A N^-alpha D_f^-beta + E",
    params=("A", "alpha", "beta", "E"), raw=("a", "e", "alpha", "beta"), inputs=("n", "d_f"),
    loss=log_loss, to_params=to_params, to_raw=to_raw, grid=GRID, objective="huber",
    shift=shift, study=forms.FINETUNING))
