"""Task-scaling laws: the largest budgets' task accuracy predicted from the smaller budgets.

  python -m analysis.tasks --results CSV --task-col ACC --task-loss-col LOSS [--n-col N]
      [--d-col D] [--c-col C] [--budget-col B] [--holdout-largest K] [--bootstrap S] --out DIR

Any table of runs (a sweep's results.csv: e.g. ACC = tasks.topic_4shot.accuracy, LOSS =
tasks.topic_4shot.gold_loss). The runs of the K largest budgets are held out; each law is fitted
on the others and predicts the held-out runs' accuracy:

  two_step       Bhagia et al. 2024 (OLMo's task ladder): the task loss L(N, D) = E + A/N^alpha +
                 B/D^beta (the Chinchilla form, fitted by analysis/fitter.py), then the accuracy
                 from the task loss by a sigmoid, Acc(L) = b + a / (1 + exp(k (L - L0))).
  power_compute  a direct power law of the error in compute: 1 - Acc = A C^-alpha.
  loss_to_error  Gadre et al. 2024: the error from the task loss, Err(L) = eps - k exp(-gamma L),
                 with L from two_step's law of (N, D).

Intervals: 95% over S bootstrap resamples of the fitted runs, every law refitted on each. With
--runs DIR (the runs' directories, DIR/RUN_ID), the noise diagnostic of Bhagia et al.: the
standard deviation of each run's accuracy over its last 3 evaluations (tasks.json `noise`:
`evaluations`, `runs`, `median_sd`, `max_sd`).
DIR/tasks.json: `laws` ({law: parameters}), `predictions` (per held-out run and law: `run`,
`law`, `predicted_accuracy`, `interval`, `measured_accuracy`, `n`, `d`, `c`), `fitted_runs`,
`held_out_budgets`, `columns`; on a table of eval.tasks columns (tasks.NAME.FIGURE) of two shot
counts or more, DIR/tasks.png (`plot`): accuracy against compute per shot count with its Bayes
ceiling, and the few-shot gain against N. Exit 2 with one line for a table it cannot read.
"""
import argparse
import csv
import json
import os
import sys
import warnings

import numpy as np
from scipy import optimize

from analysis import fitter
from analysis.forms import chinchilla
from analysis.runs import DataError
from core import files, rundir

LAWS = ("two_step", "power_compute", "loss_to_error")
BOOTSTRAP_EVALUATIONS = 200  # least-squares evaluations per law and resample (the point fit: 2000)


def read_table(path, task_col, loss_col, n_col, d_col, c_col, budget_col) -> dict:
  """{name: float array} of the completed rows; DataError naming the file, line and column."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.DictReader(f))
  except OSError as error:
    raise DataError(f"{path}: {error.strerror}") from None
  header = rows[0].keys() if rows else []
  pick = lambda given, *names: given or next((n for n in names if n in header), names[-1])
  columns = {"acc": task_col, "loss": loss_col, "n": pick(n_col, "n_params_total", "n_params"),
             "d": pick(d_col, "tokens"), "c": pick(c_col, "flops"), "budget": pick(budget_col,
                                                                                   "budget")}
  for key in ("acc", "loss", "n", "d"):
    if columns[key] not in header:
      raise DataError(f"{path}: no column {columns[key]!r} (--{key.replace('acc', 'task')}-col)")
  table = {key: [] for key in columns} | {"run": []}
  for line, row in enumerate(rows, start=2):
    if row.get("status", "completed") != "completed":
      continue
    for key, column in columns.items():
      cell = (row.get(column) or "").strip()
      if key in ("c", "budget") and not cell:
        table[key].append(np.nan)
        continue
      try:
        value = float(cell)
      except ValueError:
        raise DataError(f"{path}, line {line}, column {column!r}: {cell!r} is not a number") from None
      if key in ("n", "d", "loss") and not value > 0 or not np.isfinite(value):
        raise DataError(f"{path}, line {line}, column {column!r}: {cell!r} must be a positive number")
      table[key].append(value)
    table["run"].append(row.get("run_id") or f"line {line}")
  out = {key: np.asarray(values, np.float64 if key != "run" else object)
         for key, values in table.items()}
  out["c"] = np.where(np.isfinite(out["c"]), out["c"], 6 * out["n"] * out["d"])
  out["budget"] = np.where(np.isfinite(out["budget"]), out["budget"], out["c"])
  out["columns"] = columns
  return out


def sigmoid(loss, a, k, l0, b):
  return b + a / (1 + np.exp(np.clip(k * (loss - l0), -50, 50)))


def gadre(loss, eps, k, gamma):
  return eps - k * np.exp(-gamma * loss)


def _curve(fn, x, y, p0, bounds, evaluations):
  """Least squares of fn(x, *p) to y from p0 within bounds, stopped after `evaluations` (a flat
  table leaves a sigmoid's slope free: it is bounded, and the best point found is kept)."""
  p0 = np.clip(np.asarray(p0, np.float64), *(np.asarray(b, np.float64) for b in bounds))
  with warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore")
    return optimize.least_squares(lambda p: fn(x, *p) - y, p0, bounds=bounds,
                                  max_nfev=evaluations).x


def fit_laws(n, d, c, loss, acc, chinchilla_fit=None, evaluations=2000) -> dict:
  """{law: parameters} fitted on these runs (chinchilla_fit: step 1's law, else fitted here)."""
  law = chinchilla_fit or fitter.fit(chinchilla.FORM, (n, d), loss).params
  spread = max(float(np.std(loss)), 1e-3)
  two_step = _curve(sigmoid, loss, acc, (max(np.ptp(acc), 1e-3), 1 / spread, np.median(loss),
                                         np.min(acc)),
                    ([0, 0, -np.inf, 0], [1, 100 / spread, np.inf, 1]), evaluations)
  error = np.clip(1 - acc, 1e-6, None)
  slope, intercept = np.polyfit(np.log(c), np.log(error), 1)
  loss_to_error = _curve(gadre, loss, 1 - acc, (float(np.max(error)), 1.0, 0.1),
                         ([0, 0, 0], [1, np.inf, 100 / spread]), evaluations)
  return {"two_step": {"loss_law": law, **dict(zip(("a", "k", "L0", "b"), map(float, two_step)))},
          "power_compute": {"A": float(np.exp(intercept)), "alpha": float(-slope)},
          "loss_to_error": {"loss_law": law, **dict(zip(("eps", "k", "gamma"),
                                                        map(float, loss_to_error)))}}


def predict(laws: dict, n, d, c) -> dict:
  """{law: predicted accuracy} at (n, d, c)."""
  loss = fitter.predict(chinchilla.FORM, laws["two_step"]["loss_law"], (n, d))
  t, p, g = laws["two_step"], laws["power_compute"], laws["loss_to_error"]
  return {"two_step": sigmoid(loss, t["a"], t["k"], t["L0"], t["b"]),
          "power_compute": 1 - p["A"] * np.asarray(c) ** -p["alpha"],
          "loss_to_error": 1 - gadre(loss, g["eps"], g["k"], g["gamma"])}


def _fit_and_draw(fit_rows: dict, n, d, c, bootstrap: int, seed: int):
  """Every law fitted on fit_rows ({n, d, c, loss, acc}: arrays), then refitted on `bootstrap`
  resamples of them: (laws, {law: point predictions at (n, d, c)}, {law: [resampled predictions]})."""
  inputs = (fit_rows["n"], fit_rows["d"])
  law_fit = fitter.fit(chinchilla.FORM, inputs, fit_rows["loss"])
  laws = fit_laws(**fit_rows, chinchilla_fit=law_fit.params)
  point = predict(laws, n, d, c)
  rng = np.random.default_rng(seed)
  samples = {law: [] for law in LAWS}
  if bootstrap:
    counts = np.stack([np.bincount(rng.integers(0, len(fit_rows["n"]), len(fit_rows["n"])),
                                   minlength=len(fit_rows["n"])) for _ in range(bootstrap)])
    refits = fitter.refit_samples(chinchilla.FORM, inputs, fit_rows["loss"], law_fit, counts)
    for i, weights in enumerate(counts):
      law = {name: float(refits[name][i]) for name in chinchilla.FORM.params}
      if not all(np.isfinite(list(law.values()))):
        continue
      rows = {key: np.repeat(value, weights) for key, value in fit_rows.items()}
      try:
        drawn = predict(fit_laws(**rows, chinchilla_fit=law, evaluations=BOOTSTRAP_EVALUATIONS),
                        n, d, c)
      except (RuntimeError, ValueError, np.linalg.LinAlgError):
        continue  # a resample a law cannot be fitted to (too few distinct points)
      for name in LAWS:
        samples[name].append(np.atleast_1d(drawn[name]))
  return laws, point, samples


def _interval(drawn, j: int):
  """The 95% interval of the j-th prediction over the resamples; None without resamples."""
  if not drawn:
    return None
  drawn = np.asarray(drawn)
  return [float(np.percentile(drawn[:, j], 2.5)), float(np.percentile(drawn[:, j], 97.5))]


def analyse(table: dict, holdout_largest: int = 1, bootstrap: int = 100, seed: int = 0) -> dict:
  budgets = np.unique(table["budget"])
  if holdout_largest < 1 or len(budgets) <= holdout_largest + 1:
    raise DataError(f"--holdout-largest {holdout_largest} leaves fewer than 2 budgets to fit of "
                    f"the table's {len(budgets)}")
  held_budgets = budgets[-holdout_largest:]
  held = np.isin(table["budget"], held_budgets)
  fit_rows = {key: table[key][~held] for key in ("n", "d", "c", "loss", "acc")}
  laws, point, samples = _fit_and_draw(fit_rows, table["n"][held], table["d"][held],
                                       table["c"][held], bootstrap, seed)
  predictions = []
  for name in LAWS:
    for j, row in enumerate(np.flatnonzero(held)):
      predictions.append({"run": table["run"][row], "law": name,
                          "predicted_accuracy": float(point[name][j]),
                          "interval": _interval(samples[name], j),
                          "measured_accuracy": float(table["acc"][row]),
                          "n": float(table["n"][row]), "d": float(table["d"][row]),
                          "c": float(table["c"][row])})
  return {"laws": laws, "predictions": predictions, "fitted_runs": int((~held).sum()),
          "held_out_budgets": [float(b) for b in held_budgets], "bootstrap": bootstrap,
          "bootstrap_kept": {name: len(samples[name]) for name in LAWS},
          "columns": table["columns"]}


def predict_run(table: dict, point: dict, bootstrap: int = 100, seed: int = 0) -> dict:
  """Every law fitted on all of the table's runs, predicting one run outside it (a sweep's
  verification run) from its values in the table's columns (`point`: {column: value}, e.g.
  n_params_total, tokens, flops; C defaults to 6ND): {law: {predicted_accuracy, interval}}."""
  columns = table["columns"]
  if columns["n"] not in point or columns["d"] not in point:
    raise DataError(f"the run to predict has no {columns['n']!r} or {columns['d']!r}")
  if len(np.unique(table["budget"])) < 2:
    raise DataError("the table has fewer than 2 budgets to fit")
  n, d = float(point[columns["n"]]), float(point[columns["d"]])
  c = float(point.get(columns["c"]) or 6 * n * d)
  fit_rows = {key: table[key] for key in ("n", "d", "c", "loss", "acc")}
  _, at, samples = _fit_and_draw(fit_rows, np.array([n]), np.array([d]), np.array([c]),
                                 bootstrap, seed)
  return {law: {"predicted_accuracy": float(np.atleast_1d(at[law])[0]),
                "interval": _interval(samples[law], 0), "bootstrap_kept": len(samples[law])}
          for law in LAWS}


def task_columns(path: str) -> dict:
  """{task: {figure: float array}} of a table's tasks.NAME.FIGURE columns (its completed rows, in
  read_table's order; a results.csv of runs that scored eval.tasks), {} when it has none."""
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = [row for row in csv.DictReader(f) if row.get("status", "completed") == "completed"]
  names = sorted({key.split(".")[1] for key in (rows[0] if rows else {})
                  if key.startswith("tasks.") and key.endswith(".accuracy")})
  number = lambda row, key: float(row.get(key) or "nan")
  out = {name: {figure: np.array([number(row, f"tasks.{name}.{figure}") for row in rows])
                for figure in ("shots", "accuracy", "ceiling")} for name in names}
  return out


def predict_tasks(path: str, point: dict, bootstrap: int = 20) -> dict:
  """Each task of a table of eval.tasks columns (tasks.NAME.accuracy and .gold_loss) predicted
  at one run outside it (predict_run's `point`): {task: {shots, ceiling (the table's mean),
  predictions: {law: {predicted_accuracy, interval, bootstrap_kept}}}}; {} without such columns."""
  out = {}
  for name, figures in task_columns(path).items():
    table = read_table(path, f"tasks.{name}.accuracy", f"tasks.{name}.gold_loss", "", "", "", "")
    ceiling = figures["ceiling"][np.isfinite(figures["ceiling"])]
    out[name] = {"shots": int(figures["shots"][0]),
                 "ceiling": float(np.mean(ceiling)) if ceiling.size else None,
                 "predictions": predict_run(table, point, bootstrap)}
  return out


def plot(columns: dict, n, c, path: str) -> None:
  """Accuracy against compute per shot count, each with its Bayes ceiling, and the few-shot gain
  (the most shots' accuracy minus the fewest's) against N."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = sorted(columns, key=lambda name: columns[name]["shots"][0])
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  for i, name in enumerate(names):
    left.scatter(c, columns[name]["accuracy"], s=12, color=f"C{i}",
                 label=f"{int(columns[name]['shots'][0])}-shot")
    left.axhline(np.nanmean(columns[name]["ceiling"]), color=f"C{i}", ls="--", lw=1,
                 label=f"{int(columns[name]['shots'][0])}-shot ceiling")
  left.set(xscale="log", xlabel="C (FLOPs)", ylabel="accuracy", ylim=(0, 1.05),
           title="task accuracy against compute")
  left.legend(fontsize=7)
  gain = columns[names[-1]]["accuracy"] - columns[names[0]]["accuracy"]
  right.scatter(n, gain, s=12)
  right.axhline(0, color="grey", lw=0.8)
  right.set(xscale="log", xlabel="N", ylabel=f"{names[-1]} - {names[0]} accuracy",
            title="few-shot gain against N")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def noise(runs_dir: str, run_ids, task_col: str, last: int = 3) -> dict | None:
  """Bhagia et al.'s noise diagnostic: the standard deviation of a run's accuracy over its `last`
  evaluations (metrics.jsonl rows with `tasks`), over the runs of runs_dir/RUN_ID; None when no
  run has that many."""
  parts = task_col.split(".")
  if len(parts) != 3 or parts[0] != "tasks":
    return None
  spreads = []
  for run_id in run_ids:
    rows = [row["tasks"][parts[1]][parts[2]] for row in rundir.read_metrics(
        os.path.join(runs_dir, str(run_id))) if parts[1] in row.get("tasks", {})]
    if len(rows) >= last:
      spreads.append(float(np.std(rows[-last:], ddof=1)))
  if not spreads:
    return None
  return {"evaluations": last, "runs": len(spreads), "median_sd": float(np.median(spreads)),
          "max_sd": float(np.max(spreads))}


def summary_line(result: dict, task_col: str, path: str) -> str:
  """One line: each law's mean predicted accuracy over the held-out runs against the measured."""
  held = [p for p in result["predictions"] if p["law"] == LAWS[0]]
  measured = np.mean([p["measured_accuracy"] for p in held])
  laws = ", ".join(f"{law} {np.mean([p['predicted_accuracy'] for p in result['predictions'] if p['law'] == law]):.3f}"
                   for law in LAWS)
  spread = result.get("noise")
  spread = f"; median sd over the last 3 evaluations {spread['median_sd']:.3f}" if spread else ""
  return (f"task laws: {task_col} of the {len(held)} runs at the largest budget "
          f"{result['held_out_budgets'][-1]:.3g}, predicted from {result['fitted_runs']}: {laws}; "
          f"measured {measured:.3f}{spread} ({path})")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--results", required=True)
  parser.add_argument("--task-col", required=True, help="the accuracy column")
  parser.add_argument("--task-loss-col", required=True, help="the task loss column")
  parser.add_argument("--n-col", default="", help="default n_params_total, else n_params")
  parser.add_argument("--d-col", default="", help="default tokens")
  parser.add_argument("--c-col", default="", help="default flops, else 6ND")
  parser.add_argument("--budget-col", default="", help="runs of one budget; default budget, else C")
  parser.add_argument("--holdout-largest", type=int, default=1)
  parser.add_argument("--bootstrap", type=int, default=100)
  parser.add_argument("--runs", default="", help="the runs' directories (DIR/RUN_ID, a sweep's "
                      "DIR/runs): the spread of each one's last evaluations")
  parser.add_argument("--out", required=True)
  parser.add_argument("--quiet", action="store_true", help="print one summary line")
  args = parser.parse_args(argv)
  try:
    table = read_table(args.results, args.task_col, args.task_loss_col, args.n_col, args.d_col,
                       args.c_col, args.budget_col)
    result = analyse(table, args.holdout_largest, args.bootstrap)
  except DataError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  os.makedirs(args.out, exist_ok=True)
  if args.runs:
    result["noise"] = noise(args.runs, table["run"], args.task_col)
  columns = task_columns(args.results)
  if len(columns) > 1:  # a table of eval.tasks figures with two shot counts or more
    try:
      plot(columns, table["n"], table["c"], os.path.join(args.out, "tasks.png"))
      result["plot"] = "tasks.png"
    except Exception as error:  # pylint: disable=broad-except  (a plot never fails the fit)
      result["warnings"] = [f"the plot failed: {type(error).__name__}: {error}"]
  path = os.path.join(args.out, "tasks.json")
  files.write_json_atomic(path, result)
  if args.quiet:
    print(summary_line(result, args.task_col, path))
    return 0
  for p in result["predictions"]:
    interval = p["interval"] and f" [{p['interval'][0]:.3f}, {p['interval'][1]:.3f}]"
    print(f"{p['run']}  {p['law']:<13} predicted {p['predicted_accuracy']:.3f}{interval or ''}  "
          f"measured {p['measured_accuracy']:.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
