"""The data-constrained study: `python -m analysis.data_constrained --results CSV --out DIR`.

Reads a data-constrained sweep's results.csv (sweep.kind = data_constrained: model sizes x
unique-token pools x epochs, with a fresh-data run of every N and total tokens), fits the law of
Muennighoff et al. 2023 (analysis/forms/data_constrained.py) with bootstrap intervals, and writes
DIR/data_constrained.json: the law (`R_D_star`, `R_D_star_interval`, `R_N_star`,
`R_N_star_interval`, and the rest), `excess` (per repeated run: its eval loss above the fresh-data
run of the same N and tokens, and the law's prediction of it), the synthetic source's `loss_floor`
where known and `at_floor`, the law refitted with E held at that floor; and
DIR/data_constrained.png, the paper's figure: loss against epochs for each pool.
"""
import argparse
import csv
import math
import os
import sys

import numpy as np

from analysis.forms import data_constrained as form
from analysis.runs import DataError
from core import files

REQUIRED = ("status", "n_params", "tokens", "unique_tokens", "final_eval_loss")
BOOTSTRAP = 200


def load(path: str) -> list[dict]:
  """The completed runs of a results table: n, unique, d, epochs, loss, floor."""
  if not os.path.isfile(path):
    raise DataError(f"results file {path} does not exist")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  missing = [c for c in REQUIRED if c not in (rows[0].keys() if rows else ())]
  if missing:
    raise DataError(f"{path} lacks {', '.join(missing)}: give the results.csv of a "
                    "data-constrained sweep (sweep.kind=data_constrained)")
  number = lambda row, key: float(row[key]) if row.get(key) not in (None, "") else None
  runs = [{"run_id": row.get("run_id"), "n": number(row, "n_params"),
           "unique": number(row, "unique_tokens"), "d": number(row, "tokens"),
           "loss": number(row, "final_eval_loss"), "floor": number(row, "loss_floor")}
          for row in rows if row["status"] == "completed"]
  runs = [r for r in runs if r["loss"] is not None and math.isfinite(r["loss"])]
  if not runs:
    raise DataError(f"{path} has no completed run")
  for r in runs:
    r["epochs"] = r["d"] / r["unique"]
  return runs


def excess(runs, law: dict) -> list[dict]:
  """Each repeated run's eval loss above the fresh run of its N and tokens, measured and by the law."""
  fresh = {(r["n"], r["d"]): r["loss"] for r in runs if r["epochs"] <= form.FRESH}
  rows = []
  for r in sorted(runs, key=lambda r: (r["unique"], r["n"], r["d"])):
    if r["epochs"] <= form.FRESH or (r["n"], r["d"]) not in fresh:
      continue
    n, u, d = (np.array([r[k]]) for k in ("n", "unique", "d"))
    predicted = form.predict(law, n, u, d)[0] - form.predict(law, n, d, d)[0]
    rows.append({"unique_tokens": r["unique"], "epochs": r["epochs"], "n": r["n"],
                 "excess_loss": r["loss"] - fresh[(r["n"], r["d"])],
                 "predicted_excess_loss": float(predicted)})
  return rows


def interval(values) -> list | None:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else None


def plot(path: str, runs, law: dict) -> None:
  """Loss against epochs, one panel per model size, a line per pool (Muennighoff et al. Fig. 3)."""
  import matplotlib  # pylint: disable=g-import-not-at-top (plots are optional)
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  sizes = sorted({r["n"] for r in runs})
  pools = sorted({r["unique"] for r in runs if r["epochs"] > form.FRESH})
  fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 3.6), squeeze=False)
  for ax, n in zip(axes[0], sizes):
    for colour, u in zip(plt.cm.viridis(np.linspace(0, 0.85, max(1, len(pools)))), pools):
      mine = sorted([r for r in runs if r["n"] == n and (r["unique"] == u or (
          r["epochs"] <= form.FRESH and r["d"] == u))], key=lambda r: r["epochs"])
      ax.plot([r["epochs"] for r in mine], [r["loss"] for r in mine], "o", color=colour,
              label=f"U = {u:.3g} tokens")
      epochs = np.geomspace(1, max(r["epochs"] for r in mine), 50)
      ax.plot(epochs, form.predict(law, np.full(50, n), np.full(50, u), u * epochs), "-",
              color=colour, lw=1)
    fresh = sorted([r for r in runs if r["n"] == n and r["epochs"] <= form.FRESH],
                   key=lambda r: r["d"])
    if pools:
      ax.plot([r["d"] / pools[0] for r in fresh], [r["loss"] for r in fresh], "k--", lw=1,
              label=f"fresh data (x: tokens / {pools[0]:.3g})")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="epochs", ylabel="final eval loss (nats)", title=f"N = {n:.3g}")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def analyse(results: str, out: str) -> dict:
  runs = load(results)
  n, u, d, loss = (np.array([r[k] for r in runs]) for k in ("n", "unique", "d", "loss"))
  law_fit = form.fit(n, u, d, loss)
  samples = form.bootstrap(law_fit, n, u, d, loss, BOOTSTRAP)
  law = law_fit.params
  floors = [r["floor"] for r in runs if r["floor"] is not None]
  at_floor = None
  if floors:  # the synthetic source's exact floor: the law with E held there, beside the free fit
    fit_at_floor = form.fit(n, u, d, loss, floor=float(np.mean(floors)))
    at_floor = {**fit_at_floor.params, "fit": fit_at_floor.to_dict(),
                "excess": excess(runs, fit_at_floor.params)}
  rows = excess(runs, law)
  measured = np.array([r["excess_loss"] for r in rows])
  predicted = np.array([r["predicted_excess_loss"] for r in rows])
  result = {"source": results, "n_runs": len(runs), **law,
            "R_D_star_interval": interval(samples["R_D_star"]),
            "R_N_star_interval": interval(samples["R_N_star"]),
            "E_interval": interval(samples["E"]), "bootstrap_samples": BOOTSTRAP,
            "fit": law_fit.to_dict(), "loss_floor": float(np.mean(floors)) if floors else None,
            "excess": rows,
            "excess_rms_error": float(np.sqrt(np.mean((measured - predicted) ** 2))) if rows else None,
            "at_floor": at_floor,
            "plots": {}}
  os.makedirs(out, exist_ok=True)
  try:
    plot(os.path.join(out, "data_constrained.png"), runs, law)
    result["plots"]["loss_vs_epochs"] = "data_constrained.png"
  except Exception as error:  # pylint: disable=broad-except
    print(f"warning: the plot failed ({error}); data_constrained.json is written", file=sys.stderr)
  files.write_json_atomic(os.path.join(out, "data_constrained.json"), result)
  return result


def summary_lines(result: dict) -> list[str]:
  ci = lambda key: ("[{:.3g}, {:.3g}]".format(*result[key]) if result.get(key) else "n/a")
  lines = [f"data-constrained law on {result['n_runs']} runs: R_D* = {result['R_D_star']:.3g} "
           f"{ci('R_D_star_interval')}, R_N* = {result['R_N_star']:.3g} {ci('R_N_star_interval')}, "
           f"E = {result['E']:.3f} {ci('E_interval')} (floor {result['loss_floor']})",
           f"{'U':>9} {'epochs':>6} {'N':>9} {'excess':>8} {'law':>8}"]
  at_floor = result.get("at_floor")
  if at_floor:
    lines[0] += (f"; with E at the floor: R_D* = {at_floor['R_D_star']:.3g}, "
                 f"R_N* = {at_floor['R_N_star']:.3g}")
    lines[1] += f" {'law@floor':>9}"
  for i, r in enumerate(result["excess"]):
    lines.append(f"{r['unique_tokens']:>9.3g} {r['epochs']:>6.3g} {r['n']:>9.3g} "
                 f"{r['excess_loss']:>8.4f} {r['predicted_excess_loss']:>8.4f}"
                 + (f" {at_floor['excess'][i]['predicted_excess_loss']:>9.4f}" if at_floor else ""))
  return lines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m analysis.data_constrained",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--results", required=True, help="a data-constrained sweep's results.csv")
  parser.add_argument("--out", required=True, help="directory for data_constrained.json and .png")
  args = parser.parse_args(argv)
  try:
    result = analyse(args.results, args.out)
  except DataError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print("\n".join(summary_lines(result)))
  print(f"written: {os.path.join(args.out, 'data_constrained.json')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
