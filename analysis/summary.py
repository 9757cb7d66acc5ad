"""The analysis's printed summary, built once into fit.json["summary"] (a list of lines).

`python -m analysis` prints exactly these lines and a sweep prints them again in its own
process's stead (sweeps/collect.py), so one formatter decides what is shown: the laws, the frontier
exponents, tokens per parameter only where the data support them (`shown_rows`: the budgets inside
the data's range, plus a verification run's budget, labelled as the extrapolation it is; fit.json
holds the rest), the fitted E against the data's floor, the warnings, the verdict with its problems
and checks, and the figures' and report's paths. `verify_lines` and `verify_rows` show a
verification run's predicted loss against its measured one (sweeps/verify.py), printed and in the
report.
"""
import math
import os

from analysis import diagnostics

# fit.json's `laws` (the forms fitted) as a fit.json written before that key had them.
BUILT_IN_LAWS = (
    {"name": "approach3", "section": "chinchilla_approach3", "title": "Chinchilla Approach 3",
     "formula": "L(N, D) = E + A/N^alpha + B/D^beta",
     "params": ["E", "A", "B", "alpha", "beta"], "optimum": True},
    {"name": "kaplan", "section": "kaplan", "title": "Kaplan et al. (2020) L(N, D)",
     "formula": "L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
     "params": ["alpha_N", "alpha_D", "N_c", "D_c"], "optimum": True})


def laws_of(fit: dict) -> list[dict]:
  """The law forms a fit.json holds (fit["laws"]), in their order."""
  return list(fit.get("laws") or BUILT_IN_LAWS)


def _num(value, spec: str) -> str:
  """A number for the summary; `n/a` where a fit gave none (null or not finite in fit.json)."""
  return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _beyond(row: dict) -> str:
  far = row.get("decades_beyond_data", 0)
  what = "verification budget, " if row.get("verification") else ""
  return f"  ({what}extrapolated, {far:.1f} decades beyond the data)" if far else ""


def shown_rows(rows: list[dict]) -> list[dict]:
  """The frontier rows the data support: inside the data's range of budgets, and the verification
  budget's (an extrapolation, there to be checked by its run); the printed and tabulated ones."""
  return [row for row in rows if not row.get("decades_beyond_data") or row.get("verification")]


def frontier_lines(fit: dict) -> list[str]:
  """The frontier rows the data support (shown_rows), extrapolations labelled."""
  shown = shown_rows(fit["frontier"])
  lines = [f"  C = {row['flops']:.2e}: N_opt = {_num(row['n_opt'], '.3g')}, D_opt = "
           f"{_num(row['d_opt'], '.3g')}, {_num(row['tokens_per_param'], '.1f')} tokens per "
           f"parameter{_beyond(row)}" for row in shown]
  if len(shown) < len(fit["frontier"]):
    lines.append(f"  ({len(fit['frontier']) - len(shown)} budgets beyond the data's range: in "
                 "fit.json, not printed)")
  inference = fit.get("inference_frontier")
  if inference:
    lines.append(f"inference-aware (T = {inference['inference_tokens']:.3g} inference tokens; "
                 "same loss as the compute-optimal model at C):")
    lines += [f"  C = {row['flops']:.2e}: N = {_num(row['n_opt'], '.3g')}, D = "
              f"{_num(row['d_opt'], '.3g')}, {_num(row['tokens_per_param'], '.1f')} tokens per "
              f"parameter, {_num(100 * row['saving'], '.1f')}% less total compute{_beyond(row)}"
              for row in shown_rows(inference["rows"])]
  return lines


def _percent(value) -> str:
  return f"{100 * value:+.2f}%" if isinstance(value, (int, float)) else "n/a"


# verify.json's other predictions (sweeps/verify.other_predictions), as the summary names them.
OTHER_PREDICTORS = {"minima_power": "IsoFLOP minima extrapolated",
                    "minima_floor": "IsoFLOP minima extrapolated above approach 3's E",
                    "minima_known_floor": "IsoFLOP minima extrapolated above the known floor",
                    "approach3_at_floor": "approach 3 refitted with E at the known floor"}


def verify_rows(record: dict) -> list[list[str]]:
  """verify.json as [quantity, value] rows: the planned point, predicted and measured loss."""
  interval = record.get("predicted_interval")
  measured = record.get("measured_loss")
  inside = (None if measured is None or not interval else interval[0] <= measured <= interval[1])
  return [
      ["budget C", f"{_num(record['budget'], '.3e')} ({_num(record.get('factor'), 'g')}x the "
                   "largest budget)"],
      ["N (the shape chosen), D", f"{_num(record['n'], '.4g')}, {_num(record['d'], '.4g')} "
                                  f"(N_opt {_num(record.get('n_opt'), '.4g')})"],
      ["predicted loss [95% interval]", f"{_num(record['predicted_loss'], '.4f')} "
       + (f"[{_num(interval[0], '.4f')}, {_num(interval[1], '.4f')}]" if interval else
          "[no interval]")],
      ["measured loss", _num(measured, ".4f") if measured is not None else
       f"none (the run is {record['status']})" if record.get("status") in ("diverged", "failed")
       else "not yet (the run has no result; rerun the sweep)"],
      ["relative error (predicted - measured) / measured",
       _percent(record.get("relative_error")) + ("" if inside is None else
                                                 " (inside the interval)" if inside else
                                                 " (outside the interval)")],
      *[[f"{name} ({OTHER_PREDICTORS.get(name, 'another predictor')}): predicted, error",
         f"{_num(v, '.4f')}, {_percent(record.get('other_errors', {}).get(name))}"]
        for name, v in record.get("other_predictions", {}).items()],
      *task_rows(record),
      ["run", record["run_id"]]]


def task_rows(record: dict) -> list[list[str]]:
  """verify.json's `tasks` as rows: per task, each law's predicted accuracy [95% interval], and
  the measured accuracy (with the Bayes ceiling)."""
  rows = []
  for name, task in (record.get("tasks") or {}).items():
    laws = ", ".join(
        f"{law} {_num(p['predicted_accuracy'], '.3f')}" + (
            f" [{_num(p['interval'][0], '.3f')}, {_num(p['interval'][1], '.3f')}]"
            if p.get("interval") else "") for law, p in task["predictions"].items())
    measured = task.get("measured_accuracy")
    rows.append([f"{name} accuracy: predicted [95% interval], measured",
                 f"{laws}; measured {_num(measured, '.3f') if measured is not None else 'not yet'}"
                 f" (ceiling {_num(task.get('ceiling'), '.3f')})"])
  if record.get("tasks_skipped"):
    rows.append(["task accuracy", f"not predicted: {record['tasks_skipped']}"])
  return rows


def verify_lines(record: dict) -> list[str]:
  """The verification run as printed lines."""
  return (["verification run (held out of the fit):"]
          + [f"  {k}: {v}" for k, v in verify_rows(record)])


def _fit_quality(section: dict) -> str:
  return (f"R^2 of log L {_num(section.get('r2_log'), '.4f')}, rms log residual "
          f"{_num(section.get('rms_log_residual'), '.4f')}"
          + ("" if section.get("converged", True) else "  [NOT CONVERGED]"))


def law_lines(fit: dict) -> list[str]:
  """One line per law form: its parameters, fit quality, and convergence."""
  unidentified = fit.get("diagnostics", {}).get("unidentified", {})
  lines = []
  for law in laws_of(fit):
    s = fit[law["section"]]
    if law["section"] == "chinchilla_approach3":
      e = (f"[E not identified: {unidentified['E']}]" if "E" in unidentified
           else _num(s["E"], ".4f"))
      exponents = (f"a, b not identified ({unidentified['frontier']})"
                   if "frontier" in unidentified
                   else f"a = {_num(s['a'], '.3f')}, b = {_num(s['b'], '.3f')}")
      lines.append(f"approach 3: L = {e} + {_num(s['A'], '.4g')}/N^{_num(s['alpha'], '.4f')} + "
                   f"{_num(s['B'], '.4g')}/D^{_num(s['beta'], '.4f')}; {exponents}; "
                   + _fit_quality(s))
    else:
      lines.append(f"{law['name']}: " + ", ".join(
          f"{k} = {_num(s[k], '.4g')}" for k in law["params"]) + "; " + _fit_quality(s))
  return lines


def lines(fit: dict, out: str | None = None) -> list[str]:
  """The summary of a fit (fit.json contents); `out`: the analysis directory, for the paths."""
  a3 = fit["chinchilla_approach3"]
  unidentified = fit.get("diagnostics", {}).get("unidentified", {})
  predicted = fit.get("predicted") or []
  excluded = [r for r in fit["excluded"] if r["status"] == "predicted"]
  out_lines = [f"{fit['n_points']} runs fitted ({len(fit['excluded']) - len(excluded)} not "
               "completed, excluded)"]
  if predicted:
    out_lines.append(f"{len(predicted)} of the {fit['n_points']} fitted losses are predicted by "
                     "a curve law, not measured (sweep.predict_branches; analysis/curves.json)")
  if excluded:
    out_lines.append(f"{len(excluded)} predicted losses in the table are not fitted (--predicted "
                     "fits them)")
  out_lines += law_lines(fit)
  if "frontier" not in unidentified and "frontier_exponents" in a3:
    convention = fit.get("flops_convention", {})
    out_lines.append(
        f"frontier, C in {convention.get('label', '6ND FLOPs')}: N_opt ∝ "
        f"C^{_num(a3['frontier_exponents']['a'], '.3f')}, D_opt ∝ "
        f"C^{_num(a3['frontier_exponents']['b'], '.3f')} (approach 3; FLOPs per token "
        f"{_num(convention.get('k'), '.3g')} N^{_num(convention.get('gamma'), '.3f')})")
  for name in ("chinchilla_approach2", "chinchilla_approach1"):
    if name in fit:
      out_lines.append(f"{name.replace('chinchilla_', '').replace('approach', 'approach ')}: "
                       f"a = {_num(fit[name]['a'], '.3f')}, b = {_num(fit[name]['b'], '.3f')}")
  out_lines += frontier_lines(fit)
  floor = fit.get("loss_floor")
  if isinstance(floor, (int, float)):
    fitted = ("not identified (E ≈ 0)" if "E" in unidentified else f"{_num(a3['E'], '.3f')} nats")
    out_lines.append(f"fitted irreducible loss E = {fitted}; the data's exact floor is "
                     f"{floor:.3f} nats")
  out_lines += [f"warning: {w}" for w in fit.get("warnings", [])]
  if "diagnostics" in fit:
    out_lines += diagnostics.summary_lines(fit["diagnostics"])
  if out is not None:
    if fit.get("plots"):
      out_lines.append("figures: " + ", ".join(os.path.join(out, f)
                                                for f in fit["plots"].values()))
    out_lines.append(f"report: {os.path.join(out, 'report.md')}")
  return out_lines
