"""Predicted branches against trained ones: how far the curve law's final losses (sweeps/predict.py)
lie from the branches' measured losses, what the prediction saves, and what it changes in the fit.

  python benchmarks/predicted_branches.py --full DIR [--predicted DIR] [--config F] [--json]
      [--config.key=value ...]

--full: a branch sweep whose every branch trained (`python sweep.py --workdir DIR`; trained here
first when DIR has no results.csv). Per family the laws are fitted on the trunk and its shortest and
longest branch, as a predicting sweep would, and predict every other branch, all of which were
measured here: the error per form (mean and max |predicted - measured| / measured, the mean
signed error), per budget. The noise yardstick: the relative difference between the two seeds
of one (N, D) (half of it: a seed against the pair's mean). The cost: cost.json's ratio of the
full sweep, and of the same plan with sweep.predict_branches. --predicted: a predicting sweep of
the same plan (`--config.sweep.predict_branches=True`): its cost and its fitted frontier
exponents beside the full sweep's.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--full", required=True, help="a branch sweep with every branch trained")
  parser.add_argument("--predicted", help="a sweep of the same plan with predict_branches")
  parser.add_argument("--config", default=os.path.join(ROOT, "experiments", "default_sweep.py"))
  parser.add_argument("--json", action="store_true")
  args, rest = parser.parse_known_args(argv)
  return args, [a for a in rest if a.startswith("--config.")]


def seed_noise(results) -> dict:
  """Relative |difference| between the seeds of one (N, D), over the points with two seeds."""
  by_point: dict = {}
  for row in results:
    if row["status"] == "completed":
      by_point.setdefault((row["n_params"], row["tokens"]), []).append(float(row["final_eval_loss"]))
  diffs = [abs(a - b) / ((a + b) / 2) for a, b, *_ in (v for v in by_point.values() if len(v) > 1)]
  return {"pairs": len(diffs), "mean": statistics.mean(diffs) if diffs else None,
          "median": statistics.median(diffs) if diffs else None,
          "max": max(diffs) if diffs else None}


def exponents(sweep_dir: str) -> dict:
  path = os.path.join(sweep_dir, "analysis", "fit.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    fit = json.load(f)
  a3 = fit["chinchilla_approach3"]
  out = {"approach3_a": a3.get("frontier_exponents", a3).get("a"),
         "n_points": fit["n_points"], "predicted_points": len(fit.get("predicted") or [])}
  for name in ("chinchilla_approach2", "chinchilla_approach1"):
    if name in fit:
      out[name.replace("chinchilla_", "") + "_a"] = fit[name]["a"]
  out["verdict"] = fit.get("diagnostics", {}).get("verdict")
  return out


def main(argv=None) -> int:
  args, overrides = parse_args(argv)
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_platforms", "cpu")
  from core.config import load_config  # pylint: disable=g-import-not-at-top
  from sweeps import branches, predict  # pylint: disable=g-import-not-at-top
  from sweeps.rows import TRUNK, read_plan  # pylint: disable=g-import-not-at-top
  if not os.path.exists(os.path.join(args.full, "results.csv")):
    subprocess.run([sys.executable, "sweep.py", "--config", args.config, "--workdir", args.full,
                    *overrides], cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
  config = load_config(os.path.abspath(args.config), overrides)
  # The study's rows: the verification run (sweeps/verify.py) and its trunk join plan.csv later.
  budgets = {float(b) for b in config.sweep.budgets}
  rows = [r for r in read_plan(args.full) if r.kind == TRUNK or r.budget in budgets]
  rows = [r for r in rows if r.kind != TRUNK or any(b.trunk == r.run_id for b in rows)]
  record = predict.predict(args.full, rows, config)
  with open(os.path.join(args.full, "results.csv"), newline="") as f:
    results = list(csv.DictReader(f))
  measured = {r["run_id"]: float(r["final_eval_loss"]) for r in results
              if r["status"] == "completed"}
  per_form: dict = {}
  for p in record["predictions"]:
    if p["run"] not in measured:
      continue
    error = (p["predicted_final_loss"] - measured[p["run"]]) / measured[p["run"]]
    per_form.setdefault(p["form"], {}).setdefault(f"{p['budget']:.3g}", []).append(error)
  errors = {}
  for form, by_budget in per_form.items():
    every = [e for v in by_budget.values() for e in v]
    errors[form] = {"n": len(every), "mean_abs": statistics.mean(map(abs, every)),
                    "max_abs": max(map(abs, every)), "mean_signed": statistics.mean(every),
                    "by_budget_mean_abs": {b: statistics.mean(map(abs, v))
                                           for b, v in sorted(by_budget.items(), key=lambda kv:
                                                              float(kv[0]))}}
  figures = {"full": args.full, "errors": errors, "seed_noise": seed_noise(results),
             "families": len(record["families"]),
             "cost_full": branches.cost(rows)["ratio"],
             "cost_predicted_plan": branches.cost(predict.choose(
                 rows, config.sweep.held_out_branches))["ratio"],
             # No plan that trains each trunk to its longest branch's start costs less.
             "trunks_only": sum(r.flops for r in rows if r.kind == TRUNK)
             / branches.cost(rows)["flops_independent"],
             "fit_full": exponents(args.full)}
  if args.predicted:
    with open(os.path.join(args.predicted, "cost.json")) as f:
      figures["cost_predicted"] = json.load(f)["ratio"]
    figures["fit_predicted"] = exponents(args.predicted)
    # The predicting sweep's predicted rows against the same runs trained in the full sweep.
    with open(os.path.join(args.predicted, "results.csv"), newline="") as f:
      rows_predicted = [r for r in csv.DictReader(f) if r["status"] == "predicted"]
    errors_predicted = [(float(r["final_eval_loss"]) - measured[r["run_id"]]) / measured[r["run_id"]]
                        for r in rows_predicted if r["run_id"] in measured]
    if errors_predicted:
      figures["predicted_vs_trained"] = {
          "n": len(errors_predicted), "form": rows_predicted[0]["predicted_by"],
          "mean_abs": statistics.mean(map(abs, errors_predicted)),
          "max_abs": max(map(abs, errors_predicted)),
          "mean_signed": statistics.mean(errors_predicted)}
    curves = os.path.join(args.predicted, "analysis", predict.CURVES)
    if os.path.exists(curves):
      with open(curves) as f:
        used = json.load(f)
      figures["predicted_sweep_used_form"] = used["used_form"]
      figures["predicted_sweep_held_out_error"] = used["held_out_final_error_mean"]
  for form, e in errors.items():
    print(f"{form}: {e['n']} branches, |error| mean {100 * e['mean_abs']:.2f}% max "
          f"{100 * e['max_abs']:.2f}%, signed mean {100 * e['mean_signed']:+.2f}%; by budget "
          + ", ".join(f"{b} {100 * v:.2f}%" for b, v in e["by_budget_mean_abs"].items()))
  noise = figures["seed_noise"]
  if noise["mean"] is not None:
    print(f"seed noise: two seeds of one (N, D) differ by {100 * noise['mean']:.2f}% mean, "
          f"{100 * noise['max']:.2f}% max ({noise['pairs']} pairs)")
  print(f"cost ratio: full {figures['cost_full']:.3f}, predicted plan "
        f"{figures['cost_predicted_plan']:.3f} (trunks alone {figures['trunks_only']:.3f})")
  if "predicted_vs_trained" in figures:
    e = figures["predicted_vs_trained"]
    print(f"the predicting sweep's {e['n']} predicted branches ({e['form']}) against the same runs "
          f"trained: |error| mean {100 * e['mean_abs']:.2f}% max {100 * e['max_abs']:.2f}%, "
          f"signed mean {100 * e['mean_signed']:+.2f}%")
    full, pred = figures["fit_full"], figures["fit_predicted"]
    print("frontier a, full -> predicted: " + ", ".join(
        f"{k.replace('_a', '')} {full[k]:.3f} -> {pred[k]:.3f}" for k in full
        if k.endswith("_a") and k in pred))
  if args.json:
    print(json.dumps(figures))
  return 0


if __name__ == "__main__":
  sys.exit(main())
