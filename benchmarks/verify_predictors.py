"""Which predictor of a larger budget's loss to trust: backtests on published IsoFLOP tables and
on sweeps' results.csv.

  python benchmarks/verify_predictors.py TABLE.csv [...] [--factor 4] [--json]

A sweep's verification run predicts the compute-optimal loss at `factor` x its largest budget.
This benchmark asks the same question of data that already holds the answer: for each table and
each budget C_k with a budget near factor x C_k in the table, the predictors are fitted on the
runs of budgets <= C_k only and predict the IsoFLOP minimum loss at the held-out budget, which
approach 2 (analysis/isoflop.py's default estimator) measures on that budget's own runs.

Predictors:
- `approach3`: the parametric law L(N, D) fitted on the runs (analysis/fitter.py), at the held-out
  minimum's (N_opt, D_opt);
- `minima_power`: a power law L_opt = k C^-s through the fitted budgets' minimum losses;
- `minima_floor`: L_opt = E + k C^-s through the minima, E the approach-3 fit's
  (both `analysis.isoflop.minimum_loss_at`, which sweeps/verify.py records beside approach 3);
- where the table has a known loss floor (a sweep on the synthetic source): `approach3_at_floor`,
  the law refitted with E fixed at the floor, and `minima_known_floor`, the minima's power law
  above the floor.
Prints per table the signed relative error (predicted - measured) / measured of each predictor
and their medians; with --json one JSON line.
"""
import argparse
import json
import os
import statistics
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=wrong-import-position

from analysis import fitter, forms, isoflop  # pylint: disable=wrong-import-position
from analysis import runs as runs_lib  # pylint: disable=wrong-import-position

PREDICTORS = ("approach3", "minima_power", "minima_floor", "approach3_at_floor",
              "minima_known_floor")
RATIO_TOL = 1.3  # a held-out budget within this factor of factor x C_k


def profiles_of(runs):
  labels, budgets = runs_lib.isoflop_groups(runs)
  return isoflop.fit_profiles(runs, labels, budgets, warn=False)


def predict(runs, upto: float, target) -> dict:
  """Each predictor's loss at the held-out profile `target`, fitted on budgets <= upto."""
  labels, budgets = runs_lib.isoflop_groups(runs)
  keep = np.isin(labels, np.flatnonzero(np.asarray(budgets) <= upto * (1 + 1e-9)))
  fitted = runs.subset(keep)
  form = forms.get(forms.PRIMARY)
  law = fitter.fit(form, (fitted.n, fitted.d), fitted.loss)
  minima = profiles_of(fitted)
  c = np.array([p.budget for p in minima])
  l_opt = np.array([p.loss_opt for p in minima])
  out = {"approach3": float(np.exp(fitter.predict_log(form, law.raw, ([target.n_opt],
                                                                     [target.d_opt]))[0]))}
  floors = {"minima_power": 0.0, "minima_floor": law.params["E"]}
  if runs.loss_floor:
    floors["minima_known_floor"] = runs.loss_floor
    at_floor = fitter.fit(form, (fitted.n, fitted.d), fitted.loss,
                          fixed={form.floor: float(np.log(runs.loss_floor))})
    out["approach3_at_floor"] = float(np.exp(fitter.predict_log(
        form, at_floor.raw, ([target.n_opt], [target.d_opt]))[0]))
  for name, floor in floors.items():
    loss = isoflop.minimum_loss_at(c, l_opt, target.budget, floor)
    if loss is not None:
      out[name] = loss
  return out


def backtests(path: str, factor: float) -> list[dict]:
  runs = runs_lib.load(path)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    profiles = profiles_of(runs)
    out = []
    for i, base in enumerate(profiles):
      later = [p for p in profiles[i + 1:]
               if abs(np.log(p.budget / (factor * base.budget))) <= np.log(RATIO_TOL)]
      fitted_budgets = sum(p.budget <= base.budget for p in profiles)
      if not later or fitted_budgets < 3:
        continue
      target = later[0]
      predicted = predict(runs, base.budget, target)
      out.append({"fitted_upto": base.budget, "budgets_fitted": fitted_budgets,
                  "held_out": target.budget, "measured": target.loss_opt,
                  **{f"{k}_error": (v - target.loss_opt) / target.loss_opt
                     for k, v in predicted.items()}})
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("tables", nargs="+")
  parser.add_argument("--factor", type=float, default=4.0)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  for path in args.tables:
    if not os.path.exists(path):
      print(f"error: {path} does not exist", file=sys.stderr)
      return 2
  summary = {"factor": args.factor, "load": os.getloadavg()[0], "tables": {}}
  every = {k: [] for k in PREDICTORS}
  for path in args.tables:
    rows = backtests(path, args.factor)
    name = os.path.relpath(path) if len(rows) else path
    summary["tables"][name] = rows
    for row in rows:
      for k in PREDICTORS:
        if f"{k}_error" in row:
          every[k].append(row[f"{k}_error"])
    print(f"{name}: {len(rows)} backtests")
    for row in rows:
      errors = "  ".join(f"{k} {row[f'{k}_error']:+.2%}" for k in PREDICTORS
                         if f"{k}_error" in row)
      print(f"  fitted up to {row['fitted_upto']:.3g} ({row['budgets_fitted']} budgets), "
            f"held out {row['held_out']:.3g} (measured {row['measured']:.4f}): {errors}")
  summary["median_abs_error"] = {k: statistics.median(abs(e) for e in v) if v else None
                                 for k, v in every.items()}
  summary["median_error"] = {k: statistics.median(v) if v else None for k, v in every.items()}
  summary["n"] = {k: len(v) for k, v in every.items()}
  for k in PREDICTORS:
    if every[k]:
      print(f"{k}: median |error| {summary['median_abs_error'][k]:.2%}, median error "
            f"{summary['median_error'][k]:+.2%} over {len(every[k])} backtests")
  if args.json:
    print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
