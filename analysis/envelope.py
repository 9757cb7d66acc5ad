"""Training curves and Chinchilla Approach 1: the lower envelope of loss against FLOPs.

Hoffmann et al. (2022, section 3.1, Figure 2): at each FLOP count, the run whose (smoothed) training
loss is lowest there gives the optimal N and D for that compute; power laws through those points
give N_opt ∝ C^a, D_opt ∝ C^b. Choices here:
- Curves come from each run's metrics.jsonl (`flops`, `tokens`, `train_loss`), smoothed by a
  centred moving average of SMOOTH rows; lines that do not parse are skipped with a warning.
- The envelope is read on ENVELOPE_POINTS log-spaced FLOP values, interpolating each curve in
  log FLOPs, using only FLOP values each curve actually reached.
- Envelope points held by the smallest or the largest model are left out of the fit: there the
  optimum may lie beyond the sizes trained, so the point says nothing about N_opt.
A run's curve is taken as is: its early points are mid-schedule, one reason Approach 1 is known
to lean towards smaller models than a run per budget would give.
"""
import os
import warnings

import numpy as np

from analysis import laws
from analysis.runs import AnalysisWarning
from core import rundir

SMOOTH = 5
ENVELOPE_POINTS = 200


def _warn(message: str) -> None:
  warnings.warn(message, AnalysisWarning)


def read_metrics(run_dir: str) -> list[dict]:
  """A run directory's metrics rows; lines that do not parse become AnalysisWarnings."""
  return rundir.read_metrics(run_dir, _warn)


def curve_of(rows: list[dict]):
  """(flops, tokens, smoothed train loss) arrays over the rows that have all three, sorted."""
  points = []
  for row in rows:
    try:
      point = tuple(float(row[k]) for k in ("flops", "tokens", "train_loss"))
    except (KeyError, TypeError, ValueError):
      continue
    if all(np.isfinite(point)) and point[0] > 0 and point[2] > 0:
      points.append(point)
  if len(points) < 2:
    return None
  flops, tokens, loss = np.array(sorted(points)).T
  if len(loss) >= SMOOTH:
    padded = np.pad(loss, SMOOTH // 2, mode="edge")
    loss = np.convolve(padded, np.ones(SMOOTH) / SMOOTH, mode="valid")
  return flops, tokens, loss


def load_curves(run_ids, curves_dir: str) -> dict:
  """run_id -> (flops, tokens, loss) for the runs with a readable CURVES_DIR/run_id/metrics.jsonl."""
  curves = {}
  for run_id in run_ids:
    run_dir = os.path.join(curves_dir, str(run_id))
    path = rundir.path(run_dir, rundir.METRICS)
    if os.path.isfile(path):
      curve = curve_of(read_metrics(run_dir))
      if curve is None:
        warnings.warn(f"{path}: fewer than 2 rows with flops, tokens and train_loss; not used",
                      AnalysisWarning)
      else:
        curves[run_id] = curve
  return curves


def loss_grid(curves: list, flops_grid) -> tuple[np.ndarray, np.ndarray]:
  """[runs, grid] loss and tokens of each curve at each FLOP value (inf / NaN where not reached)."""
  log_grid = np.log(flops_grid)
  loss = np.full((len(curves), len(flops_grid)), np.inf)
  tokens = np.full((len(curves), len(flops_grid)), np.nan)
  for i, (flops, toks, curve_loss) in enumerate(curves):
    inside = (flops_grid >= flops[0]) & (flops_grid <= flops[-1])
    loss[i, inside] = np.interp(log_grid[inside], np.log(flops), curve_loss)
    tokens[i, inside] = np.exp(np.interp(log_grid[inside], np.log(flops), np.log(toks)))
  return loss, tokens


def flops_grid_of(curves: list) -> np.ndarray:
  """ENVELOPE_POINTS log-spaced FLOP values spanning all curves."""
  return np.geomspace(min(c[0][0] for c in curves), max(c[0][-1] for c in curves), ENVELOPE_POINTS)


def envelope(n, loss, tokens, flops_grid, rows=None) -> dict:
  """The lower envelope of the curves (loss, tokens from loss_grid) of the runs in `rows` (all by
  default): dict of flops, loss, n, d and `interior` (not held by the smallest or largest size)."""
  n = np.asarray(n, np.float64)
  rows = np.ones(len(n), bool) if rows is None else np.asarray(rows)
  best = np.argmin(np.where(rows[:, None], loss, np.inf), 0)
  columns = np.arange(len(flops_grid))
  reached = np.isfinite(loss[best, columns]) & rows[best]
  interior = (n[best] > n[rows].min()) & (n[best] < n[rows].max())
  return {"flops": flops_grid[reached], "loss": loss[best, columns][reached],
          "n": n[best][reached], "d": tokens[best, columns][reached], "interior": interior[reached]}


def fit_envelope(env: dict) -> dict | str:
  """Power laws N_opt = n_coef C^a, D_opt = d_coef C^b through the interior envelope points, or
  the reason there are too few."""
  inside = env["interior"]
  sizes = np.unique(env["n"][inside])
  if len(sizes) < 2:
    return (f"approach 1: the loss envelope passes through {len(sizes)} model sizes other than the "
            "smallest and largest; it needs at least 2")
  n_coef, a = laws.fit_power_law(env["flops"][inside], env["n"][inside])
  d_coef, b = laws.fit_power_law(env["flops"][inside], env["d"][inside])
  return {"a": a, "b": b, "n_coef": n_coef, "d_coef": d_coef, "n_points": int(inside.sum()),
          "n_sizes": int(len(sizes))}
