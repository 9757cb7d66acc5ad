"""python -m analysis end to end on a synthetic sweep directory, and its answers to bad input."""
import contextlib
import csv
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from analysis import __main__ as cli
from analysis import laws
from analysis import pipeline
from analysis import report
from analysis import runs as runs_lib
from analysis import summary
from conftest import ROOT

TRUTH = {"E": 1.5, "A": 50.0, "B": 150.0, "alpha": 0.35, "beta": 0.30}
BUDGETS = (1e12, 4e12, 1.6e13, 6.4e13)
COLUMNS = ("run_id", "status", "budget", "n_params", "n_params_total", "tokens", "flops",
           "flops_6nd", "final_train_loss", "final_eval_loss", "wall_seconds", "config_hash",
           "loss_floor", "family")


def _row(run_id, n_total, tokens, loss, budget, status="completed"):
  n = 0.9 * n_total  # non-embedding
  return {"run_id": run_id, "status": status, "budget": budget, "n_params": n,
          "n_params_total": n_total, "tokens": tokens, "flops": 6.6 * n_total * tokens,
          "flops_6nd": 6 * n * tokens, "final_train_loss": loss, "final_eval_loss": loss,
          "wall_seconds": 1.0, "config_hash": "h", "loss_floor": TRUTH["E"], "family": "decoder"}


def write_csv(path, rows, columns=COLUMNS):
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  return str(path)


def make_sweep(root) -> str:
  """An IsoFLOP sweep from TRUTH with 0.3% noise: 4 budgets x 7 sizes, a 5th budget with only 2
  sizes, one diverged and one failed run, and training curves (one with a truncated last line)."""
  rng = np.random.default_rng(0)
  rows = []
  for budget in BUDGETS + (2.5e14,):
    centre = laws.chinchilla_optimum(budget, TRUTH["A"], TRUTH["B"], TRUTH["alpha"],
                                     TRUTH["beta"])[0]
    sizes = centre * np.geomspace(1 / 6, 6, 7) if budget in BUDGETS else centre * np.array([0.5, 2])
    for n in sizes:
      tokens = budget / (6 * n)
      loss = laws.chinchilla_loss(n, tokens, **TRUTH) * np.exp(rng.normal(0, 0.003))
      rows.append(_row(f"b{budget:.0e}_n{n:.0f}", n, tokens, loss, budget))
      steps = np.geomspace(tokens / 40, tokens, 40)
      curve = [{"step": i, "tokens": t, "flops": 6.6 * n * t,
                "train_loss": laws.chinchilla_loss(n, t, **TRUTH) * np.exp(rng.normal(0, 0.002))}
               for i, t in enumerate(steps)]
      run_dir = os.path.join(root, "runs", rows[-1]["run_id"])
      os.makedirs(run_dir)
      with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in curve))
  with open(os.path.join(root, "runs", rows[0]["run_id"], "metrics.jsonl"), "a") as f:
    f.write('{"step": 40, "tokens": 1')  # a run killed mid-write
  rows.append(_row("diverged_run", 1e5, 1e6, "nan", BUDGETS[0], status="diverged"))
  rows.append({**_row("failed_run", 1e5, 1e6, "", BUDGETS[0], status="failed"),
               "final_eval_loss": ""})
  return write_csv(os.path.join(root, "results.csv"), rows)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
  root = tmp_path_factory.mktemp("sweep")
  results = make_sweep(root)
  out = os.path.join(root, "analysis")
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout):  # in-process: shares compiled fits with other tests
    assert cli.main(["--results", results, "--out", out, "--bootstrap", "20", "--wandb-mode",
                     "offline", "--json"]) == 0
  return out, stdout.getvalue()


def test_fit_json_has_the_contract_fields_and_recovers_the_law(analysed):
  out, stdout = analysed
  with open(os.path.join(out, "fit.json")) as f:
    fit = json.load(f)
  assert json.loads(stdout.strip().splitlines()[-1]) == fit
  assert fit["n_points"] == 30
  assert fit["columns"]["n"] == "n_params_total" and fit["columns"]["n_kaplan"] == "n_params"
  assert {(e["run_id"], e["status"]) for e in fit["excluded"]} == {
      ("diverged_run", "diverged"), ("failed_run", "failed")}
  a3 = fit["chinchilla_approach3"]
  for key in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
    low, high = a3["ci95"][key]
    assert low <= a3[key] <= high
  assert a3["converged"]
  assert a3["E"] == pytest.approx(TRUTH["E"], abs=0.1)
  assert a3["a"] == pytest.approx(0.30 / 0.65, abs=0.04)
  a2 = fit["chinchilla_approach2"]
  assert a2["budgets"] == list(BUDGETS) and a2["a"] == pytest.approx(0.30 / 0.65, abs=0.05)
  assert a2["ci95"]["a"][0] < a2["a"] < a2["ci95"]["a"][1]
  assert fit["chinchilla_approach1"]["a"] == pytest.approx(0.30 / 0.65, abs=0.1)
  assert {"alpha_N", "alpha_D", "N_c", "D_c", "L_N", "L_D", "L_C"} <= set(fit["kaplan"])
  assert [row["flops"] for row in fit["frontier"]] == sorted(
      set(BUDGETS) | {2.5e14} | {10.0 ** k for k in range(18, 25)})
  for row in fit["frontier"]:
    assert row["d_opt"] / row["n_opt"] == pytest.approx(row["tokens_per_param"])
    assert {"approach2", "approach1", "kaplan", "rule_20x"} <= set(row)
    assert row["rule_20x"]["tokens_per_param"] == pytest.approx(20)
    low, high = row["tokens_per_param_ci95"]
    assert low <= row["tokens_per_param"] <= high
  check = fit["extrapolation"]
  assert len(check["held_out"]) == 2 and check["approach3"]["mean_abs_rel_error"] < 0.02
  by_size = check["by_size"]  # the largest N held out, all its budgets
  assert by_size["held_out_n_min"] > by_size["fitted_n_max"]
  assert by_size["approach3"]["mean_abs_rel_error"] < 0.02 and "kaplan" in by_size
  assert fit["chinchilla_approach3"]["r2_log"] > 0.99 and fit["kaplan"]["rms_log_residual"] > 0
  assert any("2.5e+14 has 2 model sizes" in w for w in fit["warnings"])
  assert any("not JSON" in w for w in fit["warnings"])
  assert fit["loss_floor"] == TRUTH["E"]
  at_floor = fit["chinchilla_approach3"]["at_floor"]  # the law refitted with E at the known floor
  assert at_floor["E"] == pytest.approx(TRUTH["E"], rel=1e-12)
  assert at_floor["alpha"] == pytest.approx(TRUTH["alpha"], abs=0.02)
  assert at_floor["beta"] == pytest.approx(TRUTH["beta"], abs=0.02)


def test_reports_and_plots(analysed):
  out, _ = analysed
  with open(os.path.join(out, "fit.json")) as f:
    fit = json.load(f)
  assert set(fit["plots"]) == {"loss_vs_flops", "isoflop", "frontier", "contours",
                               "kaplan_loss_vs_n", "extrapolation"}
  for file in fit["plots"].values():
    with open(os.path.join(out, file), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with open(os.path.join(out, "report.md")) as f:
    markdown = f.read()
  for text in ("Comparison with published numbers", "| E | ", "406.4", "0.076", "diverged_run",
               "Compute-optimal frontier", "Extrapolation check", "![frontier.png](frontier.png)",
               "known loss floor"):
    assert text in markdown
  with open(os.path.join(out, "report.html")) as f:
    page = f.read()
  assert page.count("data:image/png;base64,") == len(fit["plots"])
  assert 'src="http' not in page and "<table>" in page


def test_offline_wandb_run_holds_the_tables_and_figures(analysed):
  out, _ = analysed
  with open(os.path.join(out, "fit.json")) as f:
    fit = json.load(f)
  files = os.path.join(fit["wandb"]["run"], "files", "media")
  tables = {name.split("_")[0]: os.path.join(files, "table", name)
            for name in os.listdir(os.path.join(files, "table"))}
  with open(tables["fit"]) as f:
    fit_table = json.load(f)
  assert fit_table["columns"] == ["approach", "parameter", "value", "ci_low", "ci_high"]
  row = next(r for r in fit_table["data"] if r[:2] == ["chinchilla_approach3", "E"])
  assert row[2] == pytest.approx(fit["chinchilla_approach3"]["E"])
  with open(tables["frontier"]) as f:
    assert len(json.load(f)["data"]) == 5 * len(fit["frontier"])
  images = os.listdir(os.path.join(files, "images"))
  assert {name.rsplit("_", 2)[0] for name in images} == set(fit["plots"])
  with open(fit["wandb"]["report_spec"]) as f:
    assert json.load(f)["project"] == "scaling"


def test_non_convergence_is_reported():
  fit = {"n_points": 10, "source": "x.csv", "columns": {}, "excluded": [], "dropped_top_loss": [],
         "warnings": [], "loss_floor": None, "plots": {}, "bootstrap": {"n_samples": 0},
         "chinchilla_approach3": {"E": 1.0, "A": 1.0, "B": 1.0, "alpha": 0.3, "beta": 0.3,
                                  "a": 0.5, "b": 0.5, "G": 1.0, "objective": 1.0,
                                  "converged": False, "n_starts": 4500, "n_starts_converged": 0,
                                  "n_starts_at_best": 1, "huber_delta": 1e-3},
         "kaplan": {"alpha_N": 0.1, "alpha_D": 0.1, "N_c": 1.0, "D_c": 1.0, "converged": True,
                    "rms_log_error": 0.1, "n_opt_exponent": 0.5},
         "frontier": [{"flops": 1e18, "n_opt": 1.0, "d_opt": 1.0, "tokens_per_param": 1.0,
                       "rule_20x": {"n_opt": 1.0, "d_opt": 20.0, "tokens_per_param": 20.0}}],
         "extrapolation": {"skipped": "too few runs"}}
  assert "Converged: NO" in report.to_markdown(report.blocks(fit))
  assert "[NOT CONVERGED]" in summary.lines(fit)[1]


def _table(tmp_path, rows, columns=COLUMNS):
  return write_csv(tmp_path / "results.csv", rows, columns)


def _grid_rows(n_sizes=3, n_tokens=3, **changes):
  rows = [_row(f"r{i}{j}", 1e5 * 4 ** i, 1e7 * 4 ** j, 3.0 - 0.1 * i - 0.1 * j, "")
          for i in range(n_sizes) for j in range(n_tokens)]
  for index, change in changes.items():
    rows[int(index[1:])].update(change)
  return rows


@pytest.mark.parametrize("args, rows, message", [
    (["--n-col", "size"], _grid_rows(), "column 'size' (--n-col) is not in"),
    (["--loss-col", "final_eval_loss"], _grid_rows(r4={"final_eval_loss": "nan"}),
     "missing, NaN or non-positive values in fitted rows (r11='nan')"),
    ([], _grid_rows(r2={"final_eval_loss": "-1"}), "non-positive"),
    ([], _grid_rows(n_sizes=1, n_tokens=6), "have one model size"),
    ([], _grid_rows(n_sizes=2, n_tokens=2), "4 completed runs cannot determine the 5-parameter law"),
    ([], _grid_rows(r0={"family": "encoder"}), "mixes model families decoder, encoder; fit one"),
    (["--drop-top-loss", "9"], _grid_rows(), "--drop-top-loss 9 must be between 0 and the 9"),
    ([], [{**r, "status": "failed"} for r in _grid_rows()], "has no completed runs to fit"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, rows, message):
  results = _table(tmp_path, rows)
  code = cli.main(["--results", results, "--out", str(tmp_path / "out"), "--wandb-mode",
                   "disabled", *args])
  err = capsys.readouterr().err
  assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
  assert message in err
  assert not os.path.exists(tmp_path / "out" / "fit.json")


def test_the_command_exits_2_with_one_line(tmp_path):
  done = subprocess.run([sys.executable, "-m", "analysis", "--results", str(tmp_path / "no.csv"),
                         "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
  assert done.returncode == 2 and done.stderr.count("\n") == 1
  assert done.stderr == f"error: results file {tmp_path / 'no.csv'} does not exist\n"


def test_a_table_without_tokens_or_flops_is_refused(tmp_path, capsys):
  results = _table(tmp_path, _grid_rows(), ("run_id", "status", "n_params", "final_eval_loss"))
  assert cli.main(["--results", results, "--out", str(tmp_path / "out")]) == 2
  assert "has neither a token column" in capsys.readouterr().err


# ----------------------------------------------------------- tables no one here wrote, and verdicts

def law_rows(budgets, sizes=7, span=36.0, noise=0.003, seed=0, shift_top=0.0):
  """IsoFLOP rows from TRUTH with log-normal noise; the top budget's losses raised by shift_top."""
  rng = np.random.default_rng(seed)
  rows = []
  for budget in budgets:
    centre = laws.chinchilla_optimum(budget, TRUTH["A"], TRUTH["B"], TRUTH["alpha"],
                                     TRUTH["beta"])[0]
    for n in centre * np.geomspace(1 / np.sqrt(span), np.sqrt(span), sizes):
      tokens = budget / (6 * n)
      loss = laws.chinchilla_loss(n, tokens, **TRUTH) * np.exp(rng.normal(0, noise))
      rows.append(_row(f"b{budget:.0e}_n{n:.0f}", n, tokens,
                       loss + (shift_top if budget == max(budgets) else 0), budget))
  return rows


def _analyse(tmp_path, rows, *args, columns=COLUMNS, name="results.csv"):
  """cli.main on a table; returns (exit code, fit.json or None, stdout, stderr)."""
  results = write_csv(tmp_path / name, rows, columns)
  out = tmp_path / "out"
  stdout, stderr = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    code = cli.main(["--results", results, "--out", str(out), "--wandb-mode", "disabled", *args])
  assert code in (0, 2)  # never a traceback
  fit = json.loads((out / "fit.json").read_text()) if code == 0 else None
  return code, fit, stdout.getvalue(), stderr.getvalue()


NO_BUDGET = tuple(c for c in COLUMNS if c != "budget")
HIGH_BUDGETS = (1.25e16, 5e16, 2e17, 8e17)  # 1e18 lies 0.1 decades beyond, 1e19 1.1


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
  """An IsoFLOP table without a budget column, analysed with an offline W&B run under WANDB_DIR."""
  root = tmp_path_factory.mktemp("grouped")
  results = write_csv(root / "results.csv", law_rows(HIGH_BUDGETS), NO_BUDGET)
  wandb_dir, out = root / "wandb_dir", root / "out"
  wandb_dir.mkdir()
  before = os.environ.get("WANDB_DIR")
  os.environ["WANDB_DIR"] = str(wandb_dir)
  stdout = io.StringIO()
  try:
    with contextlib.redirect_stdout(stdout):
      assert cli.main(["--results", results, "--out", str(out), "--wandb-mode", "offline"]) == 0
  finally:
    if before is None:
      os.environ.pop("WANDB_DIR")
    else:
      os.environ["WANDB_DIR"] = before
  return out, json.loads((out / "fit.json").read_text()), stdout.getvalue(), wandb_dir


def test_extrapolation_holds_out_a_whole_budget_without_a_budget_column(grouped):
  _, fit, _, _ = grouped
  check = fit["extrapolation"]
  assert sorted(check["held_out"]) == sorted(
      r["run_id"] for r in law_rows(HIGH_BUDGETS) if r["budget"] == HIGH_BUDGETS[-1])
  assert check["n_fitted"] == 21 and check["held_out_budgets"] == [pytest.approx(8e17 * 1.1)]
  assert fit["diagnostics"]["extrapolation"]["ok"]


def test_frontier_covers_the_datas_own_range_without_a_budget_column(grouped):
  _, fit, _, _ = grouped
  flops = [row["flops"] for row in fit["frontier"]]
  # The ends of the runs' C (6.6 N D in these tables) to 2 digits, and the decade between.
  assert flops[:3] == [1.4e16, 1e17, 8.8e17]
  assert flops[3:] == [10.0 ** k for k in range(18, 25)]
  assert [row["decades_beyond_data"] == 0 for row in fit["frontier"]] == [True] * 3 + [False] * 7


def test_printed_frontier_stops_at_the_datas_range(grouped):
  _, _, stdout, _ = grouped
  lines = stdout.splitlines()
  assert any(line.startswith("  C = 8.80e+17") for line in lines)  # the data's largest C
  assert not any(line.startswith(("  C = 1.00e+18", "  C = 1.00e+24")) for line in lines)
  assert "7 budgets beyond the data's range: in fit.json, not printed" in stdout


def test_wandb_dir_is_where_the_offline_analysis_run_goes(grouped):
  out, fit, _, wandb_dir = grouped
  assert fit["wandb"]["run"].startswith(str(wandb_dir / "wandb" / "offline-run-"))
  assert os.listdir(fit["wandb"]["run"]) and not (out / "wandb").exists()


def test_inference_aware_frontier_in_fit_json_report_and_plot(tmp_path):
  code, fit, stdout, _ = _analyse(tmp_path, law_rows(BUDGETS, sizes=5), "--inference-tokens",
                                  "1e12")
  assert code == 0
  inference = fit["inference_frontier"]
  assert inference["inference_tokens"] == 1e12
  a3 = fit["chinchilla_approach3"]
  law = {k: a3[k] for k in ("E", "A", "B", "alpha", "beta")}
  for row, point in zip(inference["rows"], fit["frontier"]):
    assert row["flops"] == point["flops"]
    # The same loss as C's compute-optimal model, with a smaller model trained on more tokens,
    # at a lower training-plus-inference cost.
    assert laws.chinchilla_loss(row["n_opt"], row["d_opt"], **law) == pytest.approx(
        laws.chinchilla_loss(point["n_opt"], point["d_opt"], **law), rel=1e-9)
    assert row["n_opt"] < point["n_opt"] and row["total_flops"] < row["chinchilla_total_flops"]
    assert row["total_flops"] == pytest.approx(6 * row["n_opt"] * row["d_opt"]
                                               + 2 * row["n_opt"] * 1e12)
  report_md = (tmp_path / "out" / "report.md").read_text()
  assert "Inference-aware frontier (T = 1e+12 inference tokens)" in report_md
  assert "inference-aware (T = 1e+12 inference tokens" in stdout
  assert "frontier" in fit["plots"]


def test_report_and_cli_open_and_end_with_the_verdict(analysed):
  out, stdout = analysed
  fit = json.loads(stdout.strip().splitlines()[-1])
  markdown = (pathlib.Path(out) / "report.md").read_text()
  # The source first (a table no sweep wrote: where it was read), then the verdict, then numbers.
  assert markdown.startswith("# Scaling-law analysis\n\n## Source\n\n")
  assert "## Source" in markdown.split("## How far to trust this fit\n\nVerdict: ")[0]
  assert "## Data" not in markdown.split("## How far to trust this fit")[0]
  d = fit["diagnostics"]
  assert d["n_budgets"] == 5 and [b["sizes"] for b in d["budgets"]] == [7, 7, 7, 7, 2]
  assert [b["interior"] for b in d["budgets"]] == [True] * 4 + [None]
  assert d["approach2_vs_3"]["agree"] and d["E"]["above_min_loss"] is False
  assert set(d["ci_widths"]) == {"approach3", "approach2"} and d["extrapolation"]["ok"]
  lines = stdout.strip().splitlines()
  verdict = lines.index(f"How far to trust this fit: {d['verdict']}")
  assert lines[verdict + 1:-3] == ([f"  problem: {p}" for p in d["problems"]]
                                   + [f"  check: {c}" for c in d["checks"]])
  assert lines[-3].startswith("figures: ") and lines[-2].startswith("report: ")
  assert lines[:-1] == fit["summary"]  # the printed summary is fit.json's, line for line


@pytest.fixture(scope="module")
def two_budgets(tmp_path_factory):
  """Two budgets of 5 sizes, 1% noise, 50 bootstrap resamples: some refits give a Kaplan
  exponent near 0, whose x_c = coef^(1/alpha) overflowed (a traceback) before."""
  root = tmp_path_factory.mktemp("two")
  return _analyse(root, law_rows((1e12, 1.6e13), sizes=5, span=16, noise=0.01),
                  "--bootstrap", "50")


def test_bootstrap_refits_that_fail_numerically_are_dropped_and_counted(two_budgets):
  code, fit, stdout, stderr = two_budgets
  assert code == 0 and not stderr
  failed = fit["bootstrap"]["failed"]
  assert failed["L_N"] > 0 and fit["bootstrap"]["n_samples"] == 50
  assert f"{failed['L_N']} for L_N" in stdout
  assert fit["kaplan"]["L_N"]["ci95"]["alpha_N"] is not None


def test_two_budgets_are_named_as_unreliable(two_budgets):
  _, fit, stdout, _ = two_budgets
  assert fit["chinchilla_approach2"]["budgets"] == [1e12, 1.6e13]
  problems = fit["diagnostics"]["problems"]
  assert any(p.startswith("two budgets: each frontier exponent is a line through 2 points")
             for p in problems)
  assert "  problem: two budgets" in stdout
  assert fit["extrapolation"]["skipped"].startswith("extrapolation check: needs runs at 3")


def test_one_budget_gives_no_frontier_exponent(tmp_path):
  code, fit, stdout, _ = _analyse(tmp_path, law_rows((1e15,), sizes=9))
  assert code == 0
  d = fit["diagnostics"]
  assert "one budget: no frontier exponent can be fitted" in d["problems"][0]
  assert d["unidentified"]["frontier"] == "one budget"
  assert "a, b not identified (one budget)" in stdout and "C^" not in stdout
  assert [row["flops"] for row in fit["frontier"]] == [1e15]  # no extrapolated frontier


def test_a_law_that_misses_the_held_out_budget_is_flagged(tmp_path):
  results = write_csv(tmp_path / "results.csv", law_rows(BUDGETS, shift_top=0.2))
  fit, _ = pipeline.fit_all(runs_lib.load(results))
  check = fit["diagnostics"]["extrapolation"]
  assert check["held_out_budgets"] == [BUDGETS[-1]] and check["n_held_out"] == 7
  assert check["mean_abs_error"] > 0.1 and not check["ok"]
  assert any(line.startswith("  problem: the law does not extrapolate: refitted without the "
                             "largest budget") for line in summary.lines(
                                 {**fit, "warnings": []}))


def test_a_budget_cell_that_is_not_a_number_names_its_line_and_column(tmp_path):
  rows = law_rows(BUDGETS)
  rows[3]["budget"] = "1e12 FLOPs"
  code, _, _, err = _analyse(tmp_path, rows)
  assert code == 2 and err.count("\n") == 1
  assert err == (f"error: {tmp_path / 'results.csv'}, line 5, column 'budget': '1e12 FLOPs' is "
                 "not a number\n")


@pytest.mark.parametrize("column", ["flops", "n_params_total", "final_eval_loss"])
def test_infinite_values_are_refused_before_fitting_naming_line_and_column(tmp_path, column):
  rows = law_rows(BUDGETS)
  rows[6][column] = "inf"
  code, _, _, err = _analyse(tmp_path, rows)
  assert code == 2 and err.count("\n") == 1
  assert f"results.csv, line 8, column '{column}'" in err and "infinite" in err
  assert not (tmp_path / "out").exists()


def test_a_whitespace_only_line_is_reported_by_its_line_number(tmp_path):
  path = pathlib.Path(write_csv(tmp_path / "results.csv", _grid_rows()))
  lines = path.read_text().splitlines(keepends=True)
  path.write_text("".join(lines[:4] + ["   \n"] + lines[4:]))
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr):
    assert cli.main(["--results", str(path), "--out", str(tmp_path / "out")]) == 2
  assert stderr.getvalue() == (f"error: {path}, line 5: the line holds only whitespace or empty "
                               "cells; delete it\n")


@pytest.mark.parametrize("args, message", [
    (["--bootstrap", "-1"], "--bootstrap -1: give 0"),
    (["--isoflop-window", "0.5"], "--isoflop-window 0.5: give a factor of 1 or more"),
    (["--inference-tokens", "-1"], "--inference-tokens -1.0: give a finite number"),
    (["--bootstrap-unit", "run", "--bootstrap", "5"], "--bootstrap-unit run: "),
])
def test_bad_options_are_one_line_and_exit_code_2(tmp_path, args, message):
  columns = tuple(c for c in COLUMNS if c != "run_id")
  code, _, _, err = _analyse(tmp_path, _grid_rows(), *args, columns=columns)
  assert code == 2 and err.count("\n") == 1 and message in err


def test_an_output_path_that_is_a_file_is_refused_before_fitting(tmp_path):
  (tmp_path / "out").write_text("not a directory")
  code, _, _, err = _analyse(tmp_path, _grid_rows())
  assert code == 2 and err == f"error: --out {tmp_path / 'out'} is a file, not a directory\n"
