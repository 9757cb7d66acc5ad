"""The whole analysis of one table of runs: every fit, the bootstrap, the verdict, the frontier,
plots, reports.

`run_analysis` is what `python -m analysis` and sweep.py call; it returns the fit.json contents
(docs/design.md lists the contract fields). Bad input raises DataError before anything is written.
Warnings raised by the fitters (a skipped budget, an unreadable curve line) are collected into
fit.json and the report as well as shown; so are the optional parts that fail (a figure, W&B).
"""
import json
import os
import warnings

import numpy as np

from analysis import bootstrap
from analysis import cooled
from analysis import envelope as curves_lib
from analysis import diagnostics
from analysis import fitter
from analysis import forms
from analysis import frontier
from analysis import isoflop
from analysis import kaplan
from analysis import laws
from analysis import plots
from analysis import report
from analysis import runs as runs_lib
from analysis import summary
from analysis import wandb_report
from analysis.runs import AnalysisWarning
from core import files

SAMPLES = "samples.json"  # {primary form: {parameter: [one value per bootstrap resample]}}


def _curves_dir(results: str, curves: str | None) -> str | None:
  if curves:
    if not os.path.isdir(curves):
      raise runs_lib.DataError(f"--curves {curves} is not a directory")
    return curves
  beside = os.path.join(os.path.dirname(os.path.abspath(results)), "runs")
  return beside if os.path.isdir(beside) else None


def _law_section(form, law_fit, samples, convention) -> dict:
  """A form's fit.json section: its LawFit, intervals, and frontier exponents in the table's C."""
  section = law_fit.to_dict()
  if samples is not None:
    section["ci95"] = {k: bootstrap.interval(v) for k, v in samples.items()}
    section["n_bootstrap_ok"] = int(np.isfinite(samples[form.params[0]]).sum())
  if form.name == forms.PRIMARY:  # N_opt ∝ C^a, D_opt ∝ C^b with C in the table's convention
    a_c, b_c = laws.frontier_exponents_at(law_fit.alpha, law_fit.beta, convention["gamma"])
    section["frontier_exponents"] = {"a": a_c, "b": b_c, "flops": convention["label"]}
  return section


def _at_floor(form, runs, convention) -> dict | None:
  """The form refitted with E fixed at the table's known loss floor (the synthetic source's exact
  Bayes loss, which every N and D approaches): a second prediction beside the free fit's, whose E
  absorbs the curvature of a short range of budgets (sweeps/verify.py records both)."""
  if not form.floor or runs.loss_floor is None or not runs.loss_floor > 0:
    return None
  law_fit = fitter.fit(form, runs.inputs(form.inputs), runs.loss,
                       fixed={form.floor: float(np.log(runs.loss_floor))})
  return _law_section(form, law_fit, None, convention)


def _power_law_section(fit: dict, samples) -> dict:
  section = dict(fit)
  if samples is not None:
    section["ci95"] = {k: bootstrap.interval(samples[k]) for k in ("a", "b")}
    section["n_bootstrap_ok"] = int(np.isfinite(samples["a"]).sum())
  return section


def _tokens_per_param_ci(samples, optimum, flops):
  if samples is None:
    return None
  with np.errstate(all="ignore"):
    n_opt, d_opt = optimum(samples, flops)
    return bootstrap.interval(d_opt / n_opt)


def _approach1(runs, curves_dir):
  """(with_curves mask, the envelope's curves, their n, loss grid, envelope, power-law fit or
  None, record) from the run curves; a branch sweep's are its trunks' cooled curves
  (analysis/cooled.py). record: fit.json's `points` and, for a branch sweep, its trunks, with
  `members` (the runs with curves behind each envelope curve, for the bootstrap)."""
  with_curves = np.zeros(len(runs), bool)
  if not curves_dir:
    return with_curves, [], None, None, None, None, None
  by_run = curves_lib.load_curves(runs.run_id, curves_dir)
  with_curves = np.array([r in by_run for r in runs.run_id])
  curves = [by_run[r] for r in runs.run_id[with_curves]]
  if not curves:
    warnings.warn(f"approach 1: no run of the table has a metrics.jsonl under {curves_dir}",
                  AnalysisWarning)
    return with_curves, [], None, None, None, None, None
  curves, curve_n, members, record = cooled.envelope_curves(
      runs.run_id[with_curves], runs.n[with_curves], curves_dir, curves)
  record["members"] = members
  flops_grid = curves_lib.flops_grid_of(curves)
  grid = (curve_n,) + curves_lib.loss_grid(curves, flops_grid) + (flops_grid,)
  env = curves_lib.envelope(*grid)
  fit = curves_lib.fit_envelope(env)
  if isinstance(fit, str):
    warnings.warn(fit, AnalysisWarning)
    fit = None
  return with_curves, curves, curve_n, grid, env, fit, record


def fit_forms(runs, forms_=None) -> dict:
  """{form name: LawFit} for every registered pre-training form, each on its own inputs."""
  fits = {}
  for form in forms_ or forms.registered():
    fits[form.name] = fitter.fit(form, runs.inputs(form.inputs), runs.loss)
    if not fits[form.name].converged:
      warnings.warn(f"{form.title}: the best start did not converge in "
                    f"{fits[form.name].n_iter} iterations; flagged in fit.json", AnalysisWarning)
  return fits


def _kaplan_one_variable(runs, env):
  """Kaplan's one-variable L(N), L(D) and L(C) (through the curves' envelope when there is one)."""
  l_n = kaplan.fit_one_variable(runs.n_kaplan, runs.loss)
  l_d = kaplan.fit_one_variable(runs.d, runs.loss)
  l_c = kaplan.fit_compute(*((env["flops"], env["loss"]) if env is not None
                             else kaplan.pareto_envelope(runs.c, runs.loss)))
  return l_n, l_d, l_c


def _kaplan_extras(section, l_n, l_d, l_c, l_c_source, samples) -> dict:
  """The Kaplan section's one-variable laws (and its rms_log_error, as the contract names it)."""
  section["rms_log_error"] = section["rms_log_residual"]
  for name, one, symbol in (("L_N", l_n, "N"), ("L_D", l_d, "D")):
    if one:
      section[name] = {f"alpha_{symbol}": one["alpha"], f"{symbol}_c": one["x_c"]}
      if name in samples:
        section[name]["ci95"] = {f"alpha_{symbol}": bootstrap.interval(samples[name]["alpha"]),
                                 f"{symbol}_c": bootstrap.interval(samples[name]["x_c"])}
  if l_c:
    section["L_C"] = {**l_c, "envelope": l_c_source}
    if "L_C" in samples:
      section["L_C"]["ci95"] = {k: bootstrap.interval(v) for k, v in samples["L_C"].items()}
  return section


def _frontier_rows(budgets, data, fits, approach2, approach1, samples, convention) -> list[dict]:
  """The frontier table at `budgets` in the table's FLOP convention, with bootstrap intervals of
  the tokens per parameter of each approach and each form with an optimum."""
  rows = frontier.table(budgets, fits, approach2, approach1, data, convention)
  per_token = {"k": convention["k"], "gamma": convention["gamma"]}
  optima = {"approach2": isoflop.optimum, "approach1": isoflop.optimum}
  for form in forms.registered():
    if form.optimum and form.name in fits:
      optima[form.name] = lambda s, c, form=form: form.optimum(s, c, **per_token)
  for row in rows:
    row["tokens_per_param_ci95"] = _tokens_per_param_ci(
        samples.get(forms.PRIMARY), optima[forms.PRIMARY], row["flops"])
    for name in optima:
      if name != forms.PRIMARY and name in row:
        row[name]["tokens_per_param_ci95"] = _tokens_per_param_ci(
            samples.get(name), optima[name], row["flops"])
  return rows


def _bootstrap(runs, fits, grid, with_curves, members, labels, budgets, n_bootstrap, seed, unit,
               window):
  """(samples per fit, fit.json's bootstrap section): refits of `fits` on resampled units;
  `members`: the runs with curves behind each envelope curve (None: one run each)."""
  units = bootstrap.units_of(runs, unit, labels)
  counts = bootstrap.resample_rows(units, n_bootstrap, seed)
  curve_counts = counts[:, with_curves]
  if members is not None:
    curve_counts = cooled.family_weights(members, curve_counts)
  samples = {}
  for form in forms.registered():
    if form.name in fits:
      samples[form.name] = fitter.refit_samples(form, runs.inputs(form.inputs), runs.loss,
                                                fits[form.name], counts)
  if fits["approach2"]:
    samples["approach2"] = bootstrap.approach2_samples(runs, labels, budgets, counts, window)
  if fits["approach1"]:
    samples["approach1"] = bootstrap.approach1_samples(*grid, curve_counts)
  samples["L_N"] = bootstrap.one_variable_samples(runs.n_kaplan, runs.loss, counts)
  samples["L_D"] = bootstrap.one_variable_samples(runs.d, runs.loss, counts)
  samples["L_C"] = bootstrap.compute_samples(runs, grid, counts, curve_counts)
  failed = {}
  for name in samples:
    samples[name], failed[name] = bootstrap.drop_failed(samples[name])
  info = {"n_samples": n_bootstrap, "seed": seed, "unit": unit, "n_units": int(units.max()) + 1,
          "failed": failed}
  return samples, info


def _extrapolation(runs, labels, budgets, fits) -> dict:
  """The check held out by compute (the contract's fields) with the check by size as `by_size`."""
  held_out = frontier.holdout_mask(labels, planned=bool(np.isfinite(runs.budget).any()))
  check = held_out if isinstance(held_out, str) else frontier.extrapolation_check(
      runs, held_out, fits)
  out = ({"skipped": check} if isinstance(check, str) else  # the diagnostics say so
         {"held_out_budgets": [float(budgets[g]) for g in np.unique(labels[held_out])], **check})
  by_size = frontier.size_holdout_mask(runs)
  check = by_size if isinstance(by_size, str) else frontier.extrapolation_check(
      runs, by_size, fits, by="size")
  out["by_size"] = {"skipped": check} if isinstance(check, str) else check
  return out


def bootstrap_unit(runs, unit: str | None) -> str:
  """The bootstrap unit asked for, or the default: `run` when the table names runs, else `point`."""
  if unit is None:
    return "point" if runs.source_run is None else "run"
  if unit == "run" and runs.source_run is None:
    raise runs_lib.DataError(f"--bootstrap-unit run: {runs.source} has no run column "
                             f"({', '.join(runs_lib.RUN_COLUMNS)}); name one with --run-col, or "
                             "resample by point or budget")
  return unit


def fit_all(runs: runs_lib.Runs, curves_dir=None, n_bootstrap: int = 0, seed: int = 0,
            budget_tol: float = runs_lib.BUDGET_TOL, *, unit: str | None = None,
            window: float | None = None, inference_tokens: float | None = None,
            verify_budget: float | None = None) -> tuple[dict, dict]:
  """Every fit on the runs; returns (fit.json contents, the arrays the plots need and the
  bootstrap samples). `verify_budget`: a verification run's C, added to the frontier as a row
  marked `verification` (printed and tabulated beside the data's budgets)."""
  runs_lib.check_fittable(runs)
  unit = bootstrap_unit(runs, unit)
  fits = fit_forms(runs)
  fit3 = fits[forms.PRIMARY]

  labels, budgets = runs_lib.isoflop_groups(runs, budget_tol)
  profiles = isoflop.fit_profiles(runs, labels, budgets, window=window)
  approach2 = isoflop.fit_frontier(profiles)
  if approach2 is None and len(budgets) > 1:
    warnings.warn(f"approach 2 needs IsoFLOP profiles at 2 or more budgets; {len(profiles)} "
                  "usable", AnalysisWarning)
  with_curves, curves, curve_n, grid, env, approach1, points = _approach1(runs, curves_dir)
  members = points.pop("members") if points else None
  l_n, l_d, l_c = _kaplan_one_variable(runs, env)

  samples, info = {}, {"n_samples": 0, "seed": seed, "unit": unit}
  if n_bootstrap:
    samples, info = _bootstrap(
        runs, {**fits, "approach2": approach2, "approach1": approach1},
        grid, with_curves, members, labels, budgets, n_bootstrap, seed, unit, window)

  convention = frontier.flops_convention(runs)
  fit = {
      "source": runs.source, "columns": runs.columns, "n_points": len(runs),
      "flops_convention": convention,
      "excluded": [{"run_id": r, "status": s, "reason": why} for r, s, why in runs.excluded],
      "dropped_top_loss": list(runs.dropped), "loss_floor": runs.loss_floor,
      "predicted": list(runs.predicted)}
  sections = {form.name: _law_section(form, fits[form.name], samples.get(form.name), convention)
              for form in forms.registered() if form.name in fits}
  at_floor = _at_floor(forms.get(forms.PRIMARY), runs, convention)
  if at_floor:
    sections[forms.PRIMARY]["at_floor"] = at_floor
  fit[forms.get(forms.PRIMARY).section] = sections[forms.PRIMARY]
  if approach2:
    fit["chinchilla_approach2"] = {
        **_power_law_section(approach2, samples.get("approach2")),
        "budgets": [p.budget for p in profiles], "window": window, "method": isoflop.method_for(window),
        "profiles": [{"flops": p.budget, "n_opt": p.n_opt, "d_opt": p.d_opt, "loss_opt": p.loss_opt,
                      "n_runs": len(p.n), "n_fitted": int(p.fitted.sum()),
                      **isoflop.minimum_interval(samples.get("approach2"), budgets, p)}
                     for p in profiles]}
  if approach1:
    fit["chinchilla_approach1"] = {**_power_law_section(approach1, samples.get("approach1")),
                                   "n_curves": int(with_curves.sum()), **points}
  for form in forms.registered():
    if form.name in sections and form.name != forms.PRIMARY:
      fit[form.section] = sections[form.name]
  if "kaplan" in sections:
    _kaplan_extras(fit["kaplan"], l_n, l_d, l_c, "training curves" if env is not None
                   else "final points", samples)
  fit["laws"] = [{"name": form.name, "section": form.section, "title": form.title,
                  "formula": form.formula, "params": list(form.params),
                  "optimum": form.optimum is not None}
                 for form in forms.registered() if form.name in fits]
  fit["extrapolation"] = _extrapolation(runs, labels, budgets, fits)
  fit["bootstrap"] = info
  # The frontier at the data's budgets and the published decades; the verdict compares the
  # approaches on it, and a frontier it finds unidentified keeps the data's budgets alone.
  data = frontier.data_budgets(runs, budgets)
  extra = [float(verify_budget)] if verify_budget else []
  rows = _frontier_rows(sorted(set(frontier.budgets_for(data)) | set(extra)), data, fits,
                        approach2, approach1, samples, convention)
  for row in rows:
    if row["flops"] in extra:
      row["verification"] = True
  fit["frontier"] = rows
  fit["diagnostics"] = diagnostics.diagnose(fit, runs, labels, budgets,
                                            profiles if approach2 else [], budget_tol)
  if "frontier" in fit["diagnostics"]["unidentified"]:
    rows = fit["frontier"] = [row for row in rows if row["flops"] in data or row["flops"] in extra]
  if inference_tokens is not None:
    fit["inference_frontier"] = {"inference_tokens": float(inference_tokens),
                                 "rows": frontier.inference_table(rows, fit3, inference_tokens)}

  arrays = {"runs": runs, "fits": fits, "fit3": fit3, "profiles": profiles,
            "approach2": approach2, "approach1": approach1, "curves": curves,
            "curve_n": curve_n, "envelope": env, "l_n": l_n, "frontier": rows,
            "samples": samples}
  return fit, arrays


def _jsonable(value):
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (np.floating, float)):
    return float(value) if np.isfinite(value) else None
  if isinstance(value, (np.integer, np.bool_)):
    return value.item()
  if isinstance(value, np.ndarray):
    return _jsonable(value.tolist())
  return value


def _check_output_dir(out: str):
  """Raises when `out` cannot become the output directory (checked before any fitting)."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise runs_lib.DataError(f"--out {out} is a file, not a directory")


def _publish(fit: dict, out: str, mode: str, project: str) -> dict:
  """The W&B analysis run and Report spec; optional, so a failure is a warning, not the end."""
  try:
    return wandb_report.publish(fit, out, mode=mode, project=project)
  except Exception as e:  # pylint: disable=broad-except  (W&B's own errors are many)
    fit["warnings"].append(f"W&B: nothing logged ({type(e).__name__}: {e})")
    return {"mode": mode, "run": None, "error": str(e)}


def run_analysis(results: str, out: str, *, n_col=None, d_col=None, c_col=None, loss_col=None,
                 kaplan_n_col=None, run_col=None, drop_top_loss: int = 0, n_bootstrap: int = 0,
                 seed: int = 0, bootstrap_unit=None, curves=None, family=None,
                 budget_tol: float = runs_lib.BUDGET_TOL, isoflop_window: float | None = None,
                 inference_tokens: float | None = None, verify_budget: float | None = None,
                 wandb_mode: str = "offline", wandb_project: str = "scaling",
                 predicted: bool = False) -> dict:
  """Fits the table `results` and writes fit.json, report.md, report.html and the plots to `out`
  (and, with a bootstrap, SAMPLES: the primary form's resampled parameters, which a verification
  run's predicted interval is read from: sweeps/verify.py).

  Raises runs.DataError (one line) on input that cannot be fitted, before writing anything.
  """
  _check_output_dir(out)
  runs = runs_lib.load(results, n_col, d_col, c_col, loss_col, kaplan_n_col, drop_top_loss, family,
                       run_col, predicted)
  curves_dir = _curves_dir(results, curves)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fit, arrays = fit_all(runs, curves_dir, n_bootstrap, seed, budget_tol, unit=bootstrap_unit,
                          window=isoflop_window, inference_tokens=inference_tokens,
                          verify_budget=verify_budget)
  fit["warnings"] = list(dict.fromkeys(str(w.message) for w in caught
                                       if issubclass(w.category, AnalysisWarning)))
  os.makedirs(out, exist_ok=True)
  fit["plots"] = plots.make_all(arrays, fit, out)
  fit = _jsonable(fit)
  fit["wandb"] = _publish(fit, out, wandb_mode, wandb_project)
  fit["summary"] = summary.lines(fit, out)
  files.write_atomic(os.path.join(out, "fit.json"), json.dumps(fit, indent=1))
  samples_path = os.path.join(out, SAMPLES)
  if arrays["samples"].get(forms.PRIMARY):
    files.write_atomic(samples_path, json.dumps(
        {forms.PRIMARY: _jsonable(arrays["samples"][forms.PRIMARY])}))
  elif os.path.exists(samples_path):  # an earlier analysis's, with a bootstrap
    os.remove(samples_path)
  report.write(fit, out)
  return fit
