"""The model families' scaling laws side by side: one table and one figure.

  python -m analysis.families --results CSV [CSV ...] --out DIR [--n-col COL] [--json]
  python -m analysis.families --fit FAMILY=FIT_JSON [--fit ...] --out DIR [--json]

Results tables (a sweep's results.csv: train.py records each run's `family`) may hold one family or
several; each family is fitted on its own by the analysis package (`pipeline.fit_all`: Approach 3,
Approach 2 where runs share IsoFLOP budgets, Kaplan), as `python -m analysis --family F` fits it.
Or give the fit.json files such analyses wrote, naming the family of each. Writes DIR/families.json,
DIR/families.md and DIR/families.png and prints the tables; with --json, the families.json
contents as the last line. Input that cannot be fitted: one line on stderr, exit code 2.

Table 1 gives each family's Approach 3 law (E, A, B, alpha, beta) and frontier exponents
(N_opt ∝ C^a, D_opt ∝ C^b; Approach 2's beside them); table 2 gives N_opt and tokens per
parameter D_opt/N_opt at every budget the sweeps planned, from each family's law. Every loss is a mean per
target token of the family's own objective (model/objectives.py), so the exponents compare
directly, while each E is the floor of a different task (a masked token seen from both sides is
easier to predict than the next one). A family whose runs do not pin the law down (a fitted
exponent alpha or beta at or below 0: loss that does not fall with N, or with D, over the sweep)
has no frontier; the table says so rather than print one.

The figure, one colour per family: N_opt(C) and D_opt/N_opt against C (Approach 3 laws as lines,
Approach 2's IsoFLOP minima as points) and, for results tables, the final loss of every run against
N, one line per budget (the IsoFLOP profiles the frontiers come from).
"""
import argparse
import json
import os
import sys

import numpy as np
from matplotlib.figure import Figure

from analysis import laws
from analysis import pipeline
from analysis import runs as runs_lib
from core import files
from model.families import OBJECTIVES

LAW_KEYS = ("E", "A", "B", "alpha", "beta", "a", "b")


def families_in(path: str) -> list[str]:
  """The families of the completed runs of a results table, in OBJECTIVES order."""
  columns, rows, _ = runs_lib.read_table(path)
  if rows and "family" not in columns:
    raise runs_lib.DataError(f"{path} has no family column; give tables that train.py runs wrote, "
                             "or --fit FAMILY=FIT_JSON")
  found = {row["family"] for row in rows if row.get("status", "completed") == "completed"}
  return sorted(found, key=lambda f: (list(OBJECTIVES).index(f) if f in OBJECTIVES else 99, f))


def summarise(fit: dict) -> dict:
  """The part of a fit (fit.json contents, or pipeline.fit_all's) that the comparison uses."""
  a3 = fit["chinchilla_approach3"]
  a2 = fit.get("chinchilla_approach2")
  law = {k: float(a3[k]) for k in LAW_KEYS}
  return {"n_points": int(fit["n_points"]), "loss_floor": fit.get("loss_floor"),
          "converged": bool(a3["converged"]), **law,
          "has_frontier": law["alpha"] > 0 and law["beta"] > 0,
          "approach2": ({"a": float(a2["a"]), "b": float(a2["b"]),
                         "minima": [{k: float(p[k]) for k in ("flops", "n_opt", "d_opt")}
                                    for p in a2["profiles"]]} if a2 else None)}


def fit_results(paths, n_col=None) -> dict:
  """{family: summary} for every family of the given results tables, each fitted on its own."""
  summaries = {}
  for path in paths:
    for family in families_in(path):
      if family in summaries:
        raise runs_lib.DataError(f"family {family} is in two of the tables; give each once")
      runs = runs_lib.load(path, n_col=n_col, family=family)
      fit, _ = pipeline.fit_all(runs)
      summaries[family] = {**summarise(fit), "runs": [
          {"n": float(n), "loss": float(loss), "budget": float(budget)}
          for n, loss, budget in zip(runs.n, runs.loss, runs.budget)]}
  if not summaries:
    raise runs_lib.DataError("the tables hold no completed runs")
  return summaries


def read_fits(pairs) -> dict:
  """{family: summary} from FAMILY=FIT_JSON pairs."""
  summaries = {}
  for pair in pairs:
    family, sep, path = pair.partition("=")
    if not sep or not family or not os.path.isfile(path):
      raise runs_lib.DataError(f"--fit {pair!r}: give FAMILY=PATH of an existing fit.json")
    with open(path) as f:
      summaries[family] = summarise(json.load(f))
  return summaries


def budgets_of(summaries: dict) -> list[float]:
  """The IsoFLOP budgets any family's sweep planned (Approach 2's groups), ascending."""
  return sorted({m["flops"] for s in summaries.values() if s["approach2"]
                 for m in s["approach2"]["minima"]})


def frontier(summary: dict, flops) -> tuple[np.ndarray, np.ndarray]:
  """(N_opt, D_opt) of a family's Approach 3 law at compute C = 6ND."""
  return laws.chinchilla_optimum(np.asarray(flops, float), summary["A"], summary["B"],
                                 summary["alpha"], summary["beta"])


def compare(summaries: dict) -> dict:
  """families.json: each family's law and, at every planned budget, N_opt and D_opt/N_opt."""
  budgets = budgets_of(summaries)
  rows = []
  for flops in budgets:
    row = {"flops": flops}
    for family, summary in summaries.items():
      n_opt, d_opt = frontier(summary, flops)
      row[family] = ({"n_opt": float(n_opt), "d_opt": float(d_opt),
                      "tokens_per_param": float(d_opt / n_opt)}
                     if summary["has_frontier"] else None)
    rows.append(row)
  families = {family: {"objective": OBJECTIVES.get(family),
                       **{k: v for k, v in summary.items() if k != "runs"}}
              for family, summary in summaries.items()}
  return {"families": families, "frontier": rows}


def _fmt(value) -> str:
  if value is None:
    return "–"
  return f"{value:.3g}" if abs(value) >= 1e4 or abs(value) < 1e-2 else f"{value:.3f}"


def tables(comparison: dict) -> str:
  """The two tables as Markdown."""
  families = comparison["families"]
  lines = ["| family | objective | runs | E | A | B | alpha | beta | a | b | a (Appr. 2) "
           "| b (Appr. 2) |", "|" + "---|" * 12]
  notes = []
  for family, s in families.items():
    a2 = s["approach2"] or {}
    lines.append(f"| {family} | {s['objective'] or '–'} | {s['n_points']} | "
                 + " | ".join(_fmt(s[k]) for k in LAW_KEYS)
                 + f" | {_fmt(a2.get('a'))} | {_fmt(a2.get('b'))} |")
    if not s["converged"]:
      notes.append(f"{family}: Approach 3 did not converge.")
    if not s["approach2"]:
      notes.append(f"{family}: fewer than 2 IsoFLOP budgets have their loss minimum inside the "
                   "sampled sizes, so only the fitted law places the frontier.")
    if not s["has_frontier"]:
      notes.append(f"{family}: no frontier; the fitted law has alpha = {_fmt(s['alpha'])}, "
                   f"beta = {_fmt(s['beta'])} (loss does not fall with both N and D here).")
  lines += [""] + notes + ([""] if notes else [])
  lines += ["| budget C | " + " | ".join(f"{f}: N_opt, D/N" for f in families) + " |",
            "|" + "---|" * (len(families) + 1)]
  cell = lambda point: f"{point['n_opt']:.3g}, {point['tokens_per_param']:.1f}" if point else "–"
  for row in comparison["frontier"]:
    lines.append(f"| {row['flops']:.3g} | " + " | ".join(cell(row[f]) for f in families) + " |")
  return "\n".join(lines)


def plot(path: str, summaries: dict) -> None:
  """N_opt(C) and D_opt/N_opt(C) per family (Approach 3 lines, Approach 2 minima as points), and
  the runs' IsoFLOP profiles when the summaries hold them."""
  budgets = budgets_of(summaries) or sorted(
      {r["budget"] for s in summaries.values() for r in s.get("runs", ())
       if np.isfinite(r["budget"])}) or [1e18]
  flops = np.geomspace(budgets[0] / 2, budgets[-1] * 2, 100)
  with_runs = any(s.get("runs") for s in summaries.values())
  fig = Figure(figsize=(6.4 * (2 + with_runs), 4.8), dpi=110, layout="constrained")
  ax_n, ax_r, *ax_runs = fig.subplots(1, 2 + with_runs)
  for i, (family, s) in enumerate(summaries.items()):
    if s["has_frontier"]:
      n_opt, d_opt = frontier(s, flops)
      ax_n.plot(flops, n_opt, color=f"C{i}", label=f"{family}: N_opt ∝ C^{s['a']:.2f}")
      ax_r.plot(flops, d_opt / n_opt, color=f"C{i}", label=family)
    for budget in sorted({r["budget"] for r in s.get("runs", ())}):
      points = sorted((r["n"], r["loss"]) for r in s["runs"] if r["budget"] == budget)
      ax_runs[0].plot(*zip(*points), "o-", color=f"C{i}", ms=3, lw=1,
                      label=family if budget == min(r["budget"] for r in s["runs"]) else None)
    if s["approach2"]:
      minima = s["approach2"]["minima"]
      c = [m["flops"] for m in minima]
      ax_n.scatter(c, [m["n_opt"] for m in minima], color=f"C{i}", zorder=3)
      ax_r.scatter(c, [m["d_opt"] / m["n_opt"] for m in minima], color=f"C{i}", zorder=3)
  axes = [(ax_n, "training FLOPs C = 6ND", "compute-optimal parameters N_opt", "log"),
          (ax_r, "training FLOPs C = 6ND", "tokens per parameter D_opt / N_opt", "log")]
  axes += [(ax, "parameters N", "final loss (one line per budget)", "linear") for ax in ax_runs]
  for ax, xlabel, ylabel, yscale in axes:
    ax.set_xscale("log")
    ax.set_yscale(yscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  fig.suptitle("Frontiers by model family (lines: Approach 3; points: IsoFLOP minima)")
  fig.savefig(path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m analysis.families",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--results", nargs="+", default=[],
                      help="results tables with a family column")
  parser.add_argument("--fit", action="append", default=[], metavar="FAMILY=FIT_JSON",
                      help="a family's fit.json from `python -m analysis` (repeatable)")
  parser.add_argument("--out", required=True, help="directory for families.json, .md and .png")
  parser.add_argument("--n-col", help="parameter column for the fits (default: as python -m "
                                      "analysis picks it)")
  parser.add_argument("--json", action="store_true", help="print families.json as the last line")
  args = parser.parse_args(argv)
  if bool(args.results) == bool(args.fit):
    parser.error("give --results CSV ... or --fit FAMILY=FIT_JSON ..., not both")
  try:
    summaries = fit_results(args.results, args.n_col) if args.results else read_fits(args.fit)
  except (runs_lib.DataError, OSError, ValueError) as e:  # DataError is a ValueError
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyError as e:
    print(f"error: a fit.json lacks the field {e}; give the fit.json of `python -m analysis`",
          file=sys.stderr)
    return 2
  comparison = compare(summaries)
  os.makedirs(args.out, exist_ok=True)
  plot(os.path.join(args.out, "families.png"), summaries)
  text = tables(comparison)
  files.write_atomic(os.path.join(args.out, "families.md"),
                     "# Scaling laws by model family\n\n" + text + "\n\n![frontiers](families.png)\n")
  files.write_atomic(os.path.join(args.out, "families.json"), json.dumps(comparison, indent=1))
  print(text)
  print(f"report: {os.path.join(args.out, 'families.md')}")
  if args.json:
    print(json.dumps(comparison))
  return 0


if __name__ == "__main__":
  sys.exit(main())
