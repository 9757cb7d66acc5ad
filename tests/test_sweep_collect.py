"""sweeps/collect.py: the sweep's last lines (frontier, verdict, report), the analysis hand-off."""
import json
import os

import numpy as np
import pytest

from core import files
from sweeps import collect
from sweeps import processes
from sweeps.rows import PlanRow
from test_analysis_cli import law_rows

BUDGETS = (4e10, 1e11, 2.4e11, 6e11)


def _fit(unidentified=None):
  flops = list(BUDGETS) + [6e12] + [10.0 ** k for k in range(18, 25)]
  beyond = [0.0] * 4 + [1.0] + [float(np.log10(f / 6e11)) for f in flops[5:]]
  return {
      "chinchilla_approach3": {"a": 0.245, "b": 0.755, "E": 2.138},
      "frontier": [{"flops": f, "n_opt": 1e4, "d_opt": 4e5 * (f / 4e10) ** 0.5,
                    "tokens_per_param": 40.0 * (f / 4e10) ** 0.5, "decades_beyond_data": x}
                   for f, x in zip(flops, beyond)],
      "loss_floor": 0.917, "plots": {},
      "diagnostics": {"verdict": "1 problem makes this fit unreliable",
                      "problems": ["approaches 2 and 3 disagree on the frontier exponent"],
                      "checks": ["4 budgets (4e+10..6e+11 FLOPs, from the budget column)"],
                      "unidentified": unidentified or {}}}


def test_the_last_lines_are_the_analysis_summary_printed_once(capsys):
  fit = {**_fit(), "summary": ["frontier line", "How far to trust this fit: 1 problem makes this "
                               "fit unreliable", "report: DIR/analysis/report.md"]}
  summary = collect.print_frontier(fit, "DIR/analysis/report.md")
  assert capsys.readouterr().out.splitlines() == fit["summary"]
  assert [p["flops"] for p in summary["frontier"]] == list(BUDGETS)
  assert summary["verdict"]["problems"] == ["approaches 2 and 3 disagree on the frontier exponent"]


@pytest.mark.slow
def test_the_sweep_hands_inference_tokens_to_the_analysis(tmp_path, capsys):
  """finish() with sweep.inference_tokens: the real `python -m analysis` adds the inference-aware
  frontier, and the sweep's last lines give it and the verdict."""
  rows = []
  for result in law_rows((1e15, 1e16, 1e17), sizes=5, span=16.0):
    rows.append(PlanRow(**{k: result[k] for k in ("run_id", "budget", "n_params", "tokens",
                                                  "flops_6nd")}))
    run_dir = processes.run_dir_of(str(tmp_path), rows[-1])
    os.makedirs(run_dir)
    files.write_json_atomic(os.path.join(run_dir, "result.json"), {
        k: result[k] for k in ("status", "n_params", "n_params_total", "tokens", "flops",
                               "final_eval_loss")})
  summary, analysed = collect.finish(str(tmp_path), rows, lambda rows, results: collect.fit_laws(
      str(tmp_path), rows, results, "disabled", inference_tokens=1e11))
  out = capsys.readouterr().out
  assert analysed
  fit = json.load(open(tmp_path / "analysis" / "fit.json"))
  assert fit["inference_frontier"]["inference_tokens"] == 1e11
  assert [p["flops"] for p in summary["inference_frontier"]] == [1e15, 1e16, 1e17]
  assert "--inference-tokens 100000000000.0" in out
  assert "inference-aware (T = 1e+11 inference tokens" in out
  assert out.count(f"How far to trust this fit: {fit['diagnostics']['verdict']}") == 1
  assert out.strip().splitlines()[-len(fit["summary"]):] == fit["summary"]
  assert out.strip().endswith(f"report: {tmp_path / 'analysis' / 'report.md'}")
