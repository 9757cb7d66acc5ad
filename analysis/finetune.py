"""python -m analysis.finetune --results CSV --out DIR [--json]: a fine-tuning sweep's analysis.

Reads a fine-tuning sweep's results.csv (sweeps/kinds/finetune.py; each row a run's result.json
flattened) and writes DIR/finetune.json, DIR/finetune.md, DIR/finetune.html and two figures:
- per method (full, LoRA at each rank), the law of Zhang et al. 2024 L(N, D_f) = A N^-alpha
  D_f^-beta + E (analysis/forms/finetune.py), N the base model's non-embedding parameters and D_f
  the fine-tuning tokens, with E free (as the paper fits it) and with E held at the fine-tuning
  data's exact floor when it is known (`laws_at_floor`);
- the cost table, per base size and method: trainable parameters, optimizer state, median tokens/s,
  and at the largest D_f the fine-tuning loss above its floor (adaptation still to go) and the
  forgetting (the original data's eval loss after minus before, on the same sequences);
- the forgetting table: both of those at every D_f;
- the claims of the PEFT literature checked run by run: does LoRA cost less (optimizer state,
  tokens/s) and forget less than full fine-tuning of the same base on the same data?
Figures: finetune_loss.png (loss above the floor against D_f, a panel per base size, a line per
method, the fitted laws dashed) and forgetting.png (forgetting against D_f, a panel per method,
a line per base size). Input that cannot be analysed: one line on stderr, exit code 2.
"""
import argparse
import csv
import os
import sys

import numpy as np

from analysis import fitter, forms, plots, report
from analysis.forms import finetune as finetune_form
from analysis.runs import DataError
from core import files

REQUIRED = ("status", "n_params", "tokens", "final_eval_loss", "finetune.method",
            "trainable_params", "optimizer_state_bytes", "original_data_eval_loss_before",
            "original_data_eval_loss")
CAPTIONS = {
    "finetune_loss": "Fine-tuning eval loss above the fine-tuning data's exact floor against the "
                     "fine-tuning tokens D_f, one panel per base model size N, one line per "
                     "method; dashed: each method's law L(N, D_f) = A N^-alpha D_f^-beta + E "
                     "fitted with E at the floor.",
    "forgetting": "Forgetting (the original data's eval loss after fine-tuning minus before) "
                  "against D_f, one panel per method, one line per base model size N.",
}


def method_label(row: dict) -> str:
  if row["finetune.method"] == "full":
    return "full"
  return f"lora r{int(float(row['finetune.lora_rank']))}"


def number(row, key):
  value = row.get(key, "")
  return float(value) if value not in ("", None) else None


def load(path: str) -> list[dict]:
  """The completed fine-tuning runs of a results table, as numbers."""
  if not os.path.isfile(path):
    raise DataError(f"results file {path} does not exist")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  columns = rows[0].keys() if rows else ()
  missing = [c for c in REQUIRED if c not in columns]
  if missing:
    raise DataError(f"{path} lacks {', '.join(missing)}: give the results.csv of a fine-tuning "
                    "sweep (sweep.kind=finetune)")
  runs = []
  for row in rows:
    if row["status"] != "completed":
      continue
    runs.append({"run_id": row.get("run_id"), "method": method_label(row),
                 "n": number(row, "n_params"), "n_total": number(row, "n_params_total"),
                 "d": number(row, "tokens"), "loss": number(row, "final_eval_loss"),
                 "floor": number(row, "loss_floor"), "trainable": number(row, "trainable_params"),
                 "optimizer_bytes": number(row, "optimizer_state_bytes"),
                 "tokens_per_sec": number(row, "median_tokens_per_sec"),
                 "before": number(row, "original_data_eval_loss_before"),
                 "after": number(row, "original_data_eval_loss"),
                 "finetune_before": number(row, "finetune_eval_loss_before")})
  if not runs:
    raise DataError(f"{path} has no completed fine-tuning run")
  return runs


def methods_of(runs) -> list[str]:
  return sorted({r["method"] for r in runs}, key=lambda m: (m != "full", len(m), m))


def mean(values):
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def cells(runs):
  """{(N, method, D_f): the mean of each figure over the runs there (seeds)}."""
  grouped = {}
  for r in runs:
    grouped.setdefault((r["n"], r["method"], r["d"]), []).append(r)
  return {key: {field: mean([r[field] for r in group]) for field in
                ("loss", "floor", "trainable", "n_total", "optimizer_bytes", "tokens_per_sec",
                 "before", "after", "finetune_before")}
          for key, group in grouped.items()}


def fit_laws(runs, fixed_E=None) -> dict:
  """{method: the fitted law (E held at fixed_E if given), or {"skipped": why}} per method."""
  laws = {}
  for method in methods_of(runs):
    mine = [r for r in runs if r["method"] == method]
    if len({r["n"] for r in mine}) < 2 or len({r["d"] for r in mine}) < 2 or \
        len(mine) < finetune_form.MIN_POINTS:
      laws[method] = {"skipped": f"{len(mine)} runs over {len({r['n'] for r in mine})} base "
                                 f"sizes and {len({r['d'] for r in mine})} budgets: the law needs "
                                 f"{finetune_form.MIN_POINTS} runs, 2 sizes and 2 budgets"}
      continue
    law_fit = fitter.fit(forms.get("finetune"), ([r["n"] for r in mine], [r["d"] for r in mine]),
                         [r["loss"] for r in mine],
                         fixed=None if fixed_E is None else {"e": float(np.log(fixed_E))})
    laws[method] = law_fit.to_dict()
  return laws


def table_rows(table: dict) -> list[dict]:
  """One row per (base size, method): costs, and the losses at the largest D_f."""
  out = []
  pairs = sorted({(n, m) for n, m, _ in table}, key=lambda k: (k[0], k[1] != "full", k[1]))
  for n, method in pairs:
    budgets = sorted(d for n2, m2, d in table if (n2, m2) == (n, method))
    last = table[(n, method, budgets[-1])]
    speeds = [table[(n, method, d)]["tokens_per_sec"] for d in budgets]
    out.append({"n": n, "method": method, "trainable": last["trainable"],
                "trainable_fraction": (last["trainable"] / last["n_total"] if last["n_total"]
                                       else None),
                "optimizer_bytes": last["optimizer_bytes"], "tokens_per_sec": mean(speeds),
                "d_max": budgets[-1], "above_floor": above(last["loss"], last["floor"]),
                "forgetting": last["after"] - last["before"],
                "by_budget": {d: {"above_floor": above(table[(n, method, d)]["loss"],
                                                       table[(n, method, d)]["floor"]),
                                  "forgetting": table[(n, method, d)]["after"]
                                  - table[(n, method, d)]["before"]} for d in budgets}})
  return out


def above(loss, floor):
  return None if floor is None else loss - floor


def claims(table: dict) -> dict:
  """LoRA against full fine-tuning of the same base on the same D_f, point by point."""
  out = {}
  for method in sorted({m for _, m, _ in table} - {"full"}):
    pairs = [(table[(n, method, d)], table[(n, "full", d)]) for n, m, d in table
             if m == method and (n, "full", d) in table]
    if not pairs:
      continue
    ratio = lambda key: [a[key] / b[key] for a, b in pairs if a[key] and b[key]]
    forgetting = [(a["after"] - a["before"], b["after"] - b["before"]) for a, b in pairs]
    out[method] = {
        "points": len(pairs),
        "optimizer_state_vs_full": [min(ratio("optimizer_bytes")), max(ratio("optimizer_bytes"))],
        "tokens_per_sec_vs_full": (float(np.median(ratio("tokens_per_sec")))
                                   if ratio("tokens_per_sec") else None),
        "loss_minus_full": [min(a["loss"] - b["loss"] for a, b in pairs),
                            max(a["loss"] - b["loss"] for a, b in pairs)],
        "forgets_less_points": sum(mine < theirs for mine, theirs in forgetting),
        "forgetting_mean": float(np.mean([mine for mine, _ in forgetting])),
        "full_forgetting_mean": float(np.mean([theirs for _, theirs in forgetting])),
    }
  return out


def count(value) -> str:
  return "–" if value is None else f"{round(value):,}"


def kib(value) -> str:
  return "–" if value is None else f"{value / 2 ** 10:,.1f}"


def blocks(result: dict) -> list:
  fmt = report.fmt
  out = [("h1", "Fine-tuning: LoRA beside full fine-tuning"),
         ("p", f"{result['n_runs']} completed fine-tuning runs from {result['source']}. Losses are "
               "eval losses in nats; floors are the data's exact Bayes floors (synthetic data), "
               "forgetting is the original data's eval loss after minus before.")]
  out += [("h2", "Cost and outcome per base size and method"),
          ("table", ["base N", "method", "trainable params", "% of base", "optimizer state KiB",
                     "tokens/s", "D_f", "FT loss - floor", "forgetting"],
           [[count(r["n"]), r["method"], count(r["trainable"]),
             fmt(None if r["trainable_fraction"] is None else 100 * r["trainable_fraction"]),
             kib(r["optimizer_bytes"]), count(r["tokens_per_sec"]), fmt(r["d_max"]),
             fmt(r["above_floor"]), fmt(r["forgetting"])] for r in result["table"]])]
  budgets = sorted({d for r in result["table"] for d in r["by_budget"]})
  out += [("h2", "Fine-tuning loss above its floor / forgetting, by fine-tuning tokens D_f"),
          ("table", ["base N", "method"] + [f"D_f {fmt(d)}" for d in budgets],
           [[count(r["n"]), r["method"]] + [
               (f"{fmt(r['by_budget'][d]['above_floor'])} / {fmt(r['by_budget'][d]['forgetting'])}"
                if d in r["by_budget"] else "–") for d in budgets] for r in result["table"]])]
  law_rows = []
  for fitted, laws in (("free", result["laws"]), ("= floor", result["laws_at_floor"])):
    for method, law in laws.items():
      if "skipped" in law:
        law_rows.append([method, fitted] + ["–"] * 6 + [law["skipped"]])
        continue
      law_rows.append([method, fitted, fmt(law["A"]), fmt(law["alpha"]), fmt(law["beta"]),
                       fmt(law["E"]),
                       fmt(above(law["E"], result["loss_floor"])),
                       str(law["n_points"]), fmt(law["converged"])])
  out += [("h2", "Fitted law per method: L(N, D_f) = A N^-alpha D_f^-beta + E (Zhang et al. 2024)"),
          ("p", "Huber (delta 1e-3) on log L, L-BFGS from a grid of starting points, as "
                "Chinchilla's Approach 3; N is the base model's non-embedding size. E free, as "
                "the paper fits it, and E held at the fine-tuning data's exact floor (the "
                "exponents of the loss above the floor)."),
          ("table", ["method", "E fitted", "A", "alpha", "beta", "E", "E - floor", "runs",
                     "converged"],
           law_rows)]
  claim_lines = []
  for method, c in result["claims"].items():
    speed = c["tokens_per_sec_vs_full"]
    claim_lines.append(
        f"{method} vs full ({c['points']} base x D_f points): optimizer state "
        f"{fmt(c['optimizer_state_vs_full'][0])}-{fmt(c['optimizer_state_vs_full'][1])} of full's; "
        f"tokens/s x{fmt(speed)} (median); fine-tuning loss "
        f"{c['loss_minus_full'][0]:+.3f} to {c['loss_minus_full'][1]:+.3f} nats against full; "
        f"forgets less at {c['forgets_less_points']} of {c['points']} points (mean forgetting "
        f"{fmt(c['forgetting_mean'])} vs full's {fmt(c['full_forgetting_mean'])} nats)")
  out += [("h2", "Does PEFT cost less and forget less?"),
          ("list", claim_lines or ["no full fine-tuning runs to compare with"])]
  out += [("h2", "Figures")] + [("figure", file, CAPTIONS[name])
                                for name, file in result["plots"].items()]
  return out


def plot_losses(path, runs, laws, methods):
  sizes = sorted({r["n"] for r in runs})
  fig, axes = plots._figure(len(sizes))  # pylint: disable=protected-access
  axes = np.atleast_1d(axes)
  colours = {m: f"C{i}" for i, m in enumerate(methods)}
  for ax, n in zip(axes, sizes):
    for method in methods:
      mine = sorted((r for r in runs if r["n"] == n and r["method"] == method),
                    key=lambda r: r["d"])
      if not mine or mine[0]["floor"] is None:
        continue
      d = np.array([r["d"] for r in mine])
      ax.plot(d, [r["loss"] - r["floor"] for r in mine], "o-", color=colours[method], label=method)
      law = laws.get(method, {})
      if "A" in law:
        grid = np.geomspace(d.min(), d.max(), 50)
        ax.plot(grid, finetune_form.finetune_loss(n, grid, law["A"], law["alpha"], law["beta"],
                                                 law["E"]) - mine[0]["floor"], "--",
                color=colours[method])
    plots._log_axes(  # pylint: disable=protected-access
        ax, "fine-tuning tokens D_f", "FT loss - floor (nats)", f"base N = {n:.3g}",
        loss_axis=True)
    ax.legend(fontsize=8)
  fig.savefig(path)


def plot_forgetting(path, runs, methods):
  sizes = sorted({r["n"] for r in runs})
  fig, axes = plots._figure(len(methods))  # pylint: disable=protected-access
  axes = np.atleast_1d(axes)
  forgetting = [r["after"] - r["before"] for r in runs]
  margin = 0.05 * (max(forgetting) - min(forgetting) or 1)
  limits = (min(0, min(forgetting)) - margin, max(forgetting) + margin)
  for ax, method in zip(axes, methods):
    for i, n in enumerate(sizes):
      mine = sorted((r for r in runs if r["n"] == n and r["method"] == method),
                    key=lambda r: r["d"])
      if mine:
        ax.plot([r["d"] for r in mine], [r["after"] - r["before"] for r in mine], "o-",
                color=f"C{i}", label=f"N = {n:.3g}")
    ax.set_ylim(*limits)  # one scale for every method, so the panels compare
    ax.set_xscale("log")
    ax.set_xlabel("fine-tuning tokens D_f")
    ax.set_ylabel("forgetting (nats)")
    ax.set_title(method)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
  fig.savefig(path)


def analyse(results: str, out: str) -> dict:
  """Every part of the analysis; writes DIR's files and returns finetune.json's contents."""
  runs = load(results)
  table = cells(runs)
  methods = methods_of(runs)
  floors = [r["floor"] for r in runs if r["floor"] is not None]
  result = {"source": results, "n_runs": len(runs), "methods": methods,
            "loss_floor": mean(floors), "laws": fit_laws(runs),
            "laws_at_floor": fit_laws(runs, mean(floors)) if floors else {},
            "table": table_rows(table),
            "claims": claims(table), "plots": {}}
  os.makedirs(out, exist_ok=True)
  try:
    if floors:
      plot_losses(os.path.join(out, "finetune_loss.png"), runs, result["laws_at_floor"], methods)
      result["plots"]["finetune_loss"] = "finetune_loss.png"
    plot_forgetting(os.path.join(out, "forgetting.png"), runs, methods)
    result["plots"]["forgetting"] = "forgetting.png"
  except Exception as error:  # pylint: disable=broad-except
    print(f"warning: the plots failed ({error}); the tables are written", file=sys.stderr)
  files.write_json_atomic(os.path.join(out, "finetune.json"), result)
  files.write_atomic(os.path.join(out, "finetune.md"), report.to_markdown(blocks(result)))
  files.write_atomic(os.path.join(out, "finetune.html"), report.to_html(blocks(result), out))
  return result


def summary_lines(result: dict) -> list[str]:
  fmt = report.fmt
  lines = [f"{'base N':>8} {'method':>8} {'trainable':>10} {'opt KiB':>9} {'tokens/s':>9} "
           f"{'D_f':>8} {'FT-floor':>9} {'forgetting':>10}"]
  for r in result["table"]:
    lines.append(f"{count(r['n']):>8} {r['method']:>8} {count(r['trainable']):>10} "
                 f"{kib(r['optimizer_bytes']):>9} {count(r['tokens_per_sec']):>9} "
                 f"{fmt(r['d_max']):>8} {fmt(r['above_floor']):>9} {fmt(r['forgetting']):>10}")
  for fitted, laws in (("", result["laws"]), (" (E = floor)", result["laws_at_floor"])):
    for method, law in laws.items():
      lines.append(f"{method}{fitted}: " + (
          law["skipped"] if "skipped" in law else
          f"L = {fmt(law['A'])} N^-{law['alpha']:.3f} D_f^-{law['beta']:.3f} + {law['E']:.3f}"
          + ("" if law["converged"] else "  [NOT CONVERGED]")))
  return lines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m analysis.finetune",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--results", required=True, help="a fine-tuning sweep's results.csv")
  parser.add_argument("--out", required=True, help="directory for finetune.json, .md, .html, plots")
  parser.add_argument("--json", action="store_true", help="print finetune.json as the last line")
  args = parser.parse_args(argv)
  try:
    result = analyse(args.results, args.out)
  except DataError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return report.print_outcome(summary_lines(result), os.path.join(args.out, "finetune.md"),
                              result, args.json)


if __name__ == "__main__":
  sys.exit(main())
