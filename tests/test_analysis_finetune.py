"""The fine-tuning analysis: the law recovered from exact data, the tables, the claims, the CLI."""
import csv
import json
import os

import numpy as np
import pytest

from analysis import finetune, fitter, forms
from analysis.forms import finetune as finetune_form

FULL = dict(A=40.0, alpha=0.25, beta=0.15, E=1.2)
LORA = dict(A=30.0, alpha=0.2, beta=0.1, E=1.5)
SIZES = (1.2e4, 2.8e4, 9.9e4)
BUDGETS = (1.25e5, 2.5e5, 5e5, 1e6)


def test_the_law_is_recovered_from_exact_points():
  n, d = (np.array(v) for v in zip(*[(n, d) for n in SIZES for d in BUDGETS]))
  loss = finetune_form.finetune_loss(n, d, **FULL)
  form = forms.get("finetune")
  fit = fitter.fit(form, (n, d), loss)
  for key, value in FULL.items():
    assert fit.params[key] == pytest.approx(value, rel=2e-3), key
  assert fit.n_points == 12 and fit.n_starts == len(finetune_form.GRID) == 750
  assert fit.r2_log == pytest.approx(1.0, abs=1e-6) and fit.rms_log_residual < 1e-4
  # E held at its value through its raw variable e = log E: A, alpha, beta fitted
  anchored = fitter.fit(form, (n, d), loss, fixed={"e": np.log(FULL["E"])})
  assert anchored.E == pytest.approx(FULL["E"], rel=1e-12) and anchored.n_starts == 150
  for key in ("A", "alpha", "beta"):
    assert anchored.params[key] == pytest.approx(FULL[key], rel=2e-3), key


def write_results(path, rows):
  columns = sorted({k for row in rows for k in row})
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)


def sweep_rows():
  """A fine-tuning sweep's results.csv as train.py writes it: full and LoRA r4 on three bases."""
  rows = []
  for n in SIZES:
    for d in BUDGETS:
      for method, law, trainable, speed, forgetting in (
          ("full", FULL, 3 * n, 1e5, 0.3 * (d / 1e6) ** 0.2),
          ("lora", LORA, 0.1 * n, 1.3e5, 0.1 * (d / 1e6) ** 0.2)):
        rows.append({
            "run_id": f"{method}_{n:g}_{d:g}", "status": "completed", "n_params": n,
            "n_params_total": 3 * n, "tokens": d,
            "final_eval_loss": finetune_form.finetune_loss(n, d, **law), "loss_floor": 0.9,
            "finetune.method": method, "finetune.lora_rank": 4 if method == "lora" else "",
            "trainable_params": trainable, "optimizer_state_bytes": 8 * trainable + 4,
            "median_tokens_per_sec": speed, "original_data_eval_loss_before": 2.8,
            "original_data_eval_loss": 2.8 + forgetting, "finetune_eval_loss_before": 3.7})
  rows.append({**rows[0], "run_id": "failed", "status": "failed", "final_eval_loss": ""})
  return rows


def test_the_analysis_writes_laws_tables_claims_and_plots(tmp_path, capsys):
  results = tmp_path / "results.csv"
  write_results(results, sweep_rows())
  out = tmp_path / "analysis"
  assert finetune.main(["--results", str(results), "--out", str(out), "--json"]) == 0
  printed = capsys.readouterr().out.strip().splitlines()
  result = json.loads(printed[-1])
  assert result["n_runs"] == 24 and result["methods"] == ["full", "lora r4"]
  for method, law in (("full", FULL), ("lora r4", LORA)):
    for key, value in law.items():
      assert result["laws"][method][key] == pytest.approx(value, rel=2e-3), (method, key)
  assert result["laws_at_floor"]["full"]["E"] == pytest.approx(0.9)  # the rows' floor
  rows = {(r["n"], r["method"]): r for r in result["table"]}
  assert len(rows) == 6
  lora, full = rows[(2.8e4, "lora r4")], rows[(2.8e4, "full")]
  assert lora["trainable_fraction"] == pytest.approx(0.1 / 3)
  assert lora["forgetting"] == pytest.approx(0.1) and full["forgetting"] == pytest.approx(0.3)
  assert full["above_floor"] == pytest.approx(
      finetune_form.finetune_loss(2.8e4, 1e6, **FULL) - 0.9)
  claims = result["claims"]["lora r4"]
  assert claims["points"] == 12 and claims["forgets_less_points"] == 12
  assert claims["optimizer_state_vs_full"][1] < 0.04
  assert claims["tokens_per_sec_vs_full"] == pytest.approx(1.3)
  for name in ("finetune.json", "finetune.md", "finetune.html", "finetune_loss.png",
               "forgetting.png"):
    assert os.path.exists(out / name), name
  report = (out / "finetune.md").read_text()
  assert "Does PEFT cost less and forget less?" in report and "lora r4" in report
  assert any(line.startswith("lora r4: L = ") for line in printed)


def test_a_table_that_is_not_a_finetuning_sweep_is_refused_in_one_line(tmp_path, capsys):
  path = tmp_path / "results.csv"
  write_results(path, [{"run_id": "a", "status": "completed", "n_params": 1, "tokens": 2,
                        "final_eval_loss": 3}])
  assert finetune.main(["--results", str(path), "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err.strip()
  assert "fine-tuning sweep" in err and len(err.splitlines()) == 1
