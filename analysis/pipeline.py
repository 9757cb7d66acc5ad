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

from analysis import approach3
from analysis import bootstrap
from analysis import curves as curves_lib
from analysis import diagnostics
from analysis import frontier
from analysis import isoflop
from analysis import kaplan
from analysis import laws
from analysis import plots
from analysis import report
from analysis import runs as runs_lib
from analysis import wandb_report
from analysis.runs import AnalysisWarning
from core import files


def _curves_dir(results: str, curves: str | None) -> str | None:
  if curves:
    if not os.path.isdir(curves):
      raise runs_lib.DataError(f"--curves {curves} is not a directory")
    return curves
  beside = os.path.join(os.path.dirname(os.path.abspath(results)), "runs")
  return beside if os.path.isdir(beside) else None


def _approach3_section(fit3, samples) -> dict:
  section = fit3.to_dict()
  if samples is not None:
    section["ci95"] = {k: bootstrap.interval(v) for k, v in samples.items()}
    section["n_bootstrap_ok"] = int(np.isfinite(samples["E"]).sum())
  return section


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
  """(with_curves mask, curves, loss grid, envelope, power-law fit or None) from the run curves."""
  with_curves = np.zeros(len(runs), bool)
  if not curves_dir:
    return with_curves, [], None, None, None
  by_run = curves_lib.load_curves(runs.run_id, curves_dir)
  with_curves = np.array([r in by_run for r in runs.run_id])
  curves = [by_run[r] for r in runs.run_id[with_curves]]
  if not curves:
    warnings.warn(f"approach 1: no run of the table has a metrics.jsonl under {curves_dir}",
                  AnalysisWarning)
    return with_curves, [], None, None, None
  flops_grid = curves_lib.flops_grid_of(curves)
  grid = (runs.n[with_curves],) + curves_lib.loss_grid(curves, flops_grid) + (flops_grid,)
  env = curves_lib.envelope(*grid)
  fit = curves_lib.fit_envelope(env)
  if isinstance(fit, str):
    warnings.warn(fit, AnalysisWarning)
    fit = None
  return with_curves, curves, grid, env, fit


def _kaplan_fits(runs, env):
  """Kaplan's joint L(N, D), L(N), L(D) and L(C) (through the curves' envelope when there is one)."""
  joint = kaplan.fit_joint(runs.n_kaplan, runs.d, runs.loss)
  if not joint["converged"]:
    warnings.warn("kaplan: the joint L(N, D) fit did not converge; flagged in fit.json",
                  AnalysisWarning)
  l_n = kaplan.fit_one_variable(runs.n_kaplan, runs.loss)
  l_d = kaplan.fit_one_variable(runs.d, runs.loss)
  l_c = kaplan.fit_compute(*((env["flops"], env["loss"]) if env is not None
                             else kaplan.pareto_envelope(runs.c, runs.loss)))
  return joint, l_n, l_d, l_c


def _kaplan_section(joint, l_n, l_d, l_c, l_c_source, samples) -> dict:
  section = {k: v for k, v in joint.items() if k != "start"}
  section["n_opt_exponent"] = joint["alpha_D"] / (joint["alpha_N"] + joint["alpha_D"])
  if "kaplan" in samples:
    s = samples["kaplan"]
    section["ci95"] = {k: bootstrap.interval(v) for k, v in s.items()}
    section["ci95"]["n_opt_exponent"] = bootstrap.interval(
        s["alpha_D"] / (s["alpha_N"] + s["alpha_D"]))
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


def _frontier_rows(budgets, data, fit3, approach2, approach1, joint, samples,
                   convention) -> list[dict]:
  """The frontier table at `budgets` in the table's FLOP convention, with bootstrap intervals of
  the tokens per parameter of each approach."""
  rows = frontier.table(budgets, fit3, approach2, approach1, joint, data, convention)
  per_token = {"k": convention["k"], "gamma": convention["gamma"]}
  optima = {
      "approach3": lambda s, c: laws.chinchilla_optimum(c, s["A"], s["B"], s["alpha"], s["beta"],
                                                        **per_token),
      "approach2": isoflop.optimum, "approach1": isoflop.optimum,
      "kaplan": lambda s, c: laws.kaplan_optimum(c, *(s[name] for name in kaplan.PARAMS),
                                                 **per_token)}
  for row in rows:
    row["tokens_per_param_ci95"] = _tokens_per_param_ci(
        samples.get("approach3"), optima["approach3"], row["flops"])
    for name in ("approach2", "approach1", "kaplan"):
      if name in row:
        row[name]["tokens_per_param_ci95"] = _tokens_per_param_ci(
            samples.get(name), optima[name], row["flops"])
  return rows


def _bootstrap(runs, fits, grid, with_curves, labels, budgets, n_bootstrap, seed, unit, window):
  """(samples per fit, fit.json's bootstrap section): refits of `fits` on resampled units."""
  units = bootstrap.units_of(runs, unit, labels)
  counts = bootstrap.resample_rows(units, n_bootstrap, seed)
  samples = {"approach3": bootstrap.approach3_samples(runs, fits["approach3"], counts)}
  if fits["approach2"]:
    samples["approach2"] = bootstrap.approach2_samples(runs, labels, budgets, counts, window)
  if fits["approach1"]:
    samples["approach1"] = bootstrap.approach1_samples(*grid, counts[:, with_curves])
  samples["kaplan"] = bootstrap.kaplan_samples(runs, fits["kaplan"], counts)
  samples["L_N"] = bootstrap.one_variable_samples(runs.n_kaplan, runs.loss, counts)
  samples["L_D"] = bootstrap.one_variable_samples(runs.d, runs.loss, counts)
  samples["L_C"] = bootstrap.compute_samples(runs, grid, counts, with_curves)
  failed = {}
  for name in samples:
    samples[name], failed[name] = bootstrap.drop_failed(samples[name])
  info = {"n_samples": n_bootstrap, "seed": seed, "unit": unit, "n_units": int(units.max()) + 1,
          "failed": failed}
  return samples, info


def _extrapolation(runs, labels, budgets) -> dict:
  held_out = frontier.holdout_mask(labels, planned=bool(np.isfinite(runs.budget).any()))
  check = held_out if isinstance(held_out, str) else frontier.extrapolation_check(runs, held_out)
  if isinstance(check, str):  # the diagnostics say so
    return {"skipped": check}
  return {"held_out_budgets": [float(budgets[g]) for g in np.unique(labels[held_out])],
          **check}


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
            window: float | None = None, inference_tokens: float | None = None
            ) -> tuple[dict, dict]:
  """Every fit on the runs; returns (fit.json contents, the arrays the plots need)."""
  runs_lib.check_fittable(runs)
  unit = bootstrap_unit(runs, unit)
  fit3 = approach3.fit(runs.n, runs.d, runs.loss)
  if not fit3.converged:
    warnings.warn(f"approach 3: the best start did not converge in {fit3.n_iter} iterations; "
                  "its parameters are flagged in fit.json", AnalysisWarning)

  labels, budgets = runs_lib.isoflop_groups(runs, budget_tol)
  profiles = isoflop.fit_profiles(runs, labels, budgets, window=window)
  approach2 = isoflop.fit_frontier(profiles)
  if approach2 is None and len(budgets) > 1:
    warnings.warn(f"approach 2 needs IsoFLOP profiles at 2 or more budgets; {len(profiles)} "
                  "usable", AnalysisWarning)
  with_curves, curves, grid, env, approach1 = _approach1(runs, curves_dir)
  joint, l_n, l_d, l_c = _kaplan_fits(runs, env)

  samples, info = {}, {"n_samples": 0, "seed": seed, "unit": unit}
  if n_bootstrap:
    samples, info = _bootstrap(
        runs, {"approach3": fit3, "approach2": approach2, "approach1": approach1, "kaplan": joint},
        grid, with_curves, labels, budgets, n_bootstrap, seed, unit, window)

  convention = frontier.flops_convention(runs)
  a_c, b_c = laws.frontier_exponents_at(fit3.alpha, fit3.beta, convention["gamma"])
  fit = {
      "source": runs.source, "columns": runs.columns, "n_points": len(runs),
      "flops_convention": convention,
      "excluded": [{"run_id": r, "status": s, "reason": why} for r, s, why in runs.excluded],
      "dropped_top_loss": list(runs.dropped), "loss_floor": runs.loss_floor,
      "chinchilla_approach3": {**_approach3_section(fit3, samples.get("approach3")),
                               # N_opt ∝ C^a, D_opt ∝ C^b with C in the table's convention
                               "frontier_exponents": {"a": a_c, "b": b_c,
                                                      "flops": convention["label"]}}}
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
                                   "n_curves": len(curves)}
  fit["kaplan"] = _kaplan_section(joint, l_n, l_d, l_c, "training curves" if env is not None
                                  else "final points", samples)
  fit["extrapolation"] = _extrapolation(runs, labels, budgets)
  fit["bootstrap"] = info
  fit["diagnostics"] = diagnostics.diagnose(fit, runs, labels, budgets,
                                            profiles if approach2 else [], budget_tol)

  data = frontier.data_budgets(runs, budgets)
  rows = _frontier_rows(frontier.budgets_for(data, "frontier" not in fit["diagnostics"][
      "unidentified"]), data, fit3, approach2, approach1, joint, samples, convention)
  fit["frontier"] = rows
  if inference_tokens is not None:
    fit["inference_frontier"] = {"inference_tokens": float(inference_tokens),
                                 "rows": frontier.inference_table(rows, fit3, inference_tokens)}

  arrays = {"runs": runs, "fit3": fit3, "profiles": profiles, "approach2": approach2,
            "approach1": approach1, "curves": curves, "curve_n": runs.n[with_curves],
            "envelope": env, "joint": joint, "l_n": l_n, "frontier": rows}
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
                 inference_tokens: float | None = None, wandb_mode: str = "offline",
                 wandb_project: str = "scaling") -> dict:
  """Fits the table `results` and writes fit.json, report.md, report.html and the plots to `out`.

  Raises runs.DataError (one line) on input that cannot be fitted, before writing anything.
  """
  _check_output_dir(out)
  runs = runs_lib.load(results, n_col, d_col, c_col, loss_col, kaplan_n_col, drop_top_loss, family,
                       run_col)
  curves_dir = _curves_dir(results, curves)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fit, arrays = fit_all(runs, curves_dir, n_bootstrap, seed, budget_tol, unit=bootstrap_unit,
                          window=isoflop_window, inference_tokens=inference_tokens)
  fit["warnings"] = list(dict.fromkeys(str(w.message) for w in caught
                                       if issubclass(w.category, AnalysisWarning)))
  os.makedirs(out, exist_ok=True)
  fit["plots"] = plots.make_all(arrays, fit, out)
  fit = _jsonable(fit)
  fit["wandb"] = _publish(fit, out, wandb_mode, wandb_project)
  files.write_atomic(os.path.join(out, "fit.json"), json.dumps(fit, indent=1))
  report.write(fit, out)
  return fit
