"""A sweep's verification run: its task accuracy predicted against measured, and whether the
sweep's accuracy moves with compute at all.

  python benchmarks/icl_verify.py --sweep DIR [--bootstrap 20,100] [--json]

Reads DIR/results.csv and DIR/analysis/verify.json (a sweep whose verification run trained,
sweeps/verify.py) and writes nothing. Per task (tasks.NAME columns):
  trend       the least-squares slope of accuracy in log10 C over the sweep's completed runs with
              its standard error, the rise it implies from the smallest budget to the verification
              budget, and the binomial standard error of one run's accuracy on its instances,
              sqrt(p (1 - p) / examples), p the sweep's mean accuracy;
  prediction  per resample count S and law: analysis.tasks.predict_tasks's predicted accuracy and
              95% interval (S resamples; the CPU seconds of all tasks' fits), the measured
              accuracy, and the error (predicted - measured) in binomial standard errors.
"""
import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from analysis import tasks  # pylint: disable=g-import-not-at-top,wrong-import-position


def trend(path: str, budget: float) -> dict:
  """{task: slope, its standard error, rise to `budget`, mean accuracy, binomial standard error}."""
  with open(path, newline="") as f:
    rows = [row for row in csv.DictReader(f) if row.get("status") == "completed"]
  c = np.log10([float(row["flops"]) for row in rows])
  out = {}
  for name in tasks.task_columns(path):
    acc = np.array([float(row[f"tasks.{name}.accuracy"]) for row in rows])
    examples = float(rows[0][f"tasks.{name}.examples"])
    (slope, intercept), cov = np.polyfit(c, acc, 1, cov=True)
    mean = float(np.mean(acc))
    out[name] = {"runs": len(rows), "slope_per_decade": float(slope),
                 "slope_se": float(math.sqrt(cov[0, 0])),
                 "rise_to_verification": float(slope * (math.log10(budget) - c.min())),
                 "mean_accuracy": mean, "spread_sd": float(np.std(acc, ddof=1)),
                 "binomial_se": math.sqrt(mean * (1 - mean) / examples), "examples": examples}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sweep", required=True)
  parser.add_argument("--bootstrap", default="20", help="comma-separated resample counts")
  parser.add_argument("--json", action="store_true", help="print one JSON line")
  args = parser.parse_args(argv)
  path = os.path.join(args.sweep, "results.csv")
  with open(os.path.join(args.sweep, "analysis", "verify.json")) as f:
    record = json.load(f)
  with open(os.path.join(args.sweep, "runs", record["run_id"], "result.json")) as f:
    measured = {name: task["accuracy"] for name, task in json.load(f)["tasks"].items()}
  point = {"n_params": record["n_params"], "n_params_total": record["n"], "tokens": record["d"],
           "flops": record["flops"]}
  out = {"sweep": args.sweep, "run": record["run_id"], "budget": record["budget"],
         "trend": trend(path, record["budget"]), "predictions": {}, "cpu_s": {},
         "load_average": os.getloadavg()}
  for s in [int(x) for x in args.bootstrap.split(",")]:
    start = time.process_time()
    predicted = tasks.predict_tasks(path, point, s)
    out["cpu_s"][s] = time.process_time() - start
    out["predictions"][s] = {
        name: {law: {**p, "measured_accuracy": measured[name],
                     "error_in_se": (p["predicted_accuracy"] - measured[name])
                                    / out["trend"][name]["binomial_se"]}
               for law, p in task["predictions"].items()} for name, task in predicted.items()}
  if args.json:
    print(json.dumps(out))
    return 0
  for name, t in out["trend"].items():
    print(f"{name}: slope {t['slope_per_decade']:+.4f} +- {t['slope_se']:.4f} per decade of C "
          f"({t['runs']} runs; rise to the verification budget {t['rise_to_verification']:+.3f}); "
          f"mean {t['mean_accuracy']:.3f}, spread sd {t['spread_sd']:.3f}, binomial se "
          f"{t['binomial_se']:.3f}")
  for s, by_task in out["predictions"].items():
    print(f"{s} resamples ({out['cpu_s'][s]:.1f} CPU s):")
    for name, laws in by_task.items():
      for law, p in laws.items():
        interval = p["interval"] and f"[{p['interval'][0]:.3f}, {p['interval'][1]:.3f}]"
        print(f"  {name} {law:<13} predicted {p['predicted_accuracy']:.3f} {interval}  measured "
              f"{p['measured_accuracy']:.3f}  error {p['error_in_se']:+.2f} se")
  return 0


if __name__ == "__main__":
  sys.exit(main())
