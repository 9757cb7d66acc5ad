"""A law form defined outside the project, registered on import: L = E + A (N^p D^(1-p))^-c.

The loss falls with one "effective scale" N^p D^(1-p) (exponents p c in N and (1 - p) c in D);
under C = 6ND it is monotone in N, so it has no compute-optimal allocation (optimum None).
tests/test_analysis_forms.py fits it end to end; nothing in analysis/ names it.
"""
import itertools

import jax.numpy as jnp
import numpy as np

from analysis import forms

GRID = np.array(list(itertools.product((0.0, 5.0, 10.0, 15.0), (-1.0, 0.0, 1.0),
                                       (0.25, 0.5, 0.75), (0.2, 0.5, 1.0))))


def log_loss(x, logs):
  a, e, p, c = x[0], x[1], x[2], x[3]
  log_n, log_d = logs
  return jnp.logaddexp(a - c * (p * log_n + (1 - p) * log_d), e)


def to_params(x):
  x = np.asarray(x)
  return {"E": np.exp(x[..., 1]), "A": np.exp(x[..., 0]), "p": x[..., 2], "c": x[..., 3]}


def to_raw(q):
  return np.array([np.log(q["A"]), np.log(q["E"]), q["p"], q["c"]])


def shift(x, centre):
  x = np.array(x, np.float64)
  x[..., 0] -= x[..., 3] * (x[..., 2] * centre[0] + (1 - x[..., 2]) * centre[1])
  return x


FORM = forms.register(forms.Form(
    name="geometric", section="geometric_scale", title="Geometric scale law",
    formula="L(N, D) = E + A (N^p D^(1-p))^-c", params=("E", "A", "p", "c"),
    raw=("a", "e", "p", "c"), inputs=("n", "d"), loss=log_loss, to_params=to_params,
    to_raw=to_raw, grid=GRID, shift=shift,
    derived=lambda q: {"alpha_N": q["p"] * q["c"], "alpha_D": (1 - q["p"]) * q["c"]}))
