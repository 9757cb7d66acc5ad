"""sweeps/verify.py: the verification run planned from the fit, predicted before it trains, held
out of the fit, resumed when killed and never retrained (a real micro IsoFLOP sweep)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import sweep
from conftest import HANG_S, ROOT, with_fault
from core import rundir
from core.config import ConfigError, load_config
from sweeps import kinds, plan, processes, tables, verify
from sweeps.rows import read_plan

DEFAULT = os.path.join(ROOT, "experiments", "default_sweep.py")
LAW = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}


def law_fit(k=6.0, gamma=1.0):
  return {"chinchilla_approach3": dict(LAW), "columns": {"n": "n_params_total"},
          "flops_convention": {"k": k, "gamma": gamma, "label": "test"}}


def test_the_verification_point_is_the_fitted_laws_optimum_at_its_budget():
  # By hand: dL/dN = 0 on C = 6ND gives N_opt = (alpha A / (beta B))^(1/(alpha+beta)) (C/6)^a with
  # a = beta / (alpha + beta): (0.34 x 400 / (0.37 x 2000))^(1/0.71) = (136/740)^1.40845 = 0.092005,
  # (1e20 / 6)^(0.37/0.71) = (1.6667e19)^0.52113 = 1.03997e10; N_opt = 9.568e8, D_opt = C / 6N
  # = 1.742e10 (18.2 tokens per parameter).
  n_opt, d_opt = verify.optimum(law_fit(), 1e20)
  assert n_opt == pytest.approx((136 / 740) ** (1 / 0.71) * (1e20 / 6) ** (0.37 / 0.71), rel=1e-9)
  assert (n_opt, d_opt) == pytest.approx((9.568e8, 1.742e10), rel=1e-3)
  assert d_opt == pytest.approx(1e20 / (6 * n_opt), rel=1e-12)
  # C = k N^gamma D (the table's counted FLOPs): dL/dN = 0 gives
  # alpha A N^-alpha = gamma beta B D^-beta.
  n, d = verify.optimum(law_fit(k=7.5, gamma=1.05), 1e20)
  assert 7.5 * n ** 1.05 * d == pytest.approx(1e20, rel=1e-9)
  assert LAW["alpha"] * LAW["A"] * n ** -LAW["alpha"] == pytest.approx(
      1.05 * LAW["beta"] * LAW["B"] * d ** -LAW["beta"], rel=1e-9)


@pytest.mark.slow  # compiles the law for x64 under vmap: seconds on a loaded machine
def test_the_prediction_is_the_law_at_the_runs_exact_n_and_d_with_the_bootstraps_interval():
  loss, interval = verify.predict(law_fit(), None, 3e5, 6e6)
  assert loss == pytest.approx(1.8 + 400 / 3e5 ** 0.34 + 2000 / 6e6 ** 0.37, rel=1e-9)
  assert interval is None
  rng = np.random.default_rng(0)
  samples = {k: list(v * (1 + 0.01 * rng.standard_normal(40))) for k, v in LAW.items()}
  samples["E"][3] = None  # a failed resample is left out
  loss, (low, high) = verify.predict(law_fit(), samples, 3e5, 6e6)
  assert low < loss < high


def test_the_other_predictions_include_the_law_at_the_known_floor_where_the_table_has_one():
  # Approach 2's minima 3.0, 2.8, 2.62 at C = 1e18, 4e18, 1.6e19 (a power law in C above the
  # floor 1.0 at 4x steps: excess 2.0, 1.8, 1.62, ratio 0.9 a step) extrapolate to 1 + 1.458 at 6.4e19.
  profiles = [{"flops": c, "loss_opt": loss} for c, loss in ((1e18, 3.0), (4e18, 2.8), (1.6e19, 2.62))]
  fit = {**law_fit(), "chinchilla_approach2": {"profiles": profiles}}
  assert set(verify.other_predictions(fit, 6.4e19, 3e5, 6e6)) == {"minima_power", "minima_floor"}
  at_floor = {**LAW, "E": 1.0, "alpha": 0.3}
  fit = {**fit, "loss_floor": 1.0, "chinchilla_approach3": {**LAW, "at_floor": at_floor}}
  others = verify.other_predictions(fit, 6.4e19, 3e5, 6e6)
  assert others["approach3_at_floor"] == pytest.approx(1.0 + 400 / 3e5 ** 0.3 + 2000 / 6e6 ** 0.37,
                                                       rel=1e-9)
  assert others["minima_known_floor"] == pytest.approx(1.0 + 1.62 * 0.9, rel=1e-9)


def test_verify_factor_sets_the_budget_and_a_bad_one_is_a_config_error():
  config = load_config(DEFAULT, [])
  assert config.sweep.verify_factor == 4.0
  assert verify.budget_of(config.sweep) == 4 * max(config.sweep.budgets)
  assert verify.budget_of(load_config(DEFAULT, ["--config.sweep.verify_factor=0"]).sweep) is None
  with pytest.raises(ConfigError, match="verify_factor"):
    kinds.checked(load_config(DEFAULT, ["--config.sweep.verify_factor=-1.0"]))


def test_a_law_without_an_optimum_records_why_and_trains_nothing(tmp_path, capsys):
  os.makedirs(tmp_path / "analysis")
  fit = law_fit()
  fit["chinchilla_approach3"]["alpha"] = -0.01  # alpha < 0: loss falls forever with N
  (tmp_path / "analysis" / "fit.json").write_text(json.dumps(fit))
  config = load_config(DEFAULT, [])
  summary, outcome = verify.verify(config, [], str(tmp_path), [], {"not_finished": 0,
                                   rundir.COMPLETED: 40}, lambda rows: pytest.fail("trained"))
  record = json.loads((tmp_path / "analysis" / verify.VERIFY).read_text())
  assert outcome is None and summary["verify"] == record
  assert record["skipped"].startswith("the fitted law has no compute-optimal N")
  assert "not planned" in capsys.readouterr().out
  # Unfinished runs: nothing is planned yet.
  assert verify.verify(config, [], str(tmp_path), [], {"not_finished": 2}, None) == ({}, None)


@pytest.mark.slow  # ~20 resolved configs: a few seconds
def test_the_verification_run_is_a_plan_row_sized_as_the_sweeps_runs(tmp_path):
  config = load_config(DEFAULT, [])
  budget, n_opt = 4.8e12, 3.0e5
  target = verify.shape_target(config, [], str(tmp_path), budget, n_opt, "n_params_total")
  rows = verify.plan_verification(config, [], str(tmp_path), budget, target, first=54)
  (run,) = [row for row in rows if row.kind != "trunk"]
  (trunk,) = [row for row in rows if row.kind == "trunk"]  # a branch sweep: off its own WSD trunk
  assert run.trunk == trunk.run_id and [row.row for row in rows] == [54, 55]
  assert run.budget == budget and run.seed == config.sweep.seeds[0]
  assert abs(run.flops - budget) <= run.flops / run.steps  # the budget, in whole batches
  # The sizing's shapes nearest N_opt either side: the one chosen has the nearer total N.
  overrides = plan.run_overrides_of(config, [], str(tmp_path))
  totals = {plan.plan_run(config, 1, overrides, t, budget).row.n_params_total
            for t in np.geomspace(0.8 * n_opt, 1.2 * n_opt, 9)}
  assert run.n_params_total == min(totals, key=lambda n: abs(math.log(n / n_opt)))
  # Its id is the one the sweep's own planner gives that point: a normal, resumable run.
  again = plan.plan_points(config, config.sweep, [], str(tmp_path), [(budget, target, None)])
  assert run.run_id in {row.run_id for row in again}


# A micro IsoFLOP sweep: 16-token sequences, batches of 4, 3 budgets x 3 sizes, independent runs.
MICRO = ["--config.train.seq_len=16", "--config.train.batch_size=4",
         "--config.train.eval_tokens=256",
         "--config.train.log_every=10", "--config.wandb.mode=disabled",
         "--config.sweep.budgets=(1e9, 2e9, 4e9)", "--config.sweep.sizes_per_budget=3",
         "--config.sweep.span=4.0", "--config.sweep.ladder=True",
         "--config.sweep.tokens_per_param=5.0",
         "--config.train.schedule=cosine", "--config.sweep.branches=False",
         "--config.sweep.seeds=()", "--config.train.checkpoint_every=10",
         # the language this micro study was sized for: with the default sweep's 1.4 its N_opt at
         # 4x the largest budget lies past the sizes the micro shapes reach
         "--config.data.synthetic.zipf_exponent=1.1",
         # the topic task at 0 and 1 shots (10 tokens: the default's 4-shot 22 exceed 16 + 1)
         "--config.eval.tasks.names=topic", "--config.eval.tasks.shots=(0, 1)"]


def sweep_argv(workdir, *extra):
  return ["--config", DEFAULT, "--workdir", str(workdir), *MICRO, *extra]


def run_sweep(capsys, workdir, *extra):
  """sweep.main in this process (its runs are train.py processes): (exit code, its output)."""
  code = sweep.main(sweep_argv(workdir, *extra))
  return code, capsys.readouterr().out


@pytest.mark.slow
def test_predicted_before_training_resumed_when_killed_and_never_retrained(tmp_path, capsys):
  code, _ = run_sweep(capsys, tmp_path, "--config.sweep.verify_factor=0")
  assert code == 0
  assert not os.path.exists(tmp_path / "analysis" / verify.VERIFY)  # off: none written
  # The verification run alone trains now (the sweep's runs are finished): killed at its step 10
  # (the sweep too is a process here: its exit code is the one a shell sees).
  killed = subprocess.run([sys.executable, "sweep.py", *sweep_argv(tmp_path)], cwd=ROOT,
                          env=with_fault("SIGKILL@10"), capture_output=True, text=True,
                          timeout=HANG_S)
  path = tmp_path / "analysis" / verify.VERIFY
  record = json.loads(path.read_text())
  assert {"budget", "n", "d", "predicted_loss", "predicted_interval", "measured_loss",
          "run_id"} <= set(record)
  assert record["measured_loss"] is None and record["predicted_loss"] > 0
  assert record["budget"] == 4 * 4e9 and len(record["predicted_interval"]) == 2
  # Each task's accuracy predicted by every task law before it trains, in tasks.json too.
  assert set(record["tasks"]) == {"topic_0shot", "topic_1shot"}, record.get("tasks_skipped")
  for task in record["tasks"].values():
    assert task["measured_accuracy"] is None and set(task["predictions"]) == {
        "two_step", "power_compute", "loss_to_error"}
  laws_path = tmp_path / "analysis" / "tasks.json"
  ahead = [p for p in json.loads(laws_path.read_text())["predictions"]
           if p["run"] == record["run_id"]]
  assert len(ahead) == 6 and all(p["measured_accuracy"] is None for p in ahead)
  run_dir = tmp_path / "runs" / record["run_id"]
  assert os.path.isdir(run_dir / "checkpoints" / "10")  # its step-10 checkpoint
  assert rundir.read_result(str(run_dir))["status"] == record["status"] == rundir.FAILED
  assert killed.returncode == 1, killed.stdout[-2000:]  # the run failed, the sweep says so
  ahead_record = record
  # Rerun: the run resumes from its checkpoint and the measured loss is filled in.
  code, resumed = run_sweep(capsys, tmp_path)
  assert code == 0, resumed[-2000:]
  record = json.loads(path.read_text())
  result = rundir.read_result(str(run_dir))
  assert result["status"] == rundir.COMPLETED
  assert record["measured_loss"] == result["final_eval_loss"]
  for name, task in record["tasks"].items():  # as predicted before, now measured
    assert task["predictions"] == ahead_record["tasks"][name]["predictions"]
    assert task["measured_accuracy"] == result["tasks"][name]["accuracy"]
  after = [p for p in json.loads(laws_path.read_text())["predictions"]
           if p["run"] == record["run_id"]]
  assert sorted(p["measured_accuracy"] for p in after) == sorted(
      [result["tasks"][name]["accuracy"] for name in record["tasks"]] * 3)
  assert "topic_1shot accuracy: predicted [95% interval], measured" in resumed
  assert record["relative_error"] == pytest.approx(
      (record["predicted_loss"] - record["measured_loss"]) / record["measured_loss"])
  assert set(record["other_errors"]) == set(record["other_predictions"]) == {
      "minima_power", "minima_floor", "minima_known_floor", "approach3_at_floor"}
  steps = [row["step"] for row in rundir.read_metrics(str(run_dir))]
  assert steps == sorted(set(steps))  # resumed, no step twice
  assert "verification run (held out of the fit):" in resumed
  assert resumed.count("How far to trust this fit") == 1  # the verdict, printed once
  report_md = (tmp_path / "analysis" / "report.md").read_text()
  assert "Verification run: predicted, then trained" in report_md
  # Held out: not in results.csv, so in no fit; in plan.csv and cost.json.
  fit = json.loads((tmp_path / "analysis" / "fit.json").read_text())
  assert record["run_id"] not in open(tmp_path / "results.csv").read()
  assert fit["n_points"] == len(read_plan(str(tmp_path))) - 1
  assert [row for row in fit["frontier"] if row.get("verification")]
  assert record["run_id"] in {row.run_id for row in read_plan(str(tmp_path))}
  # Idempotent: a third run trains nothing and keeps the record.
  mtime = os.path.getmtime(run_dir / "result.json")
  code, again = run_sweep(capsys, tmp_path)
  assert code == 0 and os.path.getmtime(run_dir / "result.json") == mtime
  assert json.loads(path.read_text())["measured_loss"] == record["measured_loss"]
  assert "0 of 1 runs already finished" not in again


TASKS_PREDICTED = {"topic_4shot": {"shots": 4, "ceiling": 1.0, "predictions": {
    "two_step": {"predicted_accuracy": 0.70, "interval": [0.62, 0.78], "bootstrap_kept": 20},
    "power_compute": {"predicted_accuracy": 0.80, "interval": None, "bootstrap_kept": 0}}}}


def test_the_runs_task_accuracy_is_predicted_before_it_trains_and_measured_after(tmp_path,
                                                                                monkeypatch):
  from analysis import summary  # pylint: disable=g-import-not-at-top
  from sweeps.rows import PlanRow  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(verify.task_laws, "predict_tasks",
                      lambda path, point, bootstrap: calls.append((path, point, bootstrap))
                      or TASKS_PREDICTED)
  row = PlanRow(run_id="v1", n_params=900, n_params_total=1000, tokens=50_000, flops=3.1e8,
                flops_6nd=3e8)
  predicted = verify.predict_tasks("results.csv", row, None)
  # The point in every column the table's N, D and C may be read from.
  assert calls == [("results.csv", {"n_params": 900, "n_params_total": 1000, "tokens": 50_000,
                                    "flops": 3.1e8, "flops_6nd": 3e8}, verify.TASK_BOOTSTRAP)]
  assert predicted["tasks"]["topic_4shot"]["measured_accuracy"] is None
  record = {"run_id": "v1", "n": 1000, "d": 50_000, "flops": 3.1e8, "predicted_loss": 2.0,
            **predicted}
  # A rerun keeps the prediction written before the run trained; another run's is not reused.
  monkeypatch.setattr(verify.task_laws, "predict_tasks", lambda *a: pytest.fail("refitted"))
  assert verify.predict_tasks("results.csv", row, record) == predicted
  with pytest.raises(pytest.fail.Exception):
    verify.predict_tasks("results.csv", row, {**record, "run_id": "v0"})
  # Before it trains: tasks.json gets one prediction per law, measured null, beside the sweep's own.
  out = tmp_path / "analysis"
  out.mkdir()
  held = {"run": "r9", "law": "two_step", "predicted_accuracy": 0.6, "measured_accuracy": 0.61}
  (out / "tasks.json").write_text(json.dumps({"laws": {}, "predictions": [held]}))
  verify.write_task_predictions(str(out), record)
  laws = json.loads((out / "tasks.json").read_text())
  assert laws["predictions"][0] == held and len(laws["predictions"]) == 3
  assert {(p["run"], p["law"], p["task"], p["measured_accuracy"], p["c"])
          for p in laws["predictions"][1:]} == {("v1", "two_step", "topic_4shot", None, 3.1e8),
                                                ("v1", "power_compute", "topic_4shot", None, 3.1e8)}
  # After: the measured accuracy from its result.json and each law's error, predicted - measured.
  os.makedirs(tmp_path / "runs" / "v1")
  (tmp_path / "runs" / "v1" / "result.json").write_text(json.dumps(
      {"status": "completed", "final_eval_loss": 2.5,
       "tasks": {"topic_4shot": {"accuracy": 0.75, "shots": 4}}}))
  measured = verify.measure(str(tmp_path), row, record)
  task = measured["tasks"]["topic_4shot"]
  assert task["measured_accuracy"] == 0.75
  assert task["errors"] == pytest.approx({"two_step": -0.05, "power_compute": 0.05})
  verify.write_task_predictions(str(out), measured)
  laws = json.loads((out / "tasks.json").read_text())
  assert len(laws["predictions"]) == 3  # replaced, not appended
  assert [p["measured_accuracy"] for p in laws["predictions"][1:]] == [0.75, 0.75]
  # The report's and printed summary's rows, next to the loss.
  (line,) = summary.task_rows(measured)
  assert line == ["topic_4shot accuracy: predicted [95% interval], measured",
                  "two_step 0.700 [0.620, 0.780], power_compute 0.800; measured 0.750 "
                  "(ceiling 1.000)"]
  assert "not yet" in summary.task_rows(record)[0][1]
  # No tasks.json (the sweep's task laws did not run): verify.json alone holds them.
  verify.write_task_predictions(str(tmp_path / "none"), measured)
  assert not (tmp_path / "none").exists()
