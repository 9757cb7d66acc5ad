"""Predict, then verify (as Marin's scaling ladder does): after an IsoFLOP sweep's fit, the
compute-optimal run at sweep.verify_factor times its largest budget is planned, its loss predicted
with a bootstrap interval and written to DIR/analysis/verify.json before it trains, then trained
and its measured loss added. Where the sweep's runs scored eval.tasks, its accuracy on each task is
predicted alike (analysis.tasks.predict_tasks: every task law fitted on all the sweep's runs, 95%
intervals over TASK_BOOTSTRAP resamples): verify.json `tasks` and DIR/analysis/tasks.json
`predictions` (run = its id), the measured accuracy added once it trained.

The run is a normal row of the plan machinery (sweeps/plan.plan_points: its id from its config's
hash, resumable, off a WSD trunk in a branch sweep), planned in a second phase once every run of
the sweep has a result and the fit succeeded: its rows join plan.csv (so `sweep.py --row K` finds
them) and cost.json. It is held out: results.csv, and so every fit, holds the sweep's own rows only.
Its shape comes from the sweep's own sizing (plan_run's model.target_params): the fit's N is total
parameters, so the non-embedding target is searched for the shape whose N in the fit's column is
nearest N_opt; verify.json records the N of the shape chosen, and the loss is predicted at that
run's exact N and D. One run: the sweep's first seed, the lr rule's lr. A rerun retrains nothing
finished (the run is found by its id) and fills in the measured loss once the run has a result.

Executors: local trains it at once. slurm and wandb get the verification rows as a second
submission, once the sweep's runs have all finished (a rerun of `sweep.py --executor slurm` after
they have: a second sbatch array; wandb: wandb_sweep.yaml rewritten as a grid over the verification
rows); rerun the same command after it trained to fill in the measured loss.
"""
import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from analysis import bootstrap, forms, isoflop, report, summary
from analysis import tasks as task_laws
from analysis.pipeline import SAMPLES
from analysis.runs import DataError
from core import files, rundir
from core.config import ConfigError
from sweeps import branches, plan, tables
from sweeps.processes import run_dir_of
from sweeps.rows import TRUNK, write_plan

VERIFY = "verify.json"
N_BOOTSTRAP = 200  # resamples of the sweep's analysis when it verifies: the predicted interval
SIZING_STEPS = 8   # tries of the non-embedding target whose shape's total N is nearest N_opt
TASK_BOOTSTRAP = 20  # resamples of each task's laws for the run's predicted accuracy (as the
                     # sweep's own task laws, sweeps/collect.task_laws)
TASKS = "tasks.json"


def budget_of(sweep) -> float | None:
  """The verification budget: verify_factor x the largest budget; None when it is off."""
  factor = sweep.get("verify_factor", 0.0)
  return float(factor * max(sweep.budgets)) if factor and sweep.get("budgets") else None


def optimum(fit: dict, budget: float) -> tuple[float, float]:
  """The primary law's compute-optimal (N, D) at `budget`, C in the table's FLOP convention."""
  convention = fit.get("flops_convention") or {"k": 6.0, "gamma": 1.0}
  form = forms.get(forms.PRIMARY)
  params = {name: fit[form.section][name] for name in form.params}
  with np.errstate(invalid="ignore"):  # NaN for a law without an optimum (an exponent <= 0)
    n, d = form.optimum(params, budget, k=convention["k"], gamma=convention["gamma"])
  return float(n), float(d)


def predict(fit: dict, samples: dict | None, n: float, d: float):
  """(loss, 95% interval or None) of the primary law at (n, d), the interval over the bootstrap
  samples of its parameters (DIR/analysis/samples.json)."""
  form = forms.get(forms.PRIMARY)
  rows = [[fit[form.section][name] for name in form.params]]
  rows += np.array([[np.nan if v is None else v for v in samples[name]]
                    for name in form.params]).T.tolist() if samples else []
  with np.errstate(divide="ignore"):  # a resample's E of 0: log E = -inf, a finite loss
    raws = np.stack([form.to_raw(dict(zip(form.params, row))) for row in rows
                     if np.all(np.isfinite(row))])
  with jax.enable_x64(True):  # the fit's law and every resample's at once (a jnp function)
    logs = (jnp.log(jnp.array([float(n)])), jnp.log(jnp.array([float(d)])))
    losses = np.exp(np.asarray(jax.vmap(lambda raw: form.loss(raw, logs))(jnp.asarray(raws))))[:, 0]
  return float(losses[0]), bootstrap.interval(losses[1:]) if samples else None


def other_predictions(fit: dict, budget: float, n: float, d: float) -> dict:
  """Predictions recorded beside the primary law's, whose errors benchmarks/verify_predictors.py
  compares: the IsoFLOP minima's loss extrapolated to `budget` (isoflop.minimum_loss_at) by a
  power law (`minima_power`) and one above approach 3's E (`minima_floor`); where the table knows
  its loss floor, the primary law refitted with E at that floor, at (n, d) (`approach3_at_floor`),
  and the minima's power law above that floor (`minima_known_floor`)."""
  profiles = (fit.get("chinchilla_approach2") or {}).get("profiles") or []
  budgets, losses = [p["flops"] for p in profiles], [p["loss_opt"] for p in profiles]
  section = fit[forms.get(forms.PRIMARY).section]
  floors = {"minima_power": 0.0, "minima_floor": section.get("E"),
            "minima_known_floor": fit.get("loss_floor")}
  out = {name: isoflop.minimum_loss_at(budgets, losses, budget, floor)
         for name, floor in floors.items() if floor is not None}
  if section.get("at_floor"):
    out["approach3_at_floor"] = law_loss(section["at_floor"], n, d)
  return out


def law_loss(params: dict, n: float, d: float) -> float:
  """The primary law with `params` (a fit.json section) at (n, d)."""
  form = forms.get(forms.PRIMARY)
  raw = form.to_raw({name: params[name] for name in form.params})
  with jax.enable_x64(True):
    logs = (jnp.log(jnp.array([float(n)])), jnp.log(jnp.array([float(d)])))
    return float(np.exp(np.asarray(form.loss(jnp.asarray(raw), logs)))[0])


def fitted_n(row, n_column: str) -> int:
  """A row's N as the fit counts it (its N column: total parameters, or non-embedding)."""
  return row.n_params if n_column == "n_params" else row.n_params_total


def shape_target(config, overrides, sweep_dir, budget: float, n_opt: float, n_column: str) -> float:
  """The model.target_params (non-embedding) whose shape, by the sweep's sizing, has the N
  (`n_column`) nearest n_opt: the embedding is nearly constant near one shape, so each try moves
  the target by the remaining difference."""
  run_overrides = plan.run_overrides_of(config, overrides, sweep_dir)
  target, tried = n_opt, {}
  for _ in range(SIZING_STEPS):
    try:
      row = plan.plan_run(config, config.sweep.devices, run_overrides, target, budget,
                          flops=config.sweep.flops).row
    except ConfigError:
      if not tried:
        raise
      break
    tried[target] = fitted_n(row, n_column)
    step = target + (n_opt - tried[target])
    if tried[target] == round(n_opt) or step <= 0 or step in tried:
      break
    target = step
  return min(tried, key=lambda t: abs(math.log(tried[t] / n_opt)))


def plan_verification(config, overrides, sweep_dir, budget: float, target: float, first: int):
  """The verification run's rows (its trunk first in a branch sweep), numbered from `first`."""
  sweep = config.sweep.copy_and_resolve_references()
  sweep.seeds, sweep.lrs = tuple(sweep.seeds[:1]), ()
  rows = plan.plan_points(config, sweep, overrides, sweep_dir, [(budget, target, None)])
  return [dataclasses.replace(row, row=first + i) for i, row in enumerate(rows)]


def _read(path: str):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def predict_tasks(results_path: str, row, previous: dict | None) -> dict:
  """The run's accuracy per task and law predicted from the sweep's table, before it trains:
  {"tasks": {task: {shots, ceiling, predictions: {law: {predicted_accuracy, interval}},
  measured_accuracy, errors}}}, or {"tasks_skipped": why}; {} when its runs scored no tasks. A rerun
  keeps the prediction verify.json holds for this run (`previous`): it was made before it trained."""
  if previous and previous.get("run_id") == row.run_id and previous.get("tasks"):
    return {"tasks": previous["tasks"]}
  point = {"n_params": row.n_params, "n_params_total": row.n_params_total, "tokens": row.tokens,
           "flops": row.flops, "flops_6nd": row.flops_6nd}
  try:
    predicted = task_laws.predict_tasks(results_path, point, TASK_BOOTSTRAP)
  except (DataError, OSError, RuntimeError, ValueError, np.linalg.LinAlgError) as error:
    print(f"verification: task accuracy not predicted: {error}")
    return {"tasks_skipped": str(error)}
  return {"tasks": {name: {**task, "measured_accuracy": None, "errors": None}
                    for name, task in predicted.items()}} if predicted else {}


def measure(sweep_dir: str, row, record: dict) -> dict:
  """`record` with the run's status, and its measured loss and relative error once completed (and
  each task's measured accuracy, with each law's error: predicted - measured)."""
  result = rundir.read_result(run_dir_of(sweep_dir, row)) or {}
  record = {**record, "status": result.get("status") or rundir.read_status(
      run_dir_of(sweep_dir, row))}
  loss = result.get("final_eval_loss")
  if result.get("status") == rundir.COMPLETED and isinstance(loss, (int, float)):
    record["measured_loss"] = float(loss)
    record["relative_error"] = (record["predicted_loss"] - loss) / loss
    record["other_errors"] = {k: None if v is None else (v - loss) / loss
                              for k, v in record.get("other_predictions", {}).items()}
    if record.get("tasks"):
      measured = result.get("tasks") or {}
      record["tasks"] = {name: {**task, **_task_measured(task, measured.get(name))}
                         for name, task in record["tasks"].items()}
  return record


def _task_measured(task: dict, measured: dict | None) -> dict:
  accuracy = (measured or {}).get("accuracy")
  if not isinstance(accuracy, (int, float)):
    return {"measured_accuracy": None, "errors": None}
  return {"measured_accuracy": float(accuracy),
          "errors": {law: p["predicted_accuracy"] - accuracy
                     for law, p in task["predictions"].items()}}


def write_task_predictions(out: str, record: dict) -> None:
  """The run's task predictions into DIR/analysis/tasks.json `predictions` (`run` its id, `task`,
  `verification`: true), replacing its earlier ones; nothing when the sweep wrote no tasks.json
  (fewer than 3 budgets: its task laws did not run)."""
  path = os.path.join(out, TASKS)
  laws = _read(path)
  if laws is None or not record.get("tasks"):
    return
  kept = [p for p in laws.get("predictions", []) if p.get("run") != record["run_id"]]
  flops = record.get("flops") or 6 * record["n"] * record["d"]
  laws["predictions"] = kept + [
      {"run": record["run_id"], "law": law, "task": name, "verification": True,
       "predicted_accuracy": p["predicted_accuracy"], "interval": p["interval"],
       "measured_accuracy": task["measured_accuracy"], "n": float(record["n"]),
       "d": float(record["d"]), "c": float(flops)}
      for name, task in record["tasks"].items() for law, p in task["predictions"].items()]
  files.write_json_atomic(path, laws)


def verify(config, overrides, sweep_dir: str, rows, results: dict, train):
  """The verification phase after the fit: returns (the sweep summary's additions, the
  executor's outcome or None). `train(rows)` runs rows through the sweep's executor."""
  budget = budget_of(config.sweep)
  if budget is None:
    return {}, None
  if results.get("not_finished") or not results.get(rundir.COMPLETED):
    print("verification: planned once every run of the sweep has a result")
    return {}, None
  out = os.path.join(sweep_dir, "analysis")
  fit, samples = _read(os.path.join(out, "fit.json")), _read(os.path.join(out, SAMPLES)) or {}
  n_opt, d_opt = optimum(fit, budget)
  n_column = fit["columns"]["n"]
  try:
    if not 0 < n_opt < math.inf:  # a law without an optimum (an exponent <= 0)
      raise ConfigError(f"the fitted law has no compute-optimal N (N_opt {n_opt:.3g})")
    target = shape_target(config, overrides, sweep_dir, budget, n_opt, n_column)
    more = plan_verification(config, overrides, sweep_dir, budget, target, len(rows))
  except ConfigError as error:  # N_opt outside what the sizing rule builds, or the device holds
    print(f"verification at C = {budget:.3g}: not planned: {error}")
    record = {"budget": budget, "n_opt": n_opt if math.isfinite(n_opt) else None,
              "skipped": str(error)}
    files.write_json_atomic(os.path.join(out, VERIFY), record)
    return {"verify": record}, None
  write_plan(sweep_dir, list(rows) + more)
  cost = branches.write_cost(sweep_dir, list(rows) + more)
  row = next(r for r in more if r.kind != TRUNK)
  n, d = fitted_n(row, n_column), row.tokens
  loss, interval = predict(fit, samples.get(forms.PRIMARY), n, d)
  record = {"budget": budget, "factor": config.sweep.verify_factor, "n": n, "d": d,
            "n_column": n_column, "n_params": row.n_params, "n_opt": n_opt, "d_opt": d_opt,
            "flops": row.flops, "predicted_loss": loss, "predicted_interval": interval,
            "other_predictions": other_predictions(fit, budget, n, d),
            "measured_loss": None, "relative_error": None, "run_id": row.run_id,
            "seed": row.seed, "n_bootstrap": len(next(iter(samples.get(forms.PRIMARY, {}).values()),
                                                      []))}
  path = os.path.join(out, VERIFY)
  table = os.path.join(sweep_dir, os.path.basename(fit.get("source") or tables.RESULTS))
  record.update(predict_tasks(table, row, _read(path)))  # the table the fit read, in sweep_dir
  record, outcome = measure(sweep_dir, row, record), None
  if record["measured_loss"] is None:
    files.write_json_atomic(path, record)  # the predictions, before the run trains
    write_task_predictions(out, record)
    if record.get("tasks"):
      print("verification: predicted accuracy (two_step law): " + ", ".join(
          f"{name} {task['predictions']['two_step']['predicted_accuracy']:.3f}"
          for name, task in record["tasks"].items()))
    print(f"verification: predicted loss {loss:.4f} at C = {budget:.3g} (N {n:.3g}, D {d:.3g}) "
          f"written to {path}; training {row.run_id}", flush=True)
    outcome = train(more)
    record = measure(sweep_dir, row, record)
  files.write_json_atomic(path, record)
  write_task_predictions(out, record)
  report.write({**fit, "verify": record}, out)
  for line in summary.verify_lines(record):
    print(line)
  return {"verify": record, "cost": cost}, outcome
