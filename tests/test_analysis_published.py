"""The verdict on published studies and on studies of known laws: what it says about each.

Reads the published tables from a `shared/data` folder beside the repository (or any folder above
it; SCALING_SHARED_DATA overrides) and skips without them. What is known about each table, and
what the verdict says, is tabulated in docs/results/2026-12-02-verdict-calibration.md.
"""
import os
import warnings

import numpy as np
import pytest

from analysis import laws
from analysis import pipeline
from analysis import runs as runs_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shared_data() -> str | None:
  if os.environ.get("SCALING_SHARED_DATA"):
    return os.environ["SCALING_SHARED_DATA"]
  here = ROOT
  while True:
    candidate = os.path.join(here, "shared", "data")
    if os.path.isdir(candidate):
      return candidate
    if os.path.dirname(here) == here:
      return None
    here = os.path.dirname(here)


DATA = _shared_data()
PORIAN_A = {"rw_tuned": 0.497, "owt2_tuned": 0.518, "rw_cosine": 0.571, "rw_kaplan": 0.835,
            "owt2_kaplan": 0.864}  # the paper's approach-2 exponents (its data/README)


def _fit(*path, drop_top_loss=0):
  file = os.path.join(DATA or "", *path)
  if DATA is None or not os.path.exists(file):
    pytest.skip(f"published table {os.path.join(*path)} not found (no shared/data folder)")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit, _ = pipeline.fit_all(runs_lib.load(file, drop_top_loss=drop_top_loss))
  return fit


def _scopes(d, kind="problem"):
  return {p["scope"] for p in d["scoped"] if p["kind"] == kind}


@pytest.mark.slow
def test_epochs_chinchilla_runs_are_not_called_unreliable():
  """The standard well-posed data set: every approach-3 check passes; the C groups the analysis
  forms from it (a median 3 sizes each) are approach 2's caveat, not the study's."""
  d = _fit("chinchilla", "svg_extracted_data.csv", drop_top_loss=5)["diagnostics"]
  assert d["problems"] == [] and d["verdict"] == "no problem found by the checks below"
  assert any(n.startswith("approach 2 on C groups formed from the table: the lowest loss is at "
                          "the edge") for n in d["notes"])
  assert d["extrapolation"]["ok"] and d["extrapolation_by_size"]["ok"]
  assert d["frontier_comparison"]["approach2"]["agree"]


@pytest.mark.slow
@pytest.mark.parametrize("setting", sorted(PORIAN_A))
def test_porian_isoflop_tables_approach_2_matches_the_paper(setting):
  fit = _fit("published", "porian", f"{setting}.csv")
  assert fit["chinchilla_approach2"]["a"] == pytest.approx(PORIAN_A[setting], abs=0.04)
  d = fit["diagnostics"]
  assert "approach 2" not in _scopes(d) and "study" not in _scopes(d)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["rw_tuned", "owt2_tuned"])
def test_porian_tuned_tables_flag_the_parametric_law_not_the_isoflop_minima(setting):
  """The law fitted to Porian et al.'s per-budget losses misses its own largest budget; the verdict
  says it is approach 3 that is unreliable, and approach 2 passes."""
  d = _fit("published", "porian", f"{setting}.csv")["diagnostics"]
  assert _scopes(d) == {"approach 3"} and not d["extrapolation"]["ok"]
  assert d["verdict"].startswith("approach 3 (the parametric law) is unreliable")
  assert d["verdict"].endswith("approach 2 (IsoFLOP minima) passes its checks")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rpj_all", "c4_original_all", "rw_original_all"])
def test_gadre_grids_flag_the_law_missing_the_largest_models(name):
  """Fitted without the largest models the law misses them (Gadre et al.'s 6.9B run by 3.0% on
  RedPajama, 7.9% on C4 from the runs up to 411M): only holding out N shows it, since the largest
  budgets there are longer runs of sizes already fitted."""
  d = _fit("published", "gadre", f"{name}.csv")["diagnostics"]
  assert not d["extrapolation_by_size"]["ok"]
  assert any(p.startswith("the law does not extrapolate in N: refitted without the largest "
                          "models") for p in d["problems"])
  assert "approach 3" in _scopes(d) and d["verdict"] != "no problem found by the checks below"


TRUTH = {"E": 1.8172, "A": 477.8, "B": 2143.8, "alpha": 0.3473, "beta": 0.3672}


def _known_law_runs(noise, seed, budgets=(1e18, 4e18, 1.6e19, 6.4e19, 2.56e20), sizes=9,
                    span=16.0):
  rng = np.random.default_rng(seed)
  n, budget = [], []
  for c in budgets:
    centre = laws.chinchilla_optimum(c, TRUTH["A"], TRUTH["B"], TRUTH["alpha"], TRUTH["beta"])[0]
    n += list(centre * np.exp(rng.uniform(-0.3, 0.3)) * np.geomspace(span ** -0.5, span ** 0.5,
                                                                     sizes))
    budget += [c] * sizes
  n, budget = np.array(n), np.array(budget)
  d = budget / (6 * n)
  loss = laws.chinchilla_loss(n, d, **TRUTH) * np.exp(rng.normal(0, noise, len(n)))
  return runs_lib.Runs(np.array([f"r{i}" for i in range(len(n))]), n, d, budget, loss, n, budget,
                       {"n": "N", "d": "D", "c": "C", "loss": "loss"}, "known law")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_studies_of_a_known_law_get_no_problem(seed):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit, _ = pipeline.fit_all(_known_law_runs(0.01, seed))
  d = fit["diagnostics"]
  assert d["problems"] == [] and d["verdict"] == "no problem found by the checks below"
  a_true = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
  assert fit["chinchilla_approach2"]["a"] == pytest.approx(a_true, abs=0.04)
