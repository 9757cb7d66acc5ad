"""The IsoFLOP-minimum estimators (analysis.isoflop.ESTIMATORS) side by side on studies drawn from
known laws: bias, spread and worst case of the frontier exponent a, and the per-budget log N_opt
error.

  python benchmarks/isoflop_estimators.py [--seeds 100] [--json]

A study: one law, 3-6 budgets spread over 1.5-3 decades, at each K sizes (5-15) even in log N
over a span S (4-64x) around the true minimum, centred on it or shifted by up to S^(1/4) either
way at each budget (off-centre), losses times exp(noise) with noise 0.5%, 1% or 2%. The design is
drawn per seed; every estimator sees the same studies. a is fitted through the minima of the
budgets an estimator could use; a study where it had fewer than 2 counts as failed.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from analysis import isoflop  # pylint: disable=wrong-import-position
from analysis import laws  # pylint: disable=wrong-import-position

LAWS = {  # (law, log10 of the smallest budget)
    "chinchilla": ({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, 18),
    "epoch": ({"E": 1.8172, "A": 477.8, "B": 2143.8, "alpha": 0.3473, "beta": 0.3672}, 18),
    "asymmetric": ({"E": 1.8, "A": 3e4, "B": 2143.8, "alpha": 0.7, "beta": 0.3}, 18),
    "small_cpu": ({"E": 2.0, "A": 20.0, "B": 30.0, "alpha": 0.45, "beta": 0.30}, 10),
}
NOISE = (0.005, 0.01, 0.02)


def study(law, low, noise, centred, rng):
  """(curves, log10 budgets, true log10 N_opt per budget) of one drawn design."""
  k = int(rng.integers(3, 7))
  budgets = 10 ** np.linspace(low, low + rng.uniform(1.5, 3.0), k)
  sizes, span = int(rng.integers(5, 16)), float(np.exp(rng.uniform(np.log(4), np.log(64))))
  curves, truth = [], []
  for budget in budgets:
    n_true = laws.chinchilla_optimum(budget, law["A"], law["B"], law["alpha"], law["beta"])[0]
    shift = 1.0 if centred else np.exp(rng.uniform(-1, 1) * np.log(span) / 4)
    n = n_true * shift * np.geomspace(span ** -0.5, span ** 0.5, sizes)
    d = budget / (6 * n)
    loss = laws.chinchilla_loss(n, d, **law) * np.exp(rng.normal(0, noise, sizes))
    curves.append(isoflop.Curve(np.log10(n), loss, np.log10(d), np.ones(sizes)))
    truth.append(np.log10(n_true))
  return curves, np.log10(budgets), np.array(truth)


def summary(errors, failed, per_budget):
  e = np.asarray(errors)
  return {"a_bias": float(np.mean(e)), "a_std": float(np.std(e)),
          "a_p95_abs": float(np.percentile(np.abs(e), 95)), "a_worst_abs": float(np.max(np.abs(e))),
          "failed": int(failed), "log10_n_opt_bias": float(np.mean(per_budget)),
          "log10_n_opt_rms": float(np.sqrt(np.mean(np.square(per_budget))))}


def run(seeds: int, methods) -> tuple[list[dict], dict]:
  rows, seconds = [], {m: 0.0 for m in methods}
  for name, (law, low) in LAWS.items():
    a_true = law["beta"] / (law["alpha"] + law["beta"])
    for noise in NOISE:
      for centred in (True, False):
        rng = np.random.default_rng([len(rows), seeds])
        draws = [study(law, low, noise, centred, rng) for _ in range(seeds)]
        for method in methods:
          errors, failed, per_budget = [], 0, []
          start = time.perf_counter()
          for curves, log_c, truth in draws:
            minima = isoflop.estimate_minima(curves, method)
            ok = [i for i, m in enumerate(minima) if isinstance(m, isoflop.Minimum)]
            per_budget += [minima[i].x_opt - truth[i] for i in ok]
            if len(ok) < 2:
              failed += 1
              continue
            errors.append(np.polyfit(log_c[ok], [minima[i].x_opt for i in ok], 1)[0] - a_true)
          seconds[method] += time.perf_counter() - start
          rows.append({"law": name, "a_true": a_true, "noise": noise, "centred": centred,
                       "method": method, "studies": seeds,
                       **summary(errors or [np.nan], failed, per_budget or [np.nan])})
  return rows, seconds


def pooled(rows, methods) -> dict:
  """Per estimator over every case: the mean |bias|, the mean std, the worst case, failures."""
  out = {}
  for m in methods:
    mine = [r for r in rows if r["method"] == m]
    out[m] = {"mean_abs_bias": float(np.mean([abs(r["a_bias"]) for r in mine])),
              "max_abs_bias": float(np.max([abs(r["a_bias"]) for r in mine])),
              "mean_std": float(np.mean([r["a_std"] for r in mine])),
              "worst_abs": float(np.max([r["a_worst_abs"] for r in mine])),
              "failed": int(sum(r["failed"] for r in mine)),
              "studies": int(sum(r["studies"] for r in mine))}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=100, help="studies per (law, noise, centring)")
  parser.add_argument("--methods", default=",".join(isoflop.ESTIMATORS))
  parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
  args = parser.parse_args(argv)
  methods = args.methods.split(",")
  rows, seconds = run(args.seeds, methods)
  for r in rows:
    print(f"{r['law']:>10} noise {r['noise']:<5g} {'centred' if r['centred'] else 'off-centre':>10}"
          f" {r['method']:>8}: a bias {r['a_bias']:+.4f} std {r['a_std']:.4f} p95 "
          f"{r['a_p95_abs']:.4f} worst {r['a_worst_abs']:.4f} failed {r['failed']:>3}; log10 N_opt "
          f"bias {r['log10_n_opt_bias']:+.3f} rms {r['log10_n_opt_rms']:.3f}")
  totals = pooled(rows, methods)
  for m, t in totals.items():
    print(f"{m:>8}: mean |bias| {t['mean_abs_bias']:.4f} (max {t['max_abs_bias']:.4f}), mean std "
          f"{t['mean_std']:.4f}, worst {t['worst_abs']:.4f}, failed {t['failed']} of "
          f"{t['studies']}, {seconds[m]:.1f} s")
  if args.json:
    print(json.dumps({"seeds": args.seeds, "machine": platform.machine(),
                      "cpus": os.cpu_count(), "pooled": totals, "seconds": seconds, "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
