"""Approach 3 (forms/chinchilla.py through fitter.py) and the batched L-BFGS: Epoch's replication of Chinchilla, a known law with noise."""
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import fitter
from analysis import forms
from analysis import laws
from analysis import lbfgs
from analysis import runs as runs_lib
from conftest import ROOT

CHINCHILLA = os.path.join(ROOT, "..", "shared", "data", "chinchilla", "svg_extracted_data.csv")


def test_reproduces_epochs_fit_of_the_chinchilla_runs():
  if not os.path.exists(CHINCHILLA):
    pytest.skip(f"{CHINCHILLA} is not available")
  runs = runs_lib.load(CHINCHILLA, drop_top_loss=5)
  assert len(runs) == 240
  assert runs.columns["n"] == "Model Size" and runs.columns["c"] == "Training FLOP"
  np.testing.assert_allclose(runs.d, runs.c / (6 * runs.n))
  fit = fitter.fit(forms.get("approach3"), (runs.n, runs.d), runs.loss)
  assert fit.converged and fit.n_starts == 4500
  assert fit.E == pytest.approx(1.8172, abs=0.003)
  assert fit.alpha == pytest.approx(0.3473, abs=0.005)
  assert fit.beta == pytest.approx(0.3672, abs=0.005)
  assert fit.A == pytest.approx(477.8, rel=0.05)
  assert fit.B == pytest.approx(2143.8, rel=0.05)
  for flops, tokens in ((1e18, 26), (1e24, 18)):
    n_opt, d_opt = laws.chinchilla_optimum(flops, fit.A, fit.B, fit.alpha, fit.beta)
    assert d_opt / n_opt == pytest.approx(tokens, abs=1)


def test_recovers_a_known_law_from_noisy_runs_in_float64():
  truth = {"E": 1.2, "A": 60.0, "B": 300.0, "alpha": 0.36, "beta": 0.30}
  n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e4, 3e6, 8), np.geomspace(1e6, 3e8, 8)))
  rng = np.random.default_rng(0)
  loss = laws.chinchilla_loss(n, d, **truth) * np.exp(rng.normal(0, 0.003, n.shape))
  fit = fitter.fit(forms.get("approach3"), (n, d), loss)
  assert fit.converged
  assert fit.E == pytest.approx(truth["E"], abs=0.05)
  assert fit.alpha == pytest.approx(truth["alpha"], abs=0.04)
  assert fit.beta == pytest.approx(truth["beta"], abs=0.04)
  assert fit.a == pytest.approx(truth["beta"] / (truth["alpha"] + truth["beta"]), abs=0.03)
  # The fitted law predicts the noise-free losses to well under a percent.
  np.testing.assert_allclose(laws.chinchilla_loss(n, d, **fit.law()),
                             laws.chinchilla_loss(n, d, **truth), rtol=5e-3)
  # The fit ran in float64 (see above) without switching JAX's default for the process.
  assert not jax.config.jax_enable_x64 and jnp.ones(1).dtype == jnp.float32


def _rosenbrock(x, weights, data):
  del weights, data
  f = lambda v: jnp.sum(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)
  return jax.vmap(jax.value_and_grad(f))(x)


def test_lbfgs_minimises_from_every_start_and_flags_the_ones_it_stops():
  starts = np.array(list(itertools.product((-1.5, 0.0, 2.0), (-1.0, 1.5, 3.0), (0.5, -2.0))))
  with jax.enable_x64(True):
    done = lbfgs.minimize(_rosenbrock, starts, np.ones((len(starts), 1)), pool=5)
    cut_short = lbfgs.minimize(_rosenbrock, starts, np.ones((len(starts), 1)), pool=5, max_iter=4)
  assert done.converged.all()
  np.testing.assert_allclose(done.x, 1.0, atol=1e-4)
  assert not cut_short.converged.any() and (cut_short.n_iter == 4).all()


def test_non_convergence_is_flagged():
  n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e4, 3e6, 4), np.geomspace(1e6, 3e8, 4)))
  loss = laws.chinchilla_loss(n, d, 1.2, 60.0, 300.0, 0.36, 0.30)
  assert not fitter.fit(forms.get("approach3"), (n, d), loss, max_iter=3).converged
