"""analysis.isoflop's estimators of an IsoFLOP minimum, and each minimum's bootstrap interval."""
import numpy as np
import pytest

from analysis import bootstrap
from analysis import isoflop
from analysis import laws
from analysis import runs as runs_lib

EPOCH = {"E": 1.8172, "A": 477.8, "B": 2143.8, "alpha": 0.3473, "beta": 0.3672}
STEEP = {"E": 1.8, "A": 3e4, "B": 2143.8, "alpha": 0.7, "beta": 0.3}  # asymmetric in log N


def _curves(law, budgets=(1e18, 1e19, 1e20), sizes=9, span=64.0, shift=1.3, noise=0.0, seed=0):
  rng = np.random.default_rng(seed)
  curves, truth = [], []
  for budget in budgets:
    n_true = laws.chinchilla_optimum(budget, law["A"], law["B"], law["alpha"], law["beta"])[0]
    n = n_true * shift * np.geomspace(span ** -0.5, span ** 0.5, sizes)
    d = budget / (6 * n)
    loss = laws.chinchilla_loss(n, d, **law) * np.exp(rng.normal(0, noise, sizes))
    curves.append(isoflop.Curve(np.log10(n), loss, np.log10(d), np.ones(sizes)))
    truth.append(np.log10(n_true))
  return curves, np.array(truth)


@pytest.mark.parametrize("method", sorted(isoflop.ESTIMATORS))
def test_every_estimator_finds_the_minimum_of_a_mild_exact_curve(method):
  curves, truth = _curves(EPOCH)
  found = np.array([m.x_opt for m in isoflop.estimate_minima(curves, method)])
  assert np.abs(found - truth).max() < 0.05  # within 12% in N


def test_the_law_profile_is_exact_on_an_asymmetric_curve_where_parabolas_are_not():
  curves, truth = _curves(STEEP, span=1e3)
  law = np.array([m.x_opt for m in isoflop.estimate_minima(curves, "law")])
  whole = np.array([m.x_opt for m in isoflop.estimate_minima(curves, "whole")])
  assert np.abs(law - truth).max() < 1e-3
  assert np.abs(whole - truth).min() > 0.1  # a parabola through the whole curve is dragged


def test_too_few_sizes_and_a_minimum_beyond_the_sizes_are_skipped_with_reasons():
  curves, _ = _curves(EPOCH, sizes=5, span=16.0)
  few = isoflop.Curve(curves[0].x[:2], curves[0].loss[:2], curves[0].log_d[:2], np.ones(2))
  beyond, _ = _curves(EPOCH, budgets=(1e19,), sizes=5, span=8.0, shift=8.0)  # all too large
  out = isoflop.estimate_minima([few, curves[1], beyond[0]], "law")
  assert out[0] == ("sizes", "has 2 model sizes; a minimum needs at least 3")
  assert isinstance(out[1], isoflop.Minimum) and out[2][0] in ("outside", "concave")


def test_the_window_option_selects_the_older_parabolas():
  assert isoflop.method_for(None) == isoflop.DEFAULT == "law"
  assert isoflop.method_for(4.0) == "window" and isoflop.method_for(0) == "whole"


def test_each_budgets_minimum_gets_a_bootstrap_interval_around_it():
  curves, truth = _curves(EPOCH, sizes=7, span=16.0, noise=0.005, seed=1)
  n = np.concatenate([10 ** c.x for c in curves])
  d = np.concatenate([10 ** c.log_d for c in curves])
  budget = np.repeat([1e18, 1e19, 1e20], 7)
  loss = np.concatenate([c.loss for c in curves])
  runs = runs_lib.Runs(np.array([f"r{i}" for i in range(len(n))]), n, d, 6 * n * d, loss, n,
                       budget, {}, "test")
  labels, budgets = runs_lib.isoflop_groups(runs)
  profiles = isoflop.fit_profiles(runs, labels, budgets)
  samples = bootstrap.approach2_samples(runs, labels, budgets,
                                        bootstrap.resample_counts(len(runs), 40, seed=0))
  assert samples["n_opt"].shape == (40, 3)
  for p, true in zip(profiles, truth):
    low, high = isoflop.minimum_interval(samples, budgets, p)["n_opt_ci95"]
    assert low < p.n_opt < high and high / low < 3
    assert abs(np.log10(p.n_opt) - true) < 0.1
  assert isoflop.minimum_interval(None, budgets, profiles[0]) == {}


def test_minimum_loss_at_extrapolates_the_minima_by_a_power_law_above_a_floor():
  budgets = np.array([1e18, 4e18, 1.6e19])
  # exact laws: 2 + 40 C^-0.1 and 50 C^-0.05, read 4x past the largest budget
  assert isoflop.minimum_loss_at(budgets, 2 + 40 * budgets ** -0.1, 6.4e19, floor=2.0) == \
      pytest.approx(2 + 40 * 6.4e19 ** -0.1, rel=1e-12)
  assert isoflop.minimum_loss_at(budgets, 50 * budgets ** -0.05, 6.4e19) == \
      pytest.approx(50 * 6.4e19 ** -0.05, rel=1e-12)
  assert isoflop.minimum_loss_at(budgets[:1], [3.0], 6.4e19) is None       # one minimum
  assert isoflop.minimum_loss_at(budgets, [3.0, 2.5, 1.9], 6.4e19, floor=2.0) is None  # below E
