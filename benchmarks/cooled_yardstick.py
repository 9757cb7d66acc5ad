"""How well a curve law predicts a branch sweep's cooled-down losses: the yardstick of approach 1's
cooled envelope (analysis/cooled.py).

  python benchmarks/cooled_yardstick.py --sweep DIR [--forms tissue multipower] [--json]

For every trunk of the sweep DIR (DIR/results.csv, DIR/runs/) and every branch of it, the law
fitted (a) on the trunk alone and (b) on the trunk and the other branches (leave one branch out)
predicts the held-out branch: its final loss against the branch's measured end (the smoothed
train loss approach 1 reads, analysis/envelope.py) and the mean relative error over its cooldown
points. Also (c) the law fitted on everything, as approach 1 fits it. Prints a table per form and
one JSON line with --json (the summaries: mean and max |relative error| of each).
"""
import argparse
import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from analysis import cooled  # pylint: disable=wrong-import-position
from analysis.runs import DataError  # pylint: disable=wrong-import-position


def fitted(fam, form_name, leave_out):
  """(form, LawFit) on the trunk alone (leave_out "all"), without branch leave_out, or on
  everything (None); None when it cannot be fitted."""
  curves = cooled.fit_curves(fam, None if leave_out == "all" else leave_out)
  try:
    return cooled.fit_law(curves[:1] if leave_out == "all" else curves, form_name)
  except DataError:
    return None


def held_out(fam, k, law):
  """(relative error of the final loss, mean relative error over the cooldown) of branch k under
  `law` (None when it could not be fitted)."""
  from analysis.curves import areas, fit  # pylint: disable=g-import-not-at-top
  if law is None:
    return None
  form, law_fit = law
  curve = fam.curves[k]
  after = curve.steps > fam.branch_steps[k]
  h = areas.history(curve.lr)
  p = fit.predict(form, law_fit, curve.__class__(curve.run, curve.n, curve.lr, curve.steps[after],
                                                 curve.loss[after], curve.tokens_per_step),
                  h, fit.node_size([h]))
  final = cooled.predict_final(form, law_fit, curve.lr)
  measured = fam.endpoints[k][2]
  return (final - measured) / measured, p.curve_error_mean


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sweep", required=True)
  parser.add_argument("--forms", nargs="+", default=["tissue", "multipower"])
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  _, _, fams = cooled.sweep_families(args.sweep)
  out = {"sweep": args.sweep, "trunks": len(fams), "load_1min": os.getloadavg()[0]}
  for form_name in args.forms:
    start, cpu = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    rows = []
    for fam in fams:
      alone, every = fitted(fam, form_name, "all"), fitted(fam, form_name, None)
      for k in range(len(fam.curves)):
        rows.append((fam.trunk, fam.branch_steps[k], held_out(fam, k, alone),
                     held_out(fam, k, fitted(fam, form_name, k)), held_out(fam, k, every)))
        print(rows[-1], flush=True)
    print(f"\n{form_name}: trunk, branch step, final-loss error (trunk alone / leave one branch "
          "out / all fitted) and cooldown mean error of each")
    summary = {}
    for j, name in ((2, "trunk_alone"), (3, "leave_one_out"), (4, "all_fitted")):
      got = [r[j] for r in rows if r[j] is not None]
      final = np.abs([g[0] for g in got])
      mean = np.array([g[1] for g in got])
      summary[name] = {"n": len(got), "failed": len(rows) - len(got),
                       "final_abs_rel_mean": float(final.mean()) if len(got) else None,
                       "final_abs_rel_max": float(final.max()) if len(got) else None,
                       "final_rel_mean_signed": float(np.mean([g[0] for g in got])) if got else None,
                       "cooldown_rel_mean": float(mean.mean()) if len(got) else None}
    for r in rows:
      cells = " ".join("   failed     " if c is None else f"{100 * c[0]:+6.2f}% {100 * c[1]:5.2f}%"
                       for c in r[2:])
      print(f"{r[0]:32s} {r[1]:5d} {cells}")
    summary["wall_s"] = time.time() - start
    summary["cpu_s"] = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
    out[form_name] = summary
    print(json.dumps(summary))
  if args.json:
    print(json.dumps(out))


if __name__ == "__main__":
  main()
