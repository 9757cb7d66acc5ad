"""How well Approach 2's parabolas find a known IsoFLOP minimum: the window around the lowest loss
(analysis.isoflop.WINDOW) against the whole curve.

  python benchmarks/isoflop_window.py [--draws 200] [--json]

IsoFLOP curves of two Chinchilla laws at C = 1e20: Epoch's fit of the Chinchilla runs (mildly
asymmetric in log N) and a law far steeper on the small-N side (alpha 0.7, beta 0.3, as curves
with tiny models look). Each curve is sampled at K sizes spread evenly in log N over a span S
(N_max / N_min) around the true minimum (shifted by a random factor up to 1.6 either way), with
log-normal noise on the losses. Prints, per case, the median and 90th percentile of
|N_opt fitted / N_opt true - 1| for both fits, over the draws (failed fits count as infinite).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from analysis import isoflop  # pylint: disable=wrong-import-position
from analysis import laws  # pylint: disable=wrong-import-position

LAWS = {"epoch": {"E": 1.8172, "A": 477.8, "B": 2143.8, "alpha": 0.3473, "beta": 0.3672},
        "steep_small_n": {"E": 1.8, "A": 3e4, "B": 2143.8, "alpha": 0.7, "beta": 0.3}}
SAMPLINGS = ((5, 16.0), (9, 100.0), (11, 900.0), (15, 1e4))  # (sizes K, span S)
NOISE = (0.0, 0.003, 0.01)
BUDGET = 1e20


def errors(law, sizes, span, noise, draws, rng, window):
  truth = laws.chinchilla_optimum(BUDGET, law["A"], law["B"], law["alpha"], law["beta"])[0]
  out = []
  for _ in range(draws if noise else 1):
    n = truth * np.exp(rng.uniform(-0.5, 0.5)) * np.geomspace(span ** -0.5, span ** 0.5, sizes)
    d = BUDGET / (6 * n)
    loss = laws.chinchilla_loss(n, d, **law) * np.exp(rng.normal(0, noise, sizes))
    profile = isoflop.fit_profile(BUDGET, n, d, loss, window=window)
    out.append(abs(profile.n_opt / truth - 1) if isinstance(profile, isoflop.Profile) else np.inf)
  return np.array(out)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--draws", type=int, default=200)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  rows = []
  for name, law in LAWS.items():
    for sizes, span in SAMPLINGS:
      for noise in NOISE:
        row = {"law": name, "sizes": sizes, "span": span, "noise": noise}
        for fit, window in (("window", isoflop.WINDOW), ("whole", 0)):
          e = errors(law, sizes, span, noise, args.draws, np.random.default_rng(0), window)
          row[fit] = {"median": float(np.median(e)), "p90": float(np.percentile(e, 90))}
        rows.append(row)
        print(f"{name:>14} K={sizes:>2} S={span:>6g} noise={noise:<5g} |N_opt error| median "
              f"(90%): window {row['window']['median']:6.1%} ({row['window']['p90']:6.1%}), "
              f"whole curve {row['whole']['median']:6.1%} ({row['whole']['p90']:6.1%})")
  if args.json:
    print(json.dumps({"window": isoflop.WINDOW, "draws": args.draws, "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
