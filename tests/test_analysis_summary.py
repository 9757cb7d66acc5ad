"""What the summary and the report show: tokens per parameter only where the data support them
(plus a verification budget, labelled), C in the table's own convention, the verification run."""
import pytest

from analysis import report, summary
from sweeps import collect

DATA = (1e11, 3e11, 1.2e12)  # a CPU sweep's budgets


def _row(flops, beyond, **extra):
  return {"flops": flops, "n_opt": 1e4, "d_opt": 4e5, "tokens_per_param": 40.0,
          "decades_beyond_data": beyond,
          "rule_20x": {"n_opt": 1e4, "d_opt": 2e5, "tokens_per_param": 20.0}, **extra}


def _fit(verify_row=True):
  rows = [_row(f, 0.0) for f in DATA]
  if verify_row:
    rows.append(_row(4.8e12, 0.6, verification=True))
  rows += [_row(10.0 ** k, k - 12.079) for k in range(18, 25)]
  rows.sort(key=lambda row: row["flops"])
  return {
      "n_points": 30, "source": "results.csv", "columns": {"n": "n_params_total", "c": "flops"},
      "excluded": [], "dropped_top_loss": [], "warnings": [], "loss_floor": None, "plots": {},
      "bootstrap": {"n_samples": 0},
      "flops_convention": {"column": "flops", "label": "counted FLOPs (Chinchilla Appendix F)",
                           "k": 7.9, "gamma": 0.95},
      "chinchilla_approach3": {
          "E": 2.2, "A": 40.0, "B": 900.0, "alpha": 0.3, "beta": 0.5, "a": 0.358, "b": 0.642,
          "G": 1.0, "objective": 1.0, "converged": True, "n_starts": 10, "n_starts_converged": 10,
          "n_starts_at_best": 3, "huber_delta": 1e-3,
          "frontier_exponents": {"a": 0.375, "b": 0.644, "flops": "counted FLOPs"}},
      "kaplan": {"alpha_N": 0.1, "alpha_D": 0.1, "N_c": 1.0, "D_c": 1.0, "converged": True,
                 "rms_log_error": 0.1, "n_opt_exponent": 0.5},
      "frontier": rows, "extrapolation": {"skipped": "too few runs"}}


def _table(blocks, first_header):
  return next(block for block in blocks if block[0] == "table" and block[1][0].startswith(
      first_header))


def test_printed_frontier_is_the_datas_range_and_the_labelled_verification_budget():
  lines = summary.frontier_lines(_fit())
  printed = [line for line in lines if line.startswith("  C = ")]
  assert [line.split(":")[0] for line in printed] == [
      "  C = 1.00e+11", "  C = 3.00e+11", "  C = 1.20e+12", "  C = 4.80e+12"]
  assert printed[-1].endswith("(verification budget, extrapolated, 0.6 decades beyond the data)")
  assert "7 budgets beyond the data's range: in fit.json, not printed" in lines[-1]
  assert len([line for line in summary.frontier_lines(_fit(verify_row=False))
              if line.startswith("  C = ")]) == 3


def test_report_tabulates_tokens_per_parameter_only_where_the_data_reach():
  blocks = report.blocks(_fit())
  frontier = _table(blocks, "C (")
  assert [row[0] for row in frontier[2]] == ["1e+11", "3e+11", "1.2e+12", "4.8e+12"]
  assert frontier[2][-1][-1] == "verification, extrapolated 0.6 decades"
  comparison = {row[0]: row[1] for row in _table(blocks, "quantity")[2]}
  # 1e18 and 1e24 lie 6 and 12 decades past these budgets: no number, the distance instead.
  assert comparison["tokens per parameter at 1e18"] == "– (5.9 decades beyond the data)"
  assert comparison["tokens per parameter at 1e24"] == "– (11.9 decades beyond the data)"


def test_report_reads_the_frontier_exponent_in_the_tables_own_flop_convention():
  blocks = report.blocks(_fit())
  comparison = {row[0]: row[1] for row in _table(blocks, "quantity")[2]}
  key = "a (N_opt ∝ C^a, C in counted FLOPs (Chinchilla Appendix F)), Approach 3"
  assert comparison[key] == "0.375"  # not the 6ND form's 0.358
  text = report.to_markdown(blocks)
  assert "a, b and G here are for C = 6ND; in the table's C (counted FLOPs" in text


def test_the_sweeps_frontier_comes_from_the_analysis_not_from_6nd(capsys):
  """The sweep's summary keeps the analysis's rows inside the data and the verification's, in the
  table's C, whatever the plan's 6ND FLOPs say (a grid sweep has no budgets)."""
  fit = {**_fit(), "summary": ["line"]}
  kept = collect.print_frontier(fit, "DIR/analysis/report.md")
  assert [row["flops"] for row in kept["frontier"]] == [*DATA, 4.8e12]
  assert capsys.readouterr().out == "line\n"


def test_verification_rows_show_predicted_against_measured():
  record = {"budget": 4.8e12, "factor": 4.0, "n": 315952, "d": 2130944, "n_opt": 3.0e5,
            "predicted_loss": 2.60, "predicted_interval": [2.55, 2.66], "measured_loss": 2.626,
            "relative_error": (2.60 - 2.626) / 2.626, "run_id": "n3.0e5_d2.1e6_x"}
  rows = dict(summary.verify_rows(record))
  assert rows["predicted loss [95% interval]"] == "2.6000 [2.5500, 2.6600]"
  assert rows["measured loss"] == "2.6260"
  assert rows["relative error (predicted - measured) / measured"] == "-0.99% (inside the interval)"
  pending = dict(summary.verify_rows({**record, "measured_loss": None, "relative_error": None}))
  assert pending["measured loss"].startswith("not yet")
  text = report.to_markdown(report.blocks({**_fit(), "verify": record}))
  assert "## Verification run: predicted, then trained" in text
  assert "| measured loss | 2.6260 |" in text
  assert summary.verify_lines(record)[0] == "verification run (held out of the fit):"
  others = dict(summary.verify_rows({**record, "other_predictions": {"minima_power": 2.6},
                                     "other_errors": {"minima_power": -0.0099}}))
  assert others["minima_power (IsoFLOP minima extrapolated): predicted, error"] == "2.6000, -0.99%"


@pytest.mark.parametrize("far, shown", [(0.0, True), (None, True), (0.5, False)])
def test_shown_rows_are_inside_the_data(far, shown):
  row = {"flops": 1.0} if far is None else {"flops": 1.0, "decades_beyond_data": far}
  assert (summary.shown_rows([row]) == [row]) == shown
