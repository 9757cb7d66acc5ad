"""Fitting the curve laws on some runs' curves and predicting other runs' whole curves.

A curve form (analysis/forms/, study CURVES: tissue, multipower, tissue_n) is fitted by the one
fitter (analysis/fitter.py) on the measured points after the warmup of the runs it is given (at
most MAX_POINTS per run, evenly spaced). It then predicts any schedule's curve from that
schedule alone: the law at every step after its warmup. A prediction's errors are relative,
|predicted - measured| / measured, over the run's measured points after the warmup; the final
loss is the law at the run's last measured point (at its last step when nothing was measured).
"""
import dataclasses

import numpy as np

from analysis import fitter
from analysis import forms
from analysis.curves import areas
from analysis.runs import DataError

MAX_POINTS = 400
NEEDS_SIZES = {"tissue_n": 2}  # a joint form across sizes needs curves of this many sizes
# ... and predicts other sizes from this many: L0 + B N^-beta has 3 parameters, so 2 sizes fix it
# only at those 2 (a fit of 2 sizes still shares the curve parameters between them).
IDENTIFIED_SIZES = 3


@dataclasses.dataclass(frozen=True)
class Prediction:
  run: str
  form: str
  steps: np.ndarray        # every step after the warmup
  loss: np.ndarray         # the law there
  final_step: int
  predicted_final_loss: float
  measured_final_loss: float | None
  curve_error_mean: float | None
  curve_error_max: float | None

  def to_dict(self) -> dict:
    return {"run": self.run, "form": self.form, "final_step": self.final_step,
            "predicted_final_loss": self.predicted_final_loss,
            "measured_final_loss": self.measured_final_loss,
            "curve_error_mean": self.curve_error_mean, "curve_error_max": self.curve_error_max}


def curve_forms() -> list:
  return forms.registered(forms.CURVES)


def node_size(histories) -> int:
  return max([areas.NODES] + [len(h.segments) for h in histories])


def fitted_points(curve, h: areas.History) -> np.ndarray:
  """Indices of the curve's measured points after the warmup (at most MAX_POINTS, evenly)."""
  index = np.flatnonzero((curve.steps > h.warmup + 1) & (curve.steps <= curve.total_steps))
  if len(index) > MAX_POINTS:
    index = index[np.round(np.linspace(0, len(index) - 1, MAX_POINTS)).astype(int)]
  return index


def inputs_of(form, h: areas.History, steps, n, size: int) -> tuple:
  feats = areas.features(h, steps, n, size)
  return tuple(feats[name] for name in form.inputs)


def usable(form, curves) -> str | None:
  """Why `form` cannot be fitted on these curves (None: it can)."""
  if "n" in form.inputs:
    if any(c.n is None for c in curves):
      return f"{form.name}: a fitted run has no n (parameters)"
    sizes = len({c.n for c in curves})
    if sizes < NEEDS_SIZES.get(form.name, 1):
      return (f"{form.name}: the fitted runs have {sizes} model size(s); it needs "
              f"{NEEDS_SIZES[form.name]}")
  elif len({c.n for c in curves}) > 1:
    return (f"{form.name}: fitted on one model size; the fitted runs have "
            f"{len({c.n for c in curves})}")
  return None


def fit_form(form, curves, histories, starts=None) -> fitter.LawFit:
  """The form fitted on the curves' measured points after their warmups (from the form's grid,
  or `starts`: raw rows)."""
  size = node_size(histories)
  parts, losses = [], []
  for curve, h in zip(curves, histories):
    index = fitted_points(curve, h)
    parts.append(inputs_of(form, h, curve.steps[index], curve.n, size))
    losses.append(curve.loss[index])
  loss = np.concatenate(losses)
  if len(loss) <= len(form.params):
    raise DataError(f"{form.name}: {len(loss)} measured points after the warmup in the fitted "
                    f"runs; it has {len(form.params)} parameters")
  inputs = tuple(np.concatenate([p[k] for p in parts]) for k in range(len(form.inputs)))
  return fitter.fit(form, inputs, loss, starts)


def predict(form, law_fit: fitter.LawFit, curve, h: areas.History, size: int) -> Prediction:
  """The law's curve of `curve`'s schedule, and its errors against the measured points."""
  steps = np.arange(h.warmup + 2, curve.total_steps + 1)
  loss = np.exp(fitter.predict_log(form, law_fit.raw, inputs_of(form, h, steps, curve.n, size)))
  index = fitted_points(curve, h) if curve.measured else np.array([], int)
  if len(index):
    measured = curve.loss[index]
    at = np.exp(fitter.predict_log(form, law_fit.raw,
                                   inputs_of(form, h, curve.steps[index], curve.n, size)))
    error = np.abs(at - measured) / measured
    return Prediction(curve.run, form.name, steps, loss, int(curve.steps[index[-1]]),
                      float(at[-1]), float(measured[-1]), float(error.mean()), float(error.max()))
  return Prediction(curve.run, form.name, steps, loss, int(curve.total_steps), float(loss[-1]),
                    None, None, None)


def best_form(predictions: list[Prediction]) -> tuple[str | None, dict]:
  """The form with the lowest mean held-out curve_error_mean, and that mean per form."""
  by_form: dict = {}
  for p in predictions:
    if p.curve_error_mean is not None and np.isfinite(p.curve_error_mean):
      by_form.setdefault(p.form, []).append(p.curve_error_mean)
  means = {form: float(np.mean(v)) for form, v in by_form.items()}
  return (min(means, key=means.get) if means else None), means


def _not_predicted(form, curve, fitted) -> str | None:
  if "n" in form.inputs:
    if curve.n is None:
      return f"{form.name}: run {curve.run!r} has no n"
    sizes = {c.n for c in fitted}
    if len(sizes) < IDENTIFIED_SIZES and curve.n not in sizes:
      return (f"{form.name}: run {curve.run!r} has n = {curve.n:.4g}, not a fitted size; with "
              f"{len(sizes)} fitted sizes the size term is known only at those sizes")
    return None
  n = fitted[0].n
  if curve.n is not None and n is not None and curve.n != n:
    return (f"{form.name}: run {curve.run!r} has n = {curve.n:.4g}, the fitted runs {n:.4g} "
            "(a one-size law)")
  return None


def run(curves, fit_runs, predict_runs, form_names=None) -> dict:
  """Fits every usable curve form on `fit_runs`, predicts `predict_runs`: the curves.json record
  (plus `_predictions`, the Prediction objects, for the plot)."""
  by_name = {c.run: c for c in curves}
  histories = {c.run: areas.history(c.lr) for c in curves}
  size = node_size(histories.values())
  fitted = [by_name[r] for r in fit_runs]
  out = {"forms": {}, "skipped": {}, "predictions": [], "_predictions": []}
  for form in curve_forms():
    if form_names and form.name not in form_names:
      continue
    reason = usable(form, fitted)
    if reason:
      out["skipped"][form.name] = reason
      continue
    law_fit = fit_form(form, fitted, [histories[c.run] for c in fitted])
    fit_errors = [predict(form, law_fit, c, histories[c.run], size) for c in fitted]
    out["forms"][form.name] = {
        "formula": form.formula, "fitted_on": list(fit_runs), **law_fit.to_dict(),
        "fit_error_mean": float(np.mean([p.curve_error_mean for p in fit_errors])),
        "fit_error_max": float(np.max([p.curve_error_max for p in fit_errors]))}
    for name in predict_runs:
      curve = by_name[name]
      reason = _not_predicted(form, curve, fitted)
      if reason:
        out["skipped"][f"{form.name}:{name}"] = reason
        continue
      p = predict(form, law_fit, curve, histories[name], size)
      out["predictions"].append(p.to_dict())
      out["_predictions"].append(p)
  out["best_form"], out["held_out_error_mean"] = best_form(out["_predictions"])
  out["best_form_by"] = ("the lowest mean over the predicted runs with measured curves of "
                         "curve_error_mean")
  return out
