"""The law-form registry: a form added in a test-only module runs through the whole analysis."""
import json

import numpy as np
import pytest

from analysis import fitter
from analysis import forms
from analysis import pipeline
from test_analysis_cli import write_csv

TRUTH = {"E": 1.5, "A": 3000.0, "p": 0.4, "c": 0.5}


@pytest.fixture
def extra_form():
  import law_forms_extra  # pylint: disable=import-outside-toplevel  (registers on import)
  forms.register(law_forms_extra.FORM)  # again, should an earlier test have removed it
  yield law_forms_extra.FORM
  forms.unregister(law_forms_extra.FORM.name)


def test_the_built_in_forms_are_registered_with_their_sections():
  assert [(f.name, f.section) for f in forms.registered()][:2] == [
      ("approach3", "chinchilla_approach3"), ("kaplan", "kaplan")]
  assert forms.get("finetune").study == forms.FINETUNING
  assert forms.get("approach3").optimum and forms.get("kaplan").optimum


def test_an_added_form_is_fitted_reported_and_checked_end_to_end(tmp_path, extra_form):
  """A 6 x 5 grid of runs from the added law with 0.1% noise, through run_analysis."""
  rng = np.random.default_rng(0)
  rows = []
  for n in np.geomspace(1e6, 3.2e7, 6):
    for d in np.geomspace(2e8, 3.2e9, 5):
      law = fitter.predict(extra_form, TRUTH, (n, d)) * np.exp(rng.normal(0, 0.001))
      rows.append({"run_id": f"n{n:.3g}_d{d:.3g}", "status": "completed", "n_params": n,
                   "tokens": d, "flops": 6 * n * d, "final_eval_loss": float(law)})
  results = write_csv(tmp_path / "results.csv", rows,
                      ("run_id", "status", "n_params", "tokens", "flops", "final_eval_loss"))
  fit = pipeline.run_analysis(results, str(tmp_path / "out"), wandb_mode="disabled")
  assert json.loads((tmp_path / "out" / "fit.json").read_text()) == fit
  section = fit["geometric_scale"]
  assert section["converged"] and section["r2_log"] > 0.99
  assert section["E"] == pytest.approx(TRUTH["E"], rel=0.02)
  assert section["A"] == pytest.approx(TRUTH["A"], rel=0.3)  # correlated with c: loosest
  assert section["p"] == pytest.approx(TRUTH["p"], abs=0.05)
  assert section["c"] == pytest.approx(TRUTH["c"], abs=0.05)
  assert section["alpha_N"] == pytest.approx(0.2, abs=0.03)
  assert "geometric" in [law["name"] for law in fit["laws"]]
  assert fit["flops_convention"]["label"] == "6ND FLOPs (the table's 'flops' column)"
  # No optimum: no frontier column; both extrapolation checks have its entry.
  assert all("geometric" not in row for row in fit["frontier"])
  for check in (fit["extrapolation"], fit["extrapolation"]["by_size"]):
    assert check["geometric"]["mean_abs_rel_error"] < 0.01
    assert len(check["predicted_geometric"]) == len(check["held_out"])
  assert len(fit["extrapolation"]["by_size"]["held_out"]) == 5  # the largest N, every D
  report = (tmp_path / "out" / "report.md").read_text()
  assert "## Geometric scale law: L(N, D) = E + A (N^p D^(1-p))^-c" in report
  assert any(line.startswith("| Geometric scale law |") for line in report.splitlines())
  assert any(line.startswith("geometric: E = ") for line in fit["summary"])
