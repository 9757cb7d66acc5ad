"""Approach 1's a on a branch sweep under each choice of envelope points, side by side.

  python benchmarks/approach1_variants.py --sweep DIR [--json]

From DIR/results.csv and DIR/runs/: the envelope (analysis/envelope.py) of (1) the whole training
curves (trunk rows included: approach 1 before analysis/cooled.py), (2) each trunk's cooled curve
as analysis/cooled.py builds it (predicted cooled losses and the measured branch endpoints), (3)
the predicted cooled losses alone, (4) the measured branch endpoints alone, (5) the cooled curves
predicted through the law at each measured endpoint instead of the endpoint. One law fit per
trunk, shared by (2)-(5). With --known-law FIT_JSON: the design alone (see known_law), also with
every size's cooled curve over the whole compute range (its trunk run to the largest budget). Prints a per variant (with its interior sizes) and the CPU seconds of the
fits; one JSON line with --json.
"""
import argparse
import json
import os
import resource
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from analysis import cooled  # pylint: disable=wrong-import-position
from analysis import envelope  # pylint: disable=wrong-import-position
from analysis import laws  # pylint: disable=wrong-import-position
from analysis.runs import DataError  # pylint: disable=wrong-import-position


def fit_a(curves, n) -> dict:
  grid = envelope.flops_grid_of(curves)
  loss, tokens = envelope.loss_grid(curves, grid)
  fit = envelope.fit_envelope(envelope.envelope(n, loss, tokens, grid))
  return {"a": None, "reason": fit} if isinstance(fit, str) else {
      "a": fit["a"], "n_sizes": fit["n_sizes"], "n_points": fit["n_points"]}


def known_law(fams, fit_json) -> dict:
  """Approach 1 on the sweep's own design with losses from a known law: fit_json's approach 3
  (L = E + A N^-alpha + B D^-beta at the runs' N and D) at every cooled length of every trunk, with
  and without the trunks' lengths below their shortest branch. Its a in counted FLOPs is the
  frontier_exponents' a; the envelope's a differs from it only by the design (sizes, budgets)."""
  with open(fit_json) as f:
    fit = json.load(f)
  fitted, gamma = fit["chinchilla_approach3"], fit["flops_convention"]["gamma"]
  out = []
  # The fitted law, then laws of other exponents whose N_opt at the middle budget is the fitted
  # law's (B rescaled), so the sweep's sizes stay centred on the optimum.
  for alpha, beta in ((fitted["alpha"], fitted["beta"]), (0.3, 0.3), (0.6, 0.3), (0.3, 0.6),
                      (0.5, 0.5), (0.4, 0.6)):
    law = {**fitted, "alpha": alpha, "beta": beta}
    if alpha != fitted["alpha"] or beta != fitted["beta"]:
      c_mid = np.sqrt(8e10 * 1.2e12) / fit["flops_convention"]["k"]
      n_mid = laws.chinchilla_optimum(c_mid, fitted["A"], fitted["B"], fitted["alpha"],
                                      fitted["beta"], 1.0, gamma)[0]
      # alpha A N^-alpha = gamma beta B D^-beta at N = n_mid, D = c_mid / n_mid^gamma.
      d_mid = c_mid / n_mid ** gamma
      law["B"] = alpha * law["A"] * n_mid ** -alpha / (gamma * beta * d_mid ** -beta)
    row = {"alpha": alpha, "beta": beta, "law_a": laws.frontier_exponents_at(alpha, beta, gamma)[0]}
    top = max(f.curves[-1].total_steps * f.flops_per_step for f in fams)
    bottom = min(f.curves[0].total_steps * f.flops_per_step for f in fams) / 2
    for name in ("from_half_shortest", "from_shortest", "every_size_whole_range"):
      curves = []
      for fam in fams:
        steps = cooled.lengths(fam)
        if name == "from_shortest":
          steps = steps[steps >= fam.curves[0].total_steps]
        if name == "every_size_whole_range":  # trunks run to the largest budget: no design window
          steps = np.unique(np.round(np.geomspace(bottom, top, cooled.POINTS * 2)
                                     / fam.flops_per_step).astype(int))
        tokens = steps * fam.curves[-1].tokens_per_step
        loss = law["E"] + law["A"] * fam.n ** -alpha + law["B"] * tokens ** -beta
        curves.append((steps * fam.flops_per_step, tokens, loss))
      row[name] = fit_a(curves, np.array([f.n for f in fams]))
    print(row)
    out.append(row)
  return {"known_laws": out}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sweep", required=True)
  parser.add_argument("--json", action="store_true")
  parser.add_argument("--known-law", metavar="FIT_JSON",
                      help="only approach 1 on the sweep's design with fit.json's approach 3 law")
  args = parser.parse_args(argv)
  whole, n, fams = cooled.sweep_families(args.sweep)
  if args.known_law:
    print(json.dumps(known_law(fams, args.known_law)))
    return
  cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
  variants = {k: ([], []) for k in ("cooled", "predicted_only", "endpoints_only",
                                    "law_at_endpoints")}
  for fam in fams:
    measured = np.array(fam.endpoints).T
    variants["endpoints_only"][0].append(tuple(measured))
    variants["endpoints_only"][1].append(fam.n)
    try:
      form, law_fit = cooled.fit_law(cooled.fit_curves(fam))
    except DataError:
      continue
    steps = cooled.lengths(fam)
    steps = steps[[s not in {c.total_steps for c in fam.curves} for s in steps]]
    loss = np.array([cooled.predict_final(form, law_fit, cooled.schedule_of(fam.config, s), fam.n)
                     for s in steps])
    at_ends = np.array([cooled.predict_final(form, law_fit, c.lr, fam.n) for c in fam.curves])
    pred = (steps * fam.flops_per_step, steps * fam.curves[-1].tokens_per_step, loss)
    for name, extra in (("cooled", measured[2]), ("law_at_endpoints", at_ends), ("predicted_only",
                                                                                  None)):
      f, t, l = pred
      if extra is not None:
        f, t, l = (np.concatenate([f, measured[0]]), np.concatenate([t, measured[1]]),
                   np.concatenate([l, extra]))
      order = np.argsort(f)
      variants[name][0].append((f[order], t[order], l[order]))
      variants[name][1].append(fam.n)
  fit_cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
  out = {"sweep": args.sweep, "whole_curves": fit_a(whole, n), "fit_cpu_s": fit_cpu,
         "load_1min": os.getloadavg()[0]}
  for name, (curves, sizes) in variants.items():
    out[name] = fit_a(curves, np.array(sizes))
  for name, value in out.items():
    print(f"{name}: {value}")
  if args.json:
    print(json.dumps(out))


if __name__ == "__main__":
  main()
