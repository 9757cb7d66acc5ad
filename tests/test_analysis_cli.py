"""python -m analysis end to end on a synthetic sweep directory, and its answers to bad input."""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from analysis import __main__ as cli
from analysis import laws
from analysis import report
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
  assert any("2.5e+14 has 2 model sizes" in w for w in fit["warnings"])
  assert any("not JSON" in w for w in fit["warnings"])
  assert fit["loss_floor"] == TRUTH["E"]


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
  assert "[NOT CONVERGED]" in cli.summary_lines(fit)[1]


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
    ([], _grid_rows(n_sizes=1, n_tokens=5) + _grid_rows(n_sizes=1, n_tokens=5)[:1],
     "have one model size"),
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
