"""analysis.diagnostics: each condition that makes a fit unreliable is named; the rest checked."""
import numpy as np
import pytest

from analysis import diagnostics
from analysis import frontier
from analysis import isoflop
from analysis import laws
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
         "converged": True, "ci95": {}, "goodness": {"r2": 0.999, "rms_log_residual": 0.004},
         **approach3}
  # approach 2's power laws: approach 3's frontier at 1e13 FLOPs, with a slope 0.01 steeper
  n13, d13 = laws.chinchilla_optimum(1e13, 50.0, 150.0, 0.35, 0.30)
  approach2 = {"a": 0.47, "b": 0.53, "n_coef": n13 / 1e13 ** 0.47, "d_coef": d13 / 1e13 ** 0.53,
               "ci95": {}}
  return {"chinchilla_approach3": law, "chinchilla_approach2": approach2,
          "loss_floor": None, "bootstrap": {"n_samples": 0},
          "extrapolation": {"skipped": "extrapolation check: not run in this test",
                            "by_size": {"skipped": "extrapolation in N: not run in this test"}}}


def _frontier(fit, runs, budgets) -> list[dict]:
  """The pipeline's frontier rows for `fit` (approach 3 and approach 2) at the data's budgets and
  the published decades."""
  a3, a2 = fit["chinchilla_approach3"], fit["chinchilla_approach2"]
  data = frontier.data_budgets(runs, budgets)
  rows = []
  for flops in frontier.budgets_for(data):
    n3, d3 = laws.chinchilla_optimum(flops, a3["A"], a3["B"], a3["alpha"], a3["beta"])
    n2, d2 = isoflop.optimum(a2, flops)
    rows.append({"flops": flops, "n_opt": n3, "d_opt": d3, "tokens_per_param": d3 / n3,
                 "decades_beyond_data": frontier.decades_beyond(flops, data),
                 "approach2": {"n_opt": n2, "d_opt": d2, "tokens_per_param": d2 / n2}})
  return rows


def _diagnose(fit, runs=None):
  runs = runs or _runs()
  labels, budgets = runs_lib.isoflop_groups(runs)
  fit = {**fit, "frontier": _frontier(fit, runs, budgets)}
  profiles = isoflop.fit_profiles(runs, labels, budgets, warn=False, method="window")
  return diagnostics.diagnose(fit, runs, labels, budgets, profiles, runs_lib.BUDGET_TOL)


def test_a_sound_fit_has_no_problem_and_every_check_in_words():
  d = _diagnose(_fit())
  assert d["problems"] == [] and d["verdict"] == "no problem found by the checks below"
  assert d["checks"][0] == "3 budgets (1e+12..1e+14 FLOPs, from the budget column); 5 sizes each"
  assert d["checks"][1] == ("IsoFLOP minima: the lowest loss is interior at 3 of 3 budgets with 3 "
                            "or more sizes")
  assert d["approach2_vs_3"]["agree"] and d["unidentified"] == {}
  assert d["checks"][2].startswith("E = 1.5 nats: above zero and below the smallest observed loss")
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
  assert above["verdict"] == ("approach 3 (the parametric law) is unreliable (1 problem); "
                              "approach 2 (IsoFLOP minima) passes its checks")
  assert above["scoped"] == [{"scope": "approach 3", "kind": "problem",
                              "text": above["problems"][0]}]


def test_an_edge_minimum_a_disagreement_and_a_flat_law_are_named():
  d = _diagnose(_fit(a=0.30, beta=0.01), _runs(lowest_at=(2, 4, 2)))
  assert [b["interior"] for b in d["budgets"]] == [True, False, True]
  assert d["problems"][0] == ("the lowest loss is at the edge of the sizes sampled at 1 budget "
                              "(1e+13: N = 4.8e+06), so its minimum may lie beyond them")
  assert any(p.startswith("approach 3: beta = 0.01 ≈ 0: the loss barely falls with D") for p in
             d["problems"])
  # both approaches are flagged, so their disagreement is a note, explained by them
  assert any(n.startswith("approaches 2 and 3 disagree on the frontier exponent: a = 0.470") and
             n.endswith("expected, since approach 2 and approach 3 is flagged") for n in d["notes"])
  assert d["verdict"] == "2 problems make this fit unreliable"
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


def test_an_edge_minimum_of_c_groups_the_analysis_formed_is_a_note_about_approach_2():
  planned = _runs(lowest_at=(2, 4, 2))
  runs = runs_lib.Runs(planned.run_id, planned.n, planned.d, planned.c, planned.loss, planned.n,
                       np.full(len(planned), np.nan), {}, "test")  # no budget column
  d = _diagnose(_fit(), runs)
  assert d["problems"] == [] and d["verdict"] == "no problem found by the checks below"
  assert d["notes"] == ["approach 2 on C groups formed from the table: the lowest loss is at the "
                        "edge of the sizes sampled at 1 budget (1e+13: N = 4.8e+06), so its "
                        "minimum may lie beyond them"]
  assert d["scoped"][0]["scope"] == "approach 2" and d["scoped"][0]["kind"] == "note"
  assert "  note: approach 2 on C groups" in "\n".join(diagnostics.summary_lines(d))


def test_approaches_are_compared_on_the_frontier_at_the_datas_budgets():
  fit = _fit()
  d = _diagnose(fit)
  assert d["frontier_comparison"]["approach2"]["agree"]
  assert d["supported_budgets"] == list(BUDGETS)  # the published decades lie 4+ beyond the data
  fit["chinchilla_approach2"]["n_coef"] *= 2  # the same slope a, twice the N_opt
  fit["chinchilla_approach2"]["d_coef"] /= 2
  d = _diagnose(fit)
  comparison = d["frontier_comparison"]["approach2"]
  assert comparison["max_n_opt_ratio"] == pytest.approx(2.0, rel=0.03) and not comparison["agree"]
  assert d["approach2_vs_3"]["agree"]  # the slopes alone agree
  assert d["problems"] == [d["scoped"][0]["text"]] and d["scoped"][0]["scope"] == "frontier"
  assert d["problems"][0].startswith("the approaches disagree on the frontier: approach 2 vs "
                                     "approach 3 at the data's 3 budgets: N_opt up to 2.0")
  assert d["verdict"] == "1 problem makes this fit unreliable"


def _check(rel, n=4):
  return {"held_out": [f"r{i}" for i in range(n)], "n_fitted": 11, "held_out_n_min": 4e6,
          "fitted_n_max": 2e6, "approach3": {"mean_abs_error": 3 * rel, "max_abs_error": 4 * rel,
                                             "mean_abs_rel_error": rel}}


def test_a_law_that_misses_the_largest_models_is_flagged_as_approach_3s_problem():
  fit = _fit()
  fit["extrapolation"]["by_size"] = _check(0.03)
  d = _diagnose(fit)
  assert not d["extrapolation_by_size"]["ok"] and d["extrapolation_by_size"]["n_held_out"] == 4
  assert d["problems"] == ["the law does not extrapolate in N: refitted without the largest "
                           "models (N >= 4e+06; fitted up to 2e+06, 4 runs), approach 3 misses "
                           "their losses by 0.090 nats on average (3.0%), 0.120 at most (more "
                           "than 2%)"]
  assert d["verdict"].startswith("approach 3 (the parametric law) is unreliable (1 problem)")
  fit["extrapolation"]["by_size"] = _check(0.01)
  assert _diagnose(fit)["extrapolation_by_size"]["ok"]


def test_intervals_of_e_and_of_the_exponents_reaching_zero_and_a_poor_fit_are_named():
  fit = _fit(ci95={"E": [0.0, 1.7], "alpha": [0.01, 0.5], "beta": [0.2, 0.4], "a": [0.4, 0.5]},
             goodness={"r2": 0.9, "rms_log_residual": 0.05})
  fit["chinchilla_approach2"]["ci95"] = {"a": [0.45, 0.5]}
  fit["bootstrap"] = {"n_samples": 100, "unit": "run", "n_units": 15, "failed": {}}
  d = _diagnose(fit)
  assert d["E"]["interval_near_zero"] and d["unidentified"]["E"] == "its interval reaches 0"
  assert d["problems"] == [
      "E = 1.5, but its 95% interval [0, 1.7] reaches 0: the runs do not identify the "
      "irreducible loss",
      "approach 3: the law misses the runs it was fitted to by 5.0% (RMS of log residuals, more "
      "than 3%): it does not describe them",
      "approach 3: the 95% interval of alpha, [0.01, 0.5], reaches 0: the law's frontier is not "
      "identified"]
  assert {p["scope"] for p in d["scoped"]} == {"approach 3"}
