"""analysis.diagnostics: each condition that makes a fit unreliable is named; the rest checked."""
import numpy as np
import pytest

from analysis import diagnostics
from analysis import isoflop
from analysis import runs as runs_lib

BUDGETS = (1e12, 1e13, 1e14)


def _runs(lowest_at=(2, 2, 2)):
  """Three budgets of 5 sizes; each curve's lowest loss at the size index given."""
  n, loss, budget = [], [], []
  for b, (flops, low) in enumerate(zip(BUDGETS, lowest_at)):
    for i, size in enumerate(np.geomspace(1e5, 1.6e6, 5) * 3 ** b):
      n.append(size)
      loss.append(3.0 - 0.2 * b + 0.05 * (i - low) ** 2)
      budget.append(flops)
  n, loss, budget = (np.array(v) for v in (n, loss, budget))
  return runs_lib.Runs(np.array([f"r{i}" for i in range(len(n))]), n, budget / (6 * n), budget,
                       loss, n, budget, {}, "test")


def _fit(**approach3):
  law = {"E": 1.5, "A": 50.0, "B": 150.0, "alpha": 0.35, "beta": 0.30, "a": 0.46, "b": 0.54,
         "converged": True, "ci95": {}, **approach3}
  return {"chinchilla_approach3": law, "chinchilla_approach2": {"a": 0.47, "b": 0.53, "ci95": {}},
          "loss_floor": None, "bootstrap": {"n_samples": 0},
          "extrapolation": {"skipped": "extrapolation check: not run in this test"}}


def _diagnose(fit, runs=None):
  runs = runs or _runs()
  labels, budgets = runs_lib.isoflop_groups(runs)
  profiles = isoflop.fit_profiles(runs, labels, budgets, warn=False)
  return diagnostics.diagnose(fit, runs, labels, budgets, profiles, runs_lib.BUDGET_TOL)


def test_a_sound_fit_has_no_problem_and_every_check_in_words():
  d = _diagnose(_fit())
  assert d["problems"] == [] and d["verdict"] == "no problem found by the checks below"
  assert d["checks"][0] == "3 budgets (1e+12..1e+14 FLOPs, from the budget column); 5 sizes each"
  assert d["checks"][1] == ("IsoFLOP minima: the lowest loss is interior at 3 of 3 budgets with 3 "
                            "or more sizes")
  assert d["approach2_vs_3"]["agree"] and d["unidentified"] == {}
  assert d["checks"][3].startswith("E = 1.5 nats: above zero and below the smallest observed loss")
  assert diagnostics.summary_lines(d)[0] == ("How far to trust this fit: no problem found by the "
                                             "checks below")


def test_e_near_zero_or_above_the_smallest_loss_is_named():
  near_zero = _diagnose(_fit(E=2.7e-13))
  assert near_zero["E"]["near_zero"] and near_zero["unidentified"]["E"] == "E ≈ 0"
  assert near_zero["problems"] == ["E = 2.7e-13 ≈ 0: the fit found no irreducible loss, so E is "
                                   "not identified by these runs"]
  above = _diagnose(_fit(E=2.9))  # the runs' losses go down to 2.6
  assert above["E"]["above_min_loss"] and above["E"]["n_losses_below_E"] == 8
  assert above["problems"] == ["E = 2.9 is above the smallest observed loss 2.6 (8 runs below "
                               "it): the law cannot describe them"]
  assert above["verdict"] == "1 problem makes this fit unreliable"


def test_an_edge_minimum_a_disagreement_and_a_flat_law_are_named():
  d = _diagnose(_fit(a=0.30, beta=0.01), _runs(lowest_at=(2, 4, 2)))
  assert [b["interior"] for b in d["budgets"]] == [True, False, True]
  assert d["problems"][0] == ("the lowest loss is at the edge of the sizes sampled at 1 budget "
                              "(1e+13: N = 4.8e+06), so its minimum may lie beyond them")
  assert any(p.startswith("approach 3: beta = 0.01 ≈ 0: the loss barely falls with D") for p in
             d["problems"])
  assert any(p.startswith("approaches 2 and 3 disagree on the frontier exponent: a = 0.470") for p
             in d["problems"])
  assert d["unidentified"] == {"frontier": "beta ≈ 0"}


def test_wide_intervals_and_failed_refits_are_named():
  fit = _fit(ci95={"E": [1.4, 1.6], "alpha": [0.3, 0.4], "beta": [0.2, 0.4], "a": [0.3, 0.6]})
  fit["chinchilla_approach2"]["ci95"] = {"a": [0.45, 0.5]}
  fit["bootstrap"] = {"n_samples": 100, "unit": "run", "n_units": 15,
                      "failed": {"approach3": 2, "approach2": 30}}
  d = _diagnose(fit)
  assert d["ci_widths"]["approach3"]["a"] == pytest.approx(0.3)
  assert d["ci_widths"]["approach2"]["a"] == pytest.approx(0.05)
  assert d["problems"] == [
      "30 of 100 bootstrap refits of approach2 failed and were dropped: its intervals rest on the "
      "resamples that happened to fit",
      "approach 3: the frontier exponent is uncertain, a in [0.300, 0.600] (95%), wider than 0.1"]
  assert any("resamples by run (15 units)" in c and "2 for approach3, 30 for approach2" in c
             for c in d["checks"])
