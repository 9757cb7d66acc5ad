"""How far to trust a fit: the checks behind its verdict, in figures and in words.

`diagnose` reads the fits (fit.json's sections) and the runs and returns fit.json["diagnostics"]:
the figures of every check, `checks` (one sentence each), `problems` (each condition that makes a
result unreliable, named in words), `unidentified` (results the data cannot determine, which the
summaries then print as such instead of as numbers) and `verdict`, the headline. The report opens
with them, and the CLI and the sweep end with them.

The thresholds are judgement calls, stated here so a reader can disagree with them:
- Approaches 2 and 3 agree on the frontier exponent a within A2_A3_TOLERANCE (Hoffmann et al.'s own
  approaches span 0.46-0.50).
- E below E_NEAR_ZERO of the smallest loss means the fit found no irreducible loss; E above the
  smallest loss means the law cannot describe the runs below it.
- Refitted without its largest budget, the law predicts that budget's losses within
  EXTRAPOLATION_TOLERANCE (relative, mean over the held-out runs).
- A 95% interval of a wider than CI_WIDTH_A leaves the frontier's slope open; more than
  FAILED_SHARE of failed bootstrap refits leaves intervals resting on a biased subset.
- An exponent alpha or beta below MIN_EXPONENT: the loss barely falls with N (or D), no frontier.
"""
import numpy as np

from analysis import runs as runs_lib

A2_A3_TOLERANCE = 0.05
E_NEAR_ZERO = 0.01
EXTRAPOLATION_TOLERANCE = 0.02
CI_WIDTH_A = 0.1
FAILED_SHARE = 0.10
MIN_EXPONENT = 0.05
MAX_LISTED = 8  # budgets named one by one in a sentence


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
    d["problems"].append("one budget: no frontier exponent can be fitted (N_opt(C) needs runs at "
                         "several compute budgets)")
    d["unidentified"]["frontier"] = "one budget"
  elif k == 2:
    d["problems"].append("two budgets: each frontier exponent is a line through 2 points, and no "
                         "budget is left over to test an extrapolation")
  curves = [row for row in table if row["interior"] is not None]
  if not curves:
    d["checks"].append("no budget has 3 or more sizes: no IsoFLOP minimum to locate")
    return
  edge = [row for row in curves if not row["interior"]]
  d["checks"].append(f"IsoFLOP minima: the lowest loss is interior at {len(curves) - len(edge)} of "
                     f"{len(curves)} budgets with 3 or more sizes")
  # A planned budget's sizes were meant to bracket its minimum; a C group only counts when
  # Approach 2 used it.
  edge = [row for row in edge if planned or row["approach2"]]
  if edge:
    d["problems"].append(
        f"the lowest loss is at the edge of the sizes sampled at {len(edge)} budget"
        f"{'s' if len(edge) > 1 else ''} (" + ", ".join(
            f"{_g(row['flops'])}: N = {_g(row['lowest_loss_n'])}" for row in edge[:MAX_LISTED])
        + (", ..." if len(edge) > MAX_LISTED else "") + "), so "
        + ("their minima" if len(edge) > 1 else "its minimum") + " may lie beyond them")


def _approach_checks(d: dict, fit: dict):
  a3, a2 = fit["chinchilla_approach3"], fit.get("chinchilla_approach2")
  if not a3["converged"]:
    d["problems"].append("approach 3: the L-BFGS fit did not converge")
  for name, symbol in (("alpha", "N"), ("beta", "D")):
    value = a3[name]
    if not value >= MIN_EXPONENT:
      how = (f"≈ 0: the loss barely falls with {symbol}" if value >= 0 else
             f"< 0: the fitted loss rises with {symbol}")
      d["problems"].append(f"approach 3: {name} = {value:.3g} {how}, so the law has no frontier")
      d["unidentified"].setdefault("frontier", f"{name} {'≈ 0' if value >= 0 else '< 0'}")
  if not a2:
    d["checks"].append("approach 2: not fitted (needs IsoFLOP minima at 2 or more budgets), "
                       "nothing to compare approach 3's a with")
    return
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
    d["problems"].append(f"approaches 2 and 3 disagree on the frontier exponent: {text} (more "
                         f"than {A2_A3_TOLERANCE})")


def _e_checks(d: dict, fit: dict, loss):
  e = fit["chinchilla_approach3"]["E"]
  lowest = float(np.min(loss))
  below = int(np.sum(loss < e))
  d["E"] = {"value": e, "min_observed_loss": lowest, "n_losses_below_E": below,
            "near_zero": bool(e < E_NEAR_ZERO * lowest), "above_min_loss": bool(below > 0),
            "loss_floor": fit.get("loss_floor")}
  floor = ("" if fit.get("loss_floor") is None
           else f"; the data's exact floor is {fit['loss_floor']:.3f}")
  if d["E"]["near_zero"]:
    d["problems"].append(f"E = {e:.3g} ≈ 0: the fit found no irreducible loss, so E is not "
                         "identified by these runs")
    d["unidentified"]["E"] = "E ≈ 0"
  elif below:
    d["problems"].append(f"E = {e:.4g} is above the smallest observed loss {lowest:.4g} ({below} "
                         f"run{'s' if below > 1 else ''} below it): the law cannot describe them")
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
      d["problems"].append(f"{k} of {info['n_samples']} bootstrap refits of {name} failed and "
                           "were dropped: its intervals rest on the resamples that happened to fit")
  for name, section in (("approach 3", a3), ("approach 2", a2)):
    if section is None:
      continue
    ci = section["ci95"].get("a")
    if ci is None:
      d["problems"].append(f"{name}: too few bootstrap refits succeeded for an interval of a")
    elif ci[1] - ci[0] > CI_WIDTH_A:
      d["problems"].append(f"{name}: the frontier exponent is uncertain, a in [{ci[0]:.3f}, "
                           f"{ci[1]:.3f}] (95%), wider than {CI_WIDTH_A}")


def _extrapolation_checks(d: dict, check: dict):
  if "skipped" in check:
    d["extrapolation"] = {"skipped": check["skipped"]}
    d["checks"].append(f"no {check['skipped']}")
    return
  errors = check["approach3"]
  held_out = check["held_out_budgets"]
  d["extrapolation"] = {"held_out_budgets": held_out,
                        "n_held_out": len(check["held_out"]), "n_fitted": check["n_fitted"],
                        "mean_abs_error": errors["mean_abs_error"],
                        "max_abs_error": errors["max_abs_error"],
                        "mean_abs_rel_error": errors["mean_abs_rel_error"],
                        "tolerance": EXTRAPOLATION_TOLERANCE,
                        "ok": bool(errors["mean_abs_rel_error"] <= EXTRAPOLATION_TOLERANCE)}
  which = (f"the largest budget ({_g(held_out[0])} FLOPs" if len(held_out) == 1 else
           f"the {len(held_out)} largest budgets ({_g(held_out[0])}..{_g(held_out[-1])} FLOPs")
  text = (f"refitted without {which}, {len(check['held_out'])} runs), approach 3 misses their "
          "losses by "
          f"{errors['mean_abs_error']:.3f} nats on average "
          f"({100 * errors['mean_abs_rel_error']:.1f}%), {errors['max_abs_error']:.3f} at most")
  if d["extrapolation"]["ok"]:
    d["checks"].append(f"extrapolation: {text}")
  else:
    d["problems"].append(f"the law does not extrapolate: {text} (more than "
                         f"{100 * EXTRAPOLATION_TOLERANCE:.0f}%)")


def diagnose(fit: dict, runs, labels, budgets, profiles, budget_tol: float) -> dict:
  """fit.json["diagnostics"] from the fit's sections (approach 3 and 2, extrapolation, bootstrap);
  budgets are the planned ones (a budget column) or runs grouped by C within budget_tol."""
  d = {"problems": [], "checks": [], "unidentified": {}}
  table = budget_table(runs, labels, budgets, profiles)
  planned = bool(np.isfinite(runs.budget).any())
  d.update(n_budgets=len(table), budgets=table, budgets_from=(
      "from the budget column" if planned else f"runs grouped by C within {budget_tol:.0%}"))
  _budget_checks(d, table, planned)
  _approach_checks(d, fit)
  _e_checks(d, fit, runs.loss)
  _bootstrap_checks(d, fit)
  _extrapolation_checks(d, fit["extrapolation"])
  k = len(d["problems"])
  d["verdict"] = ("no problem found by the checks below" if not k else
                  f"{k} problem{'s' if k > 1 else ''} make{'s' if k == 1 else ''} this fit "
                  "unreliable")
  return d


def summary_lines(diagnostics: dict) -> list[str]:
  """The verdict as printed lines: the headline, each problem, then each check."""
  return ([f"How far to trust this fit: {diagnostics['verdict']}"]
          + [f"  problem: {p}" for p in diagnostics["problems"]]
          + [f"  check: {c}" for c in diagnostics["checks"]])
