"""sweep.predict_branches (sweeps/predict.py): which branches train, what the plan costs, the
predicted rows in results.csv and curves.json, and the analysis that fits them only when asked."""
import csv
import dataclasses
import json
import os

import pytest

import sweep
from analysis import runs as runs_lib
from core import rundir
from core.config import ConfigError
from sweeps import branches, kinds, predict, processes, rows as plan_rows
from sweeps.rows import PREDICTED, TRUNK
from test_sweep import BRANCHES, micro_config, read_csv, sweep_command

# One size (and two for the plan test), four budgets: 20, 40, 80 and 160 steps of 64 tokens.
FOUR = "--config.sweep.tokens=(1280, 2560, 5120, 10240)"
PREDICT = ["--config.sweep.predict_branches=True", "--config.sweep.held_out_branches=1"]


def test_each_family_trains_its_shortest_and_longest_branch_and_predicts_the_rest():
  config, overrides = micro_config("--config.sweep.n_params=(3e3, 2e4)", FOUR, *BRANCHES, *PREDICT)
  rows = kinds.plan_sweep(config, overrides)
  trunks = [row for row in rows if row.kind == TRUNK]
  assert len(trunks) == 2
  held_out = 0
  for trunk in trunks:
    family = sorted((row for row in rows if row.trunk == trunk.run_id), key=lambda r: r.tokens)
    assert [row.tokens for row in family] == [1280, 2560, 5120, 10240]
    assert family[0].kind == family[-1].kind == ""  # the ends train
    held_out += sum(row.kind == "" for row in family[1:-1])
    assert trunk.steps == family[-1].branch_step  # the trunk still reaches the longest branch
  predicted = [row for row in rows if row.kind == PREDICTED]
  assert len(predicted) == 3 and held_out == 1  # 4 middle branches, one held out
  assert all(row.group == "" for row in predicted)  # never in a group of replicas
  cost = branches.cost(rows)
  # Per size: a trunk of 0.8 x 10240 tokens and cooldowns of 0.2 x the trained branches' tokens.
  trained = sum(0.2 * row.tokens for row in rows if row.trunk and row.kind != PREDICTED)
  expected = (2 * 0.8 * 10240 + trained) / (2 * (1280 + 2560 + 5120 + 10240))
  assert cost["ratio"] == pytest.approx(expected, rel=0.03)
  assert cost["predicted_runs"] == 3


def test_a_branch_an_earlier_sweep_trained_is_measured_not_predicted(tmp_path):
  config, overrides = micro_config("--config.sweep.n_params=(3e3,)", FOUR, *BRANCHES, *PREDICT)
  rows = kinds.plan_sweep(config, overrides, str(tmp_path))
  (first, *_) = [row for row in rows if row.kind == PREDICTED]
  run_dir = processes.run_dir_of(str(tmp_path), first)
  os.makedirs(run_dir)
  with open(os.path.join(run_dir, "result.json"), "w") as f:
    json.dump({"status": rundir.COMPLETED, "final_eval_loss": 3.0}, f)
  again = {row.run_id: row for row in kinds.plan_sweep(config, overrides, str(tmp_path))}
  assert again[first.run_id].kind == ""  # its result stays the sweep's
  assert sum(row.kind == PREDICTED for row in again.values()) == len(
      [row for row in rows if row.kind == PREDICTED]) - 1


def test_predicting_branches_without_branches_is_refused_in_one_line():
  with pytest.raises(ConfigError, match="predict_branches predicts branches of trunks: add "
                                        "--config.sweep.branches=True$"):
    kinds.plan_sweep(*micro_config(FOUR, *PREDICT))
  with pytest.raises(ConfigError, match="held_out_branches must be a whole number >= 0"):
    kinds.plan_sweep(*micro_config(FOUR, *BRANCHES, "--config.sweep.predict_branches=True",
                                   "--config.sweep.held_out_branches=-1"))


def _table(tmp_path, statuses):
  path = tmp_path / "results.csv"
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["run_id", "status", "n_params", "tokens", "final_eval_loss"])
    for i, status in enumerate(statuses):
      writer.writerow([f"r{i}", status, 1e5 * (i + 1), 1e6, 3.0 - 0.1 * i])
  return str(path)


def test_predicted_rows_are_fitted_only_with_predicted_and_listed_as_predicted(tmp_path):
  path = _table(tmp_path, ["completed", "predicted", "completed", "failed"])
  runs = runs_lib.load(path)
  assert runs.run_id.tolist() == ["r0", "r2"] and runs.predicted == ()
  assert ("r1", "predicted") in [(r, s) for r, s, _ in runs.excluded]
  runs = runs_lib.load(path, predicted=True)
  assert runs.run_id.tolist() == ["r0", "r1", "r2"] and runs.predicted == ("r1",)
  assert [r for r, _, _ in runs.excluded] == ["r3"]


@pytest.mark.slow
def test_a_predicting_sweep_trains_the_ends_and_predicts_the_middle(tmp_path):
  sweep_dir = tmp_path / "predicted"
  sweep.main(sweep_command(sweep_dir, FOUR, *BRANCHES, *PREDICT)[2:])  # 4 points fit no law
  rows = {row.run_id: row for row in plan_rows.read_plan(str(sweep_dir))}
  predicted = [row for row in rows.values() if row.kind == PREDICTED]
  assert len(predicted) == 1
  # Never trained: no run directory; every other row trained.
  assert not os.path.exists(processes.run_dir_of(str(sweep_dir), predicted[0]))
  results = {row["run_id"]: row for row in read_csv(sweep_dir / "results.csv")}
  assert len(results) == 4
  row = results[predicted[0].run_id]
  assert row["status"] == rundir.PREDICTED and row["predicted_by"] in predict.FORMS
  assert 0 < float(row["final_eval_loss"]) < 10
  trained_branch = results[[r for r in rows.values() if r.trunk and r.kind != PREDICTED][0].run_id]
  for column in ("family", "d_model", "n_layer", "data.kind"):  # its family's shape and data
    assert row[column] == trained_branch[column]
  assert row["trunk"] == predicted[0].trunk
  assert sum(r["status"] == rundir.COMPLETED for r in results.values()) == 3
  record = json.load(open(sweep_dir / "analysis" / predict.CURVES))
  (family,) = record["families"].values()
  ends = sorted((r for r in rows.values() if r.trunk), key=lambda r: r.tokens)
  assert family["fitted_on"] == [ends[0].trunk, ends[0].run_id, ends[-1].run_id]
  by_run = {(p["run"], p["form"]): p for p in record["predictions"]}
  held = [r for r in ends[1:-1] if r.kind != PREDICTED][0]
  for form in predict.FORMS:
    if "error" in family["forms"][form]:
      continue
    measured = by_run[(held.run_id, form)]  # held out: trained, its error measured
    assert measured["trained"] and measured["measured_final_loss"] > 0
    assert measured["final_error"] == pytest.approx(
        (measured["predicted_final_loss"] - measured["measured_final_loss"])
        / measured["measured_final_loss"])
    assert by_run[(predicted[0].run_id, form)]["measured_final_loss"] is None
  assert row["predicted_by"] == record["used_form"]
  assert float(row["final_eval_loss"]) == by_run[(predicted[0].run_id, record["used_form"])][
      "predicted_final_loss"]
  cost = json.load(open(sweep_dir / "cost.json"))  # counts only what trained
  assert cost["flops_spent"] == pytest.approx(branches.cost(list(rows.values()))["flops_spent"])
  all_trained = [dataclasses.replace(r, kind="") if r.kind == PREDICTED else r
                 for r in rows.values()]
  assert cost["flops_spent"] < branches.cost(all_trained)["flops_spent"]
