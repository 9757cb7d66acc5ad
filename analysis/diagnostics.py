"""How far to trust a fit: the checks behind its verdict, in figures and in words.

`diagnose` reads the fits (fit.json's sections) and the runs and returns fit.json["diagnostics"]:
the figures of every check, `checks` (one sentence each), `problems` (each condition that makes a
result unreliable, named in words), `notes` (caveats that make nothing unreliable), `scoped` (each
problem and note with what it concerns: the study, approach 2, approach 3 or the frontier the
approaches give), `unidentified` (results the data cannot determine, which the summaries print as
such instead of as numbers), `supported_budgets` (the frontier budgets the data support: within
SUPPORT_DECADES of them) and `verdict`, the headline, which names the approach a problem concerns
when the others pass. The report opens with them, and the CLI and the sweep end with them.

The thresholds are judgement calls, stated here so a reader can disagree with them:
- Approaches agree on the frontier when their a differ by at most A2_A3_TOLERANCE (Hoffmann et
  al.'s own approaches span 0.46-0.50) and their N_opt at every budget of the data by at most a
  factor FRONTIER_RATIO (tokens per parameter: its square): an IsoFLOP curve is flat at its
  bottom, so 1.5x in N costs well under 1% in loss there and the data cannot tell such optima apart.
- E below E_NEAR_ZERO of the smallest loss, or an interval of E reaching that low, means the fit
  found no irreducible loss; E above the smallest loss means the law cannot describe the runs below.
- Refitted without its largest budget, and without its largest models (the largest sizes, whole,
  until they hold frontier.HOLDOUT_FRACTION of the runs: a study whose largest C are long runs of sizes
  already fitted tests only compute), the law predicts the held-out losses within
  EXTRAPOLATION_TOLERANCE (relative, mean over the held-out runs).
- The law misses the runs it was fitted to by more than GOODNESS_RMS (RMS of log residuals):
  well-posed published fits stay near 1%, the noise of a loss read off a curve.
- A 95% interval of a wider than CI_WIDTH_A leaves the frontier's slope open; an interval of alpha
  or beta reaching below MIN_EXPONENT leaves the frontier itself open; more than FAILED_SHARE of
  failed bootstrap refits leaves intervals resting on a biased subset.
- An exponent alpha or beta below MIN_EXPONENT: the loss barely falls with N (or D), no frontier.
- An edge minimum is a problem of approach 2 on a planned IsoFLOP design (a budget column: its
  sizes were meant to bracket the minimum) and a note on C groups the analysis formed itself.
"""

import numpy as np

from analysis import frontier as frontier_lib
from analysis import laws
from analysis import runs as runs_lib

A2_A3_TOLERANCE = 0.05
FRONTIER_RATIO = 1.5
E_NEAR_ZERO = 0.01
EXTRAPOLATION_TOLERANCE = 0.02
GOODNESS_RMS = 0.03
CI_WIDTH_A = 0.1
FAILED_SHARE = 0.10
MIN_EXPONENT = 0.05
SUPPORT_DECADES = 1.0  # frontier rows this far beyond the data's budgets are still supported
MAX_LISTED = 8  # budgets named one by one in a sentence
NAMES = {"study": "the study", "approach 2": "approach 2 (IsoFLOP minima)",
         "approach 3": "approach 3 (the parametric law)", "frontier": "the frontier"}


def _problem(d: dict, scope: str, text: str):
  d["problems"].append(text)
  d["scoped"].append({"scope": scope, "kind": "problem", "text": text})


def _note(d: dict, scope: str, text: str):
  d["notes"].append(text)
  d["scoped"].append({"scope": scope, "kind": "note", "text": text})


def _scoped(d: dict, scope: str) -> int:
  return sum(p["scope"] == scope and p["kind"] == "problem" for p in d["scoped"])


def _g(value) -> str:
  return f"{value:.3g}"


def budget_table(runs, labels, budgets, profiles) -> list[dict]:
  """Per IsoFLOP budget: runs, distinct sizes, the lowest-loss N, whether that lowest loss is
  interior (neither the smallest nor the largest size), whether Approach 2 used the budget
  (`profiles`: those of the Approach 2 fit; none when it was not fitted)."""
  used = {p.budget for p in profiles}
  rows = []
  for g, budget in enumerate(budgets):
    mask = labels == g
    n, loss = runs.n[mask], runs.loss[mask]
    sizes = runs_lib.group_log(n, 1e-3)
    lowest = int(np.argmin(loss))
    n_sizes = len(np.unique(sizes))
    rows.append({"flops": float(budget), "runs": int(mask.sum()), "sizes": n_sizes,
                 "lowest_loss_n": float(n[lowest]),
                 "interior": (bool(sizes.min() < sizes[lowest] < sizes.max())
                              if n_sizes >= 3 else None),
                 "approach2": float(budget) in used})
  return rows


def _budget_checks(d: dict, table: list[dict], planned: bool):
  k = len(table)
  sizes = [row["sizes"] for row in table]
  per = (f"{sizes[0]} sizes{' each' if k > 1 else ''}" if len(set(sizes)) == 1 else
         "sizes per budget: " + ", ".join(map(str, sizes)) if k <= MAX_LISTED else
         f"{min(sizes)} to {max(sizes)} sizes per budget (median {np.median(sizes):g})")
  scale = (f"{_g(table[0]['flops'])}" if k == 1
           else f"{_g(table[0]['flops'])}..{_g(table[-1]['flops'])}")
  d["checks"].append(f"{k} budget{'s' if k > 1 else ''} ({scale} FLOPs, {d['budgets_from']}); "
                     f"{per}")
  if k == 1:
    _problem(d, "study", "one budget: no frontier exponent can be fitted (N_opt(C) needs runs at "
                         "several compute budgets)")
    d["unidentified"]["frontier"] = "one budget"
  elif k == 2:
    _problem(d, "study", "two budgets: each frontier exponent is a line through 2 points, and no "
                         "budget is left over to test an extrapolation")
  curves = [row for row in table if row["interior"] is not None]
  if not curves:
    d["checks"].append("no budget has 3 or more sizes: no IsoFLOP minimum to locate")
    return
  edge = [row for row in curves if not row["interior"]]
  d["checks"].append(f"IsoFLOP minima: the lowest loss is interior at {len(curves) - len(edge)} of "
                     f"{len(curves)} budgets with 3 or more sizes")
  if edge:
    text = (f"the lowest loss is at the edge of the sizes sampled at {len(edge)} budget"
            f"{'s' if len(edge) > 1 else ''} (" + ", ".join(
                f"{_g(row['flops'])}: N = {_g(row['lowest_loss_n'])}" for row in edge[:MAX_LISTED])
            + (", ..." if len(edge) > MAX_LISTED else "") + "), so "
            + ("their minima" if len(edge) > 1 else "its minimum") + " may lie beyond them")
    if planned:
      _problem(d, "approach 2", text)
    else:  # C groups of a table that is no IsoFLOP design: approach 2's caveat, not the study's
      _note(d, "approach 2", f"approach 2 on C groups formed from the table: {text}")


def _law_checks(d: dict, fit: dict):
  a3 = fit["chinchilla_approach3"]
  if not a3["converged"]:
    _problem(d, "approach 3", "approach 3: the L-BFGS fit did not converge")
  for name, symbol in (("alpha", "N"), ("beta", "D")):
    value = a3[name]
    if not value >= MIN_EXPONENT:
      how = (f"≈ 0: the loss barely falls with {symbol}" if value >= 0 else
             f"< 0: the fitted loss rises with {symbol}")
      _problem(d, "approach 3", f"approach 3: {name} = {value:.3g} {how}, so the law has no "
                                "frontier")
      d["unidentified"].setdefault("frontier", f"{name} {'≈ 0' if value >= 0 else '< 0'}")


def _goodness_checks(d: dict, fit: dict, runs):
  """R^2 and RMS log residual of each law on its own runs (fit[section]["goodness"] where the
  pipeline gives it; approach 3's computed here otherwise)."""
  a3 = fit["chinchilla_approach3"]
  goodness = a3.get("goodness")
  if goodness is None:
    with np.errstate(all="ignore"):
      predicted = laws.chinchilla_loss(runs.n, runs.d, *(a3[k] for k in ("E", "A", "B", "alpha",
                                                                            "beta")))
      residual = np.log(runs.loss / predicted)
      total = np.sum((runs.loss - runs.loss.mean()) ** 2)
      goodness = {"r2": float(1 - np.sum((runs.loss - predicted) ** 2) / total) if total else None,
                  "rms_log_residual": float(np.sqrt(np.mean(residual ** 2)))}
  d["goodness"] = {"approach3": goodness}
  kaplan = fit.get("kaplan", {})
  if "goodness" in kaplan or "rms_log_error" in kaplan:
    d["goodness"]["kaplan"] = kaplan.get("goodness", {"rms_log_residual": kaplan["rms_log_error"]})
  parts = []
  for name, g in d["goodness"].items():
    r2 = g.get("r2")
    parts.append(f"{name.replace('approach3', 'approach 3')} RMS log residual "
                 f"{100 * g['rms_log_residual']:.2f}%" + ("" if r2 is None else f", R² {r2:.4f}"))
  d["checks"].append("goodness of fit on the runs fitted: " + "; ".join(parts))
  rms = goodness["rms_log_residual"]
  if not rms <= GOODNESS_RMS:
    _problem(d, "approach 3", f"approach 3: the law misses the runs it was fitted to by "
                              f"{100 * rms:.1f}% (RMS of log residuals, more than "
                              f"{100 * GOODNESS_RMS:.0f}%): it does not describe them")


def _e_checks(d: dict, fit: dict, loss):
  a3 = fit["chinchilla_approach3"]
  e = a3["E"]
  lowest = float(np.min(loss))
  below = int(np.sum(loss < e))
  ci = (a3.get("ci95") or {}).get("E")
  d["E"] = {"value": e, "min_observed_loss": lowest, "n_losses_below_E": below,
            "near_zero": bool(e < E_NEAR_ZERO * lowest), "above_min_loss": bool(below > 0),
            "interval_near_zero": bool(ci is not None and ci[0] < E_NEAR_ZERO * lowest),
            "loss_floor": fit.get("loss_floor")}
  floor = ("" if fit.get("loss_floor") is None
           else f"; the data's exact floor is {fit['loss_floor']:.3f}")
  if d["E"]["near_zero"]:
    _problem(d, "approach 3", f"E = {e:.3g} ≈ 0: the fit found no irreducible loss, so E is not "
                              "identified by these runs")
    d["unidentified"]["E"] = "E ≈ 0"
  elif below:
    _problem(d, "approach 3", f"E = {e:.4g} is above the smallest observed loss {lowest:.4g} "
                              f"({below} run{'s' if below > 1 else ''} below it): the law cannot "
                              "describe them")
  elif d["E"]["interval_near_zero"]:
    _problem(d, "approach 3", f"E = {e:.4g}, but its 95% interval [{ci[0]:.3g}, {ci[1]:.3g}] "
                              "reaches 0: the runs do not identify the irreducible loss")
    d["unidentified"]["E"] = "its interval reaches 0"
  else:
    d["checks"].append(f"E = {e:.4g} nats: above zero and below the smallest observed loss "
                       f"{lowest:.4g}{floor}")


def _width(ci) -> float | None:
  return None if ci is None else float(ci[1] - ci[0])


def _bootstrap_checks(d: dict, fit: dict):
  info = fit["bootstrap"]
  if not info["n_samples"]:
    d["checks"].append("no bootstrap intervals (--bootstrap B gives them)")
    return
  a3, a2 = fit["chinchilla_approach3"], fit.get("chinchilla_approach2")
  widths = {"approach3": {k: _width(a3["ci95"].get(k)) for k in ("E", "alpha", "beta", "a")}}
  if a2:
    widths["approach2"] = {"a": _width(a2["ci95"].get("a"))}
  d["ci_widths"] = widths
  failed = info["failed"]
  shown = [f"{_g(w)} ({name.replace('approach', 'approach ')})"
           for name, w in (("approach3", widths["approach3"]["a"]),
                           ("approach2", widths.get("approach2", {}).get("a"))) if w is not None]
  dropped = [f"{k} for {name}" for name, k in failed.items() if k]
  d["checks"].append(
      f"95% intervals from {info['n_samples']} resamples by {info['unit']} ({info['n_units']} "
      f"units): the interval of a is {', '.join(shown) or '–'} wide; refits that failed, dropped: "
      f"{', '.join(dropped) or 'none'}")
  for name, k in failed.items():
    if k > FAILED_SHARE * info["n_samples"]:
      text = (f"{k} of {info['n_samples']} bootstrap refits of {name} failed and were dropped: "
              "its intervals rest on the resamples that happened to fit")
      scope = {"approach3": "approach 3", "approach2": "approach 2"}.get(name)
      (_problem if scope else _note)(d, scope or name, text)
  for name, section in (("approach 3", a3), ("approach 2", a2)):
    if section is None:
      continue
    ci = section["ci95"].get("a")
    if ci is None:
      _problem(d, name, f"{name}: too few bootstrap refits succeeded for an interval of a")
    elif ci[1] - ci[0] > CI_WIDTH_A:
      _problem(d, name, f"{name}: the frontier exponent is uncertain, a in [{ci[0]:.3f}, "
                        f"{ci[1]:.3f}] (95%), wider than {CI_WIDTH_A}")
  for name in ("alpha", "beta"):
    ci = a3["ci95"].get(name)
    if ci is not None and ci[0] < MIN_EXPONENT and a3[name] >= MIN_EXPONENT:
      _problem(d, "approach 3", f"approach 3: the 95% interval of {name}, [{ci[0]:.3g}, "
                                f"{ci[1]:.3g}], reaches 0: the law's frontier is not identified")


def _extrapolation_checks(d: dict, check: dict, key: str, what: str):
  if "skipped" in check:
    d[key] = {"skipped": check["skipped"]}
    d["checks"].append(f"no {check['skipped']}")
    return
  errors = check["approach3"]
  d[key] = {"n_held_out": len(check["held_out"]), "n_fitted": check["n_fitted"],
            "mean_abs_error": errors["mean_abs_error"], "max_abs_error": errors["max_abs_error"],
            "mean_abs_rel_error": errors["mean_abs_rel_error"],
            "tolerance": EXTRAPOLATION_TOLERANCE,
            "ok": bool(errors["mean_abs_rel_error"] <= EXTRAPOLATION_TOLERANCE)}
  if "held_out_budgets" in check:
    d[key]["held_out_budgets"] = check["held_out_budgets"]
  text = (f"refitted without {what(check)}, {len(check['held_out'])} runs), approach 3 misses "
          f"their losses by {errors['mean_abs_error']:.3f} nats on average "
          f"({100 * errors['mean_abs_rel_error']:.1f}%), {errors['max_abs_error']:.3f} at most")
  if d[key]["ok"]:
    d["checks"].append(f"extrapolation{' in N' if key == 'extrapolation_by_size' else ''}: {text}")
  else:
    _problem(d, "approach 3", f"the law does not extrapolate{' in N' if key != 'extrapolation' else ''}"
                              f": {text} (more than {100 * EXTRAPOLATION_TOLERANCE:.0f}%)")


def _by_budget(check):
  held_out = check["held_out_budgets"]
  return (f"the largest budget ({_g(held_out[0])} FLOPs" if len(held_out) == 1 else
          f"the {len(held_out)} largest budgets ({_g(held_out[0])}..{_g(held_out[-1])} FLOPs")


def _by_size(check):
  if "held_out_n_min" in check:
    return (f"the largest models (N >= {_g(check['held_out_n_min'])}; fitted up to "
            f"{_g(check['fitted_n_max'])}")
  return "the largest models ("


def _frontier_rows(fit: dict, runs, budgets) -> tuple[list[dict], list[float]]:
  """fit["frontier"] (the pipeline's, at the data's budgets and beyond) and the data's budgets."""
  return fit.get("frontier") or [], frontier_lib.data_budgets(runs, budgets)


def _compare(d: dict, text: str, others: tuple[str, ...]):
  """A disagreement: the frontier's problem when every approach involved passes its own checks,
  else a note (the flagged approach explains it)."""
  if any(_scoped(d, scope) for scope in others):
    _note(d, "frontier", f"{text}; expected, since "
                         + " and ".join(s for s in others if _scoped(d, s)) + " is flagged")
  else:
    _problem(d, "frontier", text)


def _frontier_checks(d: dict, fit: dict, rows: list[dict]):
  a3, a2 = fit["chinchilla_approach3"], fit.get("chinchilla_approach2")
  if not a2:
    d["checks"].append("approach 2: not fitted (needs IsoFLOP minima at 2 or more budgets), "
                       "nothing to compare approach 3's a with")
  else:
    # Both in the table's FLOP convention: approach 2's minima are in its C, approach 3's frontier
    # is read in it too (analysis.frontier.flops_convention).
    a3_a = a3.get("frontier_exponents", {}).get("a", a3["a"])
    gap = abs(a2["a"] - a3_a)
    d["approach2_vs_3"] = {"a_approach2": a2["a"], "a_approach3": a3_a, "difference": gap,
                           "tolerance": A2_A3_TOLERANCE, "agree": bool(gap <= A2_A3_TOLERANCE)}
    text = (f"a = {a2['a']:.3f} (approach 2, IsoFLOP minima) vs {a3_a:.3f} (approach 3, "
            f"parametric law), {gap:.3f} apart")
    if gap <= A2_A3_TOLERANCE:
      d["checks"].append(f"approaches 2 and 3 agree on the frontier exponent: {text}")
    else:
      _compare(d, f"approaches 2 and 3 disagree on the frontier exponent: {text} (more than "
                  f"{A2_A3_TOLERANCE})", ("approach 2", "approach 3"))
  inside = [row for row in rows if row.get("decades_beyond_data", 0) == 0]
  d["frontier_comparison"] = {}
  for name, label in (("approach2", "approach 2"), ("approach1", "approach 1"),
                      ("kaplan", "Kaplan's law")):
    pairs = [(row, row[name]) for row in inside if name in row]
    if not pairs:
      continue
    ratios = [max(p["n_opt"] / r["n_opt"], r["n_opt"] / p["n_opt"]) for r, p in pairs]
    worst = int(np.argmax(ratios))
    row, point = pairs[worst]
    d["frontier_comparison"][name] = {
        "max_n_opt_ratio": float(ratios[worst]), "at_flops": row["flops"],
        "tokens_per_param": point["tokens_per_param"],
        "tokens_per_param_approach3": row["tokens_per_param"], "tolerance": FRONTIER_RATIO,
        "agree": bool(ratios[worst] <= FRONTIER_RATIO)}
    text = (f"{label} vs approach 3 at the data's {len(pairs)} budget"
            f"{'s' if len(pairs) > 1 else ''}: N_opt up to {ratios[worst]:.2f}x apart (at "
            f"{_g(row['flops'])} FLOPs: {point['tokens_per_param']:.3g} vs "
            f"{row['tokens_per_param']:.3g} tokens per parameter)")
    if ratios[worst] <= FRONTIER_RATIO or name == "kaplan":  # Kaplan's law is another law
      d["checks"].append(f"frontier: {text}")
    else:
      _compare(d, f"the approaches disagree on the frontier: {text}, more than "
                  f"{FRONTIER_RATIO}x", (label, "approach 3") if name == "approach2"
               else ("approach 3",))


def _verdict(d: dict, fitted2: bool) -> str:
  k = len(d["problems"])
  if not k:
    return "no problem found by the checks below"
  counts = {scope: _scoped(d, scope) for scope in NAMES}
  whole = (f"{k} problem{'s' if k > 1 else ''} make{'s' if k == 1 else ''} this fit unreliable")
  if counts["study"] or counts["frontier"] or not fitted2 or (counts["approach 2"]
                                                              and counts["approach 3"]):
    return whole
  bad = "approach 3" if counts["approach 3"] else "approach 2"
  good = "approach 2" if bad == "approach 3" else "approach 3"
  return (f"{NAMES[bad]} is unreliable ({counts[bad]} problem{'s' if counts[bad] > 1 else ''}); "
          f"{NAMES[good]} passes its checks")


def diagnose(fit: dict, runs, labels, budgets, profiles, budget_tol: float) -> dict:
  """fit.json["diagnostics"] from the fit's sections (approach 3 and 2, extrapolation in C and in
  N, bootstrap, frontier); budgets are the planned ones (a budget column) or runs grouped by C
  within budget_tol."""
  d = {"problems": [], "notes": [], "checks": [], "scoped": [], "unidentified": {}}
  table = budget_table(runs, labels, budgets, profiles)
  planned = bool(np.isfinite(runs.budget).any())
  d.update(n_budgets=len(table), budgets=table, budgets_from=(
      "from the budget column" if planned else f"runs grouped by C within {budget_tol:.0%}"))
  _budget_checks(d, table, planned)
  _law_checks(d, fit)
  _e_checks(d, fit, runs.loss)
  _goodness_checks(d, fit, runs)
  _bootstrap_checks(d, fit)
  _extrapolation_checks(d, fit["extrapolation"], "extrapolation", _by_budget)
  by_size = fit["extrapolation"].get("by_size") or {"skipped": "extrapolation check by size: not run"}
  _extrapolation_checks(d, by_size, "extrapolation_by_size", _by_size)
  rows, data = _frontier_rows(fit, runs, budgets)
  _frontier_checks(d, fit, rows)
  d["supported_budgets"] = ([] if "frontier" in d["unidentified"] else sorted(
      row["flops"] for row in rows
      if frontier_lib.decades_beyond(row["flops"], data) <= SUPPORT_DECADES))
  d["support_decades"] = SUPPORT_DECADES
  d["verdict"] = _verdict(d, bool(fit.get("chinchilla_approach2")))
  return d


def summary_lines(diagnostics: dict) -> list[str]:
  """The verdict as printed lines: the headline, each problem, each note, then each check."""
  return ([f"How far to trust this fit: {diagnostics['verdict']}"]
          + [f"  problem: {p}" for p in diagnostics["problems"]]
          + [f"  note: {n}" for n in diagnostics.get("notes", [])]
          + [f"  check: {c}" for c in diagnostics["checks"]])
