"""Chinchilla Approach 2: IsoFLOP profiles (Hoffmann et al. 2022, section 3.2, Figure 3).

For each compute budget, a parabola in log N is fitted to the final losses of the runs spending
that budget, near its lowest loss; its vertex is the loss-optimal N for the budget. Power laws
through the vertices give N_opt(C) ∝ C^a and D_opt(C) ∝ C^b. D_opt at a budget is read off the
group's own (N, D) pairs (log D is linear in log N along an IsoFLOP curve), so it holds whatever
FLOP convention C uses.

The window: a profile is a parabola only near its minimum. Far from it IsoFLOP curves are
asymmetric (a model too small for its budget loses far more than one too large), and a parabola
through the whole curve is pulled towards the steep side. So each parabola is fitted to the runs
whose N lies within a factor WINDOW (4) of the lowest-loss run's N, and to the 3 sizes nearest that
run when the window holds fewer (`window=0`: the whole curve, as Hoffmann et al. describe it).
benchmarks/isoflop_window.py measures both on curves of known minimum (docs/design.md has the
figures): the window is never far off, the whole curve is off by up to 2.4x on a steep curve,
while with 1% noise on a mild curve the whole curve's extra points scatter less.

A budget is skipped, with a warning, when it has fewer than 3 distinct sizes (a parabola needs 3),
when its parabola opens downward, or when the vertex lies outside the sizes it was fitted to (an
extrapolated minimum is not a measurement).
"""
import dataclasses
import warnings

import numpy as np

from analysis import laws
from analysis import runs as runs_lib
from analysis.runs import AnalysisWarning


WINDOW = 4.0  # fit runs within this factor in N of the lowest-loss run (0: the whole curve)
MIN_SIZES = 3


@dataclasses.dataclass(frozen=True)
class Profile:
  """One IsoFLOP curve: its runs, the parabola p0 x^2 + p1 x + p2 in x = log10 N fitted to the
  runs in `fitted` (the window), its vertex."""
  budget: float
  n: np.ndarray
  d: np.ndarray
  loss: np.ndarray
  parabola: np.ndarray
  n_opt: float
  d_opt: float
  loss_opt: float
  fitted: np.ndarray


def window_mask(n, loss, window: float = WINDOW) -> np.ndarray:
  """The runs of one budget its parabola is fitted to: N within a factor `window` of the
  lowest-loss run's N, widened to the MIN_SIZES sizes nearest it (0: every run)."""
  n = np.asarray(n, np.float64)
  if not window:
    return np.ones(len(n), bool)
  x = np.log(n)
  distance = np.abs(x - x[np.argmin(loss)])
  inside = distance <= np.log(window) * (1 + 1e-9)
  sizes = runs_lib.group_log(n, 1e-3)
  if len(np.unique(sizes[inside])) < MIN_SIZES:
    nearest = sorted(np.unique(sizes), key=lambda s: distance[sizes == s].min())[:MIN_SIZES]
    inside = np.isin(sizes, nearest)
  return inside


SKIP_KINDS = {"sizes": "fewer than 3 sizes", "concave": "no upward curve in log N",
              "outside": "the minimum outside the sampled sizes"}
MAX_SKIP_WARNINGS = 5  # more skipped budgets than this are summarised in one warning


def fit_profile(budget, n, d, loss, weights=None,
                window: float = WINDOW) -> Profile | tuple[str, str]:
  """The profile of one budget, or (kind, reason) when it cannot be used (kinds: SKIP_KINDS)."""
  n_sizes = len(np.unique(runs_lib.group_log(n, 1e-3)))
  if n_sizes < MIN_SIZES:
    return "sizes", f"budget {budget:.3g} has {n_sizes} model sizes; a parabola needs at least 3"
  fitted = window_mask(n, loss, window)
  x = np.log10(n[fitted])
  w = None if weights is None else np.sqrt(weights[fitted])
  parabola = np.polyfit(x, loss[fitted], 2, w=w)
  if not parabola[0] > 0:
    return "concave", f"budget {budget:.3g}: the losses do not curve upward in log N (no minimum)"
  x_opt = -parabola[1] / (2 * parabola[0])
  if not x.min() <= x_opt <= x.max():
    return "outside", (f"budget {budget:.3g}: the parabola's minimum N = {10 ** x_opt:.3g} lies "
                       f"outside the sizes it was fitted to, {10 ** x.min():.3g}.."
                       f"{10 ** x.max():.3g}")
  slope, intercept = np.polyfit(np.log10(n), np.log10(d), 1)
  return Profile(float(budget), n, d, loss, parabola, float(10 ** x_opt),
                 float(10 ** (intercept + slope * x_opt)), float(np.polyval(parabola, x_opt)),
                 fitted)


def fit_profiles(runs: runs_lib.Runs, labels, budgets, weights=None, warn=True,
                 window: float = WINDOW) -> list[Profile]:
  """Profiles of every usable budget (labels from runs.isoflop_groups); weights per run, optional."""
  profiles, skipped = [], []
  for g, budget in enumerate(budgets):
    mask = labels == g
    if weights is not None:
      mask &= weights > 0
    w = None if weights is None else weights[mask]
    profile = fit_profile(budget, runs.n[mask], runs.d[mask], runs.loss[mask], w, window)
    (profiles if isinstance(profile, Profile) else skipped).append(profile)
  if warn and len(skipped) <= MAX_SKIP_WARNINGS:
    for _, reason in skipped:
      warnings.warn(f"approach 2 skips {reason}", AnalysisWarning)
  elif warn:
    counts = [f"{sum(k == kind for k, _ in skipped)} with {what}"
              for kind, what in SKIP_KINDS.items() if any(k == kind for k, _ in skipped)]
    warnings.warn(f"approach 2 skips {len(skipped)} of {len(budgets)} budget groups: "
                  f"{', '.join(counts)}", AnalysisWarning)
  return profiles


def fit_frontier(profiles: list[Profile]) -> dict | None:
  """N_opt = n_coef C^a and D_opt = d_coef C^b through the vertices; None below 2 budgets."""
  if len(profiles) < 2:
    return None
  budgets = np.array([p.budget for p in profiles])
  n_coef, a = laws.fit_power_law(budgets, [p.n_opt for p in profiles])
  d_coef, b = laws.fit_power_law(budgets, [p.d_opt for p in profiles])
  return {"a": a, "b": b, "n_coef": n_coef, "d_coef": d_coef}


def optimum(fit: dict, flops):
  """(N_opt, D_opt) at compute C from an Approach 2 (or Approach 1) power-law fit."""
  flops = np.asarray(flops, np.float64)
  return fit["n_coef"] * flops ** fit["a"], fit["d_coef"] * flops ** fit["b"]
