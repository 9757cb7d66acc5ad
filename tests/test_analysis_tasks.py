"""python -m analysis.tasks: task-scaling laws fitted on the smaller budgets of a table predict
the largest budget's accuracy; a table it cannot read is one line and exit 2."""
import csv
import json

import numpy as np
import pytest

from analysis import tasks

LAW = {"E": 0.9, "A": 40.0, "B": 300.0, "alpha": 0.4, "beta": 0.35}  # the task loss of (N, D)


def known_table(path, noise=0.0):
  """An IsoFLOP-like table whose accuracy follows the two-step law exactly (plus noise)."""
  rng = np.random.default_rng(0)
  rows = []
  for budget in (1e11, 3e11, 1e12, 3e12, 1e13):
    for n in np.geomspace(3e3, 3e5, 6):
      d = budget / (6 * n)
      loss = LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]
      acc = tasks.sigmoid(loss, 0.7, 4.0, 1.6, 0.25) + noise * rng.normal()
      rows.append({"run_id": f"r{len(rows)}", "status": "completed", "budget": budget,
                   "n_params_total": n, "tokens": d, "flops": budget,
                   "tasks.topic_4shot.accuracy": acc, "tasks.topic_4shot.gold_loss": loss,
                   "tasks.topic_4shot.shots": 4, "tasks.topic_4shot.ceiling": 1.0,
                   "tasks.topic_0shot.accuracy": acc - 0.2, "tasks.topic_0shot.shots": 0,
                   "tasks.topic_0shot.gold_loss": loss + 0.3,
                   "tasks.topic_0shot.ceiling": 0.8})
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return rows


@pytest.mark.slow  # the Chinchilla fit's grid of starts compiles and runs for seconds
def test_the_two_step_law_predicts_the_held_out_largest_budget(tmp_path):
  rows = known_table(tmp_path / "results.csv")
  assert tasks.main(["--results", str(tmp_path / "results.csv"), "--task-col",
                     "tasks.topic_4shot.accuracy", "--task-loss-col", "tasks.topic_4shot.gold_loss",
                     "--bootstrap", "20", "--out", str(tmp_path / "out")]) == 0
  result = json.load(open(tmp_path / "out" / "tasks.json"))
  assert result["held_out_budgets"] == [1e13] and result["fitted_runs"] == 24
  two_step = [p for p in result["predictions"] if p["law"] == "two_step"]
  assert [p["run"] for p in two_step] == [row["run_id"] for row in rows[-6:]]
  for p in two_step:
    assert p["predicted_accuracy"] == pytest.approx(p["measured_accuracy"], abs=0.01)
    assert p["interval"][0] <= p["predicted_accuracy"] <= p["interval"][1]
  assert {p["law"] for p in result["predictions"]} == set(tasks.LAWS)
  assert result["plot"] == "tasks.png" and (tmp_path / "out" / "tasks.png").exists()


@pytest.mark.slow  # every law fitted and resampled per task: seconds
def test_a_run_outside_the_table_is_predicted_by_every_law_fitted_on_all_of_it(tmp_path):
  known_table(tmp_path / "results.csv")
  # By hand, the run a sweep would verify at C = 3e13 with N = 1e5, D = C / 6N = 5e7: the task
  # loss 0.9 + 40 / 1e5^0.4 + 300 / 5e7^0.35 = 0.9 + 0.4 + 300 / 494.9 = 1.9062; its accuracy
  # 0.25 + 0.7 / (1 + exp(4 x 0.3062)) = 0.25 + 0.7 / 4.4035 = 0.4090.
  point = {"n_params_total": 1e5, "tokens": 5e7, "flops": 3e13}
  predicted = tasks.predict_tasks(str(tmp_path / "results.csv"), point, bootstrap=20)
  assert set(predicted) == {"topic_0shot", "topic_4shot"}
  task = predicted["topic_4shot"]
  assert (task["shots"], task["ceiling"]) == (4, 1.0) and set(task["predictions"]) == set(tasks.LAWS)
  two_step = task["predictions"]["two_step"]
  assert two_step["predicted_accuracy"] == pytest.approx(0.4090, abs=0.01)
  assert two_step["interval"][0] <= two_step["predicted_accuracy"] <= two_step["interval"][1]
  assert predicted["topic_0shot"]["ceiling"] == pytest.approx(0.8)
  with pytest.raises(tasks.DataError, match="no 'n_params_total'"):
    tasks.predict_run(tasks.read_table(str(tmp_path / "results.csv"), "tasks.topic_4shot.accuracy",
                                       "tasks.topic_4shot.gold_loss", "", "", "", ""),
                      {"tokens": 5e7})


def test_a_table_it_cannot_read_is_one_line_and_exit_2(tmp_path, capsys):
  known_table(tmp_path / "results.csv")
  common = ["--results", str(tmp_path / "results.csv"), "--out", str(tmp_path / "out")]
  assert tasks.main([*common, "--task-col", "nope", "--task-loss-col",
                     "tasks.topic_4shot.gold_loss"]) == 2
  err = capsys.readouterr().err.strip()
  assert "no column 'nope'" in err and len(err.splitlines()) == 1
  assert tasks.main([*common, "--task-col", "tasks.topic_4shot.accuracy", "--task-loss-col",
                     "tasks.topic_4shot.gold_loss", "--holdout-largest", "4"]) == 2
  assert "fewer than 2 budgets" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()


def test_a_sweep_fits_the_task_laws_of_its_most_shots_on_three_budgets_or_more(tmp_path,
                                                                              monkeypatch):
  from types import SimpleNamespace  # pylint: disable=g-import-not-at-top
  from sweeps import collect  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(collect.subprocess, "run",
                      lambda command, cwd: calls.append(command) or SimpleNamespace(returncode=0))
  results = [{"budget": budget, "tasks.topic_0shot.shots": 0, "tasks.topic_4shot.shots": 4}
             for budget in (1e11, 3e11, 1e12)]
  collect.task_laws(str(tmp_path), "results.csv", results)
  assert len(calls) == 1 and "tasks.topic_4shot.accuracy" in calls[0]
  assert calls[0][calls[0].index("--out") + 1] == str(tmp_path / "analysis")
  collect.task_laws(str(tmp_path), "results.csv", results[:2])  # two budgets: nothing to hold out
  collect.task_laws(str(tmp_path), "results.csv", [{"budget": 1.0}] * 3)  # no tasks scored
  assert len(calls) == 1


def test_the_noise_is_the_spread_of_each_runs_last_three_evaluations(tmp_path):
  for run, accuracies in (("a", (0.1, 0.5, 0.6, 0.7)), ("b", (0.2, 0.2, 0.2)), ("c", (0.9, 0.8))):
    (tmp_path / run).mkdir()
    with open(tmp_path / run / "metrics.jsonl", "w") as f:
      for step, accuracy in enumerate(accuracies):
        f.write(json.dumps({"step": step, "train_loss": 1.0}) + "\n")  # a row without tasks
        f.write(json.dumps({"step": step, "tasks": {"topic_4shot": {"accuracy": accuracy}}}) + "\n")
  noise = tasks.noise(str(tmp_path), ["a", "b", "c"], "tasks.topic_4shot.accuracy")
  assert noise["runs"] == 2  # c has two evaluations only
  assert noise["max_sd"] == pytest.approx(0.1) and noise["median_sd"] == pytest.approx(0.05)
  assert tasks.noise(str(tmp_path), ["a"], "accuracy") is None  # not a tasks.NAME.FIGURE column
