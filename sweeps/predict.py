"""Predicted branches (`sweep.predict_branches`): a branch sweep that trains every trunk but only
some cooldowns, and predicts the other branches' final losses from a curve law (analysis/curves).

Per trunk family (one size, seed and lr), the one-size curve forms (tissue, multipower) are fitted
on the trunk's curve and on the cooldowns of the family's shortest and longest branches (their
points after the branch step: before it, a branch's rows are the trunk's). Two cooldown lengths
pin the annealing term; fitted on the shortest alone, the law under-predicts the drop of longer
cooldowns (docs/results/2026-12-04-predicted-branches.md). Each fitted law then predicts the
family's other branches from their schedules alone: the predicted rows (`kind = predicted`, never
trained) and the held-out ones (trained as well, so the prediction's error is measured). A
family of one or two branches trains them all. The form
whose held-out final losses err least (tissue when nothing is held out) gives the predicted rows
their `final_eval_loss` in results.csv, with `status = predicted`; `python -m analysis --predicted`
fits them beside the trained ones and says so. DIR/analysis/curves.json holds every family's fits
and every prediction. On a sweep whose branches all trained, the same function measures how well
the law would have predicted them (benchmarks/predicted_branches.py).
"""
import dataclasses
import os

import numpy as np

from analysis.runs import DataError
from core import files, rundir
from sweeps import tables
from sweeps.processes import run_dir_of
from sweeps.rows import PREDICTED

CURVES = "curves.json"
LOSS = "eval_loss"  # what the sweep's analysis fits (final_eval_loss), evaluated on fixed tokens
FORMS = ("tissue", "multipower")  # fitted on one size (a family is one size)
DEFAULT_FORM = "tissue"  # when no branch is held out to choose by


def families_of(rows) -> dict:
  """trunk id -> (its fitted branches: the shortest and the longest, its other branches)."""
  families: dict = {}
  for row in rows:
    if row.trunk:
      families.setdefault(row.trunk, []).append(row)
  out = {}
  for trunk, members in families.items():
    members = sorted(members, key=lambda r: (r.branch_step, r.run_id))
    ends = [members[0], members[-1]] if len(members) > 1 else members
    out[trunk] = (ends, [r for r in members if r not in ends])
  return out


def choose(rows, held_out: int) -> list:
  """The branch rows with those to predict marked `kind = PREDICTED`: in every family all but its
  shortest and longest branch, less `held_out` of them (spread evenly over the candidates sorted
  by budget, size and seed) that train to measure the prediction's error."""
  candidates = sorted((row for _, others in families_of(rows).values() for row in others),
                      key=lambda r: (r.budget or 0.0, r.n_params, r.seed, r.run_id))
  keep = set()
  if held_out and candidates:
    keep = {candidates[int(i)].run_id for i in
            np.unique(np.round(np.linspace(0, len(candidates) - 1, min(held_out, len(candidates)))))}
  predicted = {row.run_id for row in candidates} - keep
  return [dataclasses.replace(row, kind=PREDICTED) if row.run_id in predicted else row
          for row in rows]


def _cooldown(curve, branch_step: int):
  """The curve's points after the branch step (before it they are its trunk's rows)."""
  keep = curve.steps > branch_step
  return dataclasses.replace(curve, steps=curve.steps[keep], loss=curve.loss[keep])


def predict(sweep_dir: str, rows, config, forms=FORMS, loss_key: str = LOSS) -> dict:
  """Fits the forms per family and predicts its other branches: the curves.json record, with
  `results`, the results.csv rows of the predicted runs (status predicted)."""
  from analysis import forms as forms_lib  # pylint: disable=g-import-not-at-top (JAX)
  from analysis.curves import areas, data, fit  # pylint: disable=g-import-not-at-top
  from sweeps import plan as plan_lib  # pylint: disable=g-import-not-at-top (imports training)
  by_id = {row.run_id: row for row in rows}
  record = {"loss": loss_key, "forms": list(forms), "families": {}, "predictions": [],
            "not_predicted": {}}
  siblings = {}
  for trunk_id, (ends, others) in sorted(families_of(rows).items()):
    if not others:
      continue
    try:
      fitted = [data.from_run_dir(run_dir_of(sweep_dir, by_id[trunk_id]), loss_key)]
      fitted += [_cooldown(data.from_run_dir(run_dir_of(sweep_dir, r), loss_key), r.branch_step)
                 for r in ends]
      missing = [c.run for c in fitted if not c.measured]
      reason = f"{', '.join(missing)}: no measured {loss_key} yet" if missing else None
    except DataError as e:
      reason = str(e)
    if reason:
      for r in others:
        record["not_predicted"][r.run_id] = reason
      continue
    histories = [areas.history(c.lr) for c in fitted]
    siblings[trunk_id] = tables.flatten(rundir.read_result(run_dir_of(sweep_dir, ends[-1])) or {})
    targets = []
    for r in others:
      if r.kind == PREDICTED:
        lr = areas.lr_of_config(plan_lib.resolved_config(config, r))
        targets.append((r, data.Curve(r.run_id, float(r.n_params_total), lr, np.array([], int),
                                      np.array([]), None)))
      else:
        measured = data.from_run_dir(run_dir_of(sweep_dir, r), loss_key)
        targets.append((r, _cooldown(dataclasses.replace(measured, run=r.run_id), r.branch_step)))
    size = fit.node_size(histories + [areas.history(c.lr) for _, c in targets])
    family = record["families"][trunk_id] = {"fitted_on": [trunk_id] + [r.run_id for r in ends],
                                             "forms": {}}
    for name in forms:
      form = forms_lib.get(name)
      try:
        law = fit.fit_form(form, fitted, histories)
      except DataError as e:
        family["forms"][name] = {"error": str(e)}
        continue
      family["forms"][name] = law.to_dict()
      for r, curve in targets:
        # The law at the run's last measured step; at its last step where it was not trained.
        p = fit.predict(form, law, curve, areas.history(curve.lr), size)
        if not (np.isfinite(p.predicted_final_loss) and p.predicted_final_loss > 0):
          continue
        record["predictions"].append({
            **p.to_dict(), "trunk": trunk_id, "budget": r.budget, "n_params": r.n_params,
            "seed": r.seed, "trained": r.kind != PREDICTED,
            "final_error": (None if p.measured_final_loss is None else
                            (p.predicted_final_loss - p.measured_final_loss)
                            / p.measured_final_loss)})
  record.update(_chosen(record["predictions"]))
  # Each predicted row takes the chosen form's prediction, else the first form that gave one.
  order = [record["used_form"]] + [f for f in forms if f != record["used_form"]]
  best: dict = {}
  for p in sorted((p for p in record["predictions"] if not p["trained"]),
                  key=lambda p: order.index(p["form"])):
    best.setdefault(p["run"], p)
  record["results"] = [_result(by_id[run], p, siblings[p["trunk"]]) for run, p in best.items()]
  for row in rows:
    if row.kind == PREDICTED and row.run_id not in best:
      record["not_predicted"].setdefault(row.run_id, "no curve form could be fitted on its family")
  return record


def _chosen(predictions) -> dict:
  """The form the predicted rows take: the lowest mean |final error| over held-out branches."""
  errors: dict = {}
  for p in predictions:
    if p["final_error"] is not None and np.isfinite(p["final_error"]):
      errors.setdefault(p["form"], []).append(abs(p["final_error"]))
  means = {form: float(np.mean(v)) for form, v in errors.items()}
  return {"held_out_final_error_mean": means,
          "held_out_final_error_max": {form: float(np.max(v)) for form, v in errors.items()},
          "used_form": min(means, key=means.get) if means else DEFAULT_FORM,
          "used_form_by": ("the lowest mean |predicted - measured| / measured final loss over the "
                           "held-out branches" if means else
                           f"no branch is held out: {DEFAULT_FORM}, the default")}


# What a predicted row shares with the trained branches of its family (one shape, one data source).
SHARED = ("family", "d_ff", "d_model", "n_heads", "n_layer", "seq_len", "objective",
          "flops_per_token", "batch_size", "loss_floor")


def _result(row, prediction: dict, sibling: dict) -> dict:
  """A predicted run's results.csv row: its plan row's numbers, the predicted loss, and the
  shape and data columns of `sibling` (a trained branch of its family's results.csv row)."""
  shared = {k: v for k, v in sibling.items() if k in SHARED or k.startswith("data.")}
  return {**shared, "run_id": row.run_id, "budget": row.budget, "n_planned": row.n_params,
          "tokens_planned": row.tokens, "status": rundir.PREDICTED, "seed": row.seed,
          "n_params": row.n_params, "n_params_total": row.n_params_total, "tokens": row.tokens,
          "flops": row.flops, "flops_6nd": row.flops_6nd, "lr": row.lr, "steps": row.steps,
          "trunk": row.trunk, "branch_step": row.branch_step,
          "final_eval_loss": prediction["predicted_final_loss"],
          "predicted_by": prediction["form"]}


def write(sweep_dir: str, record: dict) -> str:
  """DIR/analysis/curves.json (without the results rows, which go to results.csv)."""
  path = os.path.join(sweep_dir, "analysis", CURVES)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  files.write_json_atomic(path, {k: v for k, v in record.items() if k != "results"})
  return path


def summary_line(record: dict) -> str:
  predicted = len(record["results"])
  shown = ", ".join(f"{f} {100 * e:.2f}%" for f, e in
                    record["held_out_final_error_mean"].items()) or "none held out"
  return (f"curve law: {predicted} branches predicted by {record['used_form']} (not trained); "
          f"held-out final-loss error mean: {shown}")


def add_predictions(sweep_dir: str, config, results: list[dict]) -> list[dict]:
  """The sweep's results with its predicted branches' rows added (results.csv rewritten with
  them), after writing DIR/analysis/curves.json and printing one line."""
  from sweeps.rows import read_plan  # pylint: disable=g-import-not-at-top
  record = predict(sweep_dir, read_plan(sweep_dir), config)
  path = write(sweep_dir, record)
  print(f"{summary_line(record)} ({path})")
  for run_id, reason in sorted(record["not_predicted"].items()):
    print(f"  not predicted: {run_id}: {reason}")
  results = [r for r in results if r.get("status") != rundir.PREDICTED] + record["results"]
  tables.write_results(sweep_dir, tables.RESULTS, results)
  return results
