"""Bootstrap confidence intervals: resample the runs with replacement, refit, take percentiles.

What is resampled (`unit`): `point`, each row on its own; `run`, the rows of one training run
together (they are not independent: a WSD trunk's branches share everything up to their cooldown);
`budget`, the rows of one IsoFLOP budget together. A resample draws as many units as there are,
with replacement, and every row takes its unit's count.

A resample is a vector of counts over the runs (multinomial), used as point weights, so every
refit is the same fit with other weights, and each law form's refits of all resamples run together
in one batched L-BFGS call (fitter.refit_samples). Refits start from the full-data optimum plus the
other best distinct minima the full grid found (fitter.LawFit.alternates), not from the whole grid:
a resample moves the optimum a little, and these few starts cover the basins the grid found.
IsoFLOP groups keep their labels under resampling; a budget left with fewer than 3 sizes is skipped
(silently here; the full fit warns). A refit that fails (no convergence, too few budgets) is
counted out, and the intervals say how many refits they rest on; so is a refit that fails
numerically (an exponent near 0 sends C_c = coefficient^(1/alpha) past the largest float): it is
dropped and counted, never fatal. Intervals are 95% percentile intervals.
"""
import numpy as np

from analysis import envelope
from analysis import isoflop
from analysis import kaplan

MIN_SAMPLES = 10


def resample_counts(n_runs: int, n_samples: int, seed: int = 0) -> np.ndarray:
  """[n_samples, n_runs] how often each run is drawn in each resample."""
  rng = np.random.default_rng(seed)
  return rng.multinomial(n_runs, np.full(n_runs, 1 / n_runs), size=n_samples).astype(np.float64)


def units_of(runs, unit: str, labels) -> np.ndarray:
  """Each row's resampling unit as an index 0..k-1 (`labels`: the IsoFLOP groups, -1 for none;
  a row outside every budget is a unit of its own)."""
  if unit == "point" or (unit == "run" and runs.source_run is None):
    return np.arange(len(runs))
  own = np.char.add("row", np.arange(len(runs)).astype(str))
  keys = runs.source_run if unit == "run" else np.where(labels >= 0, labels.astype(str), own)
  _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
  rank = np.empty(len(first), int)
  rank[np.argsort(first)] = np.arange(len(first))
  return rank[inverse.ravel()]  # numbered in order of appearance: one row per run is `point`


def resample_rows(units: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
  """[n_samples, n_rows] row weights: units drawn with replacement, each row its unit's count."""
  return resample_counts(int(units.max()) + 1, n_samples, seed)[:, units]


def drop_failed(samples: dict) -> tuple[dict, int]:
  """(samples, how many resamples failed): a resample whose refit gave a parameter that is not
  finite is dropped from every parameter's interval (NaN), so all intervals rest on the same
  resamples."""
  ok = np.all([np.isfinite(v) for v in samples.values() if v.ndim == 1], axis=0)
  # a 2-D sample ([resamples, budgets]: approach 2's minima) keeps its own NaN per budget
  return ({k: np.where(ok if v.ndim == 1 else ok[:, None], v, np.nan) for k, v in samples.items()},
          int((~ok).sum()))


def interval(samples) -> list | None:
  """The 95% percentile interval of the finite samples; None with fewer than MIN_SAMPLES."""
  samples = np.asarray(samples, np.float64)
  samples = samples[np.isfinite(samples)]
  if len(samples) < MIN_SAMPLES:
    return None
  return [float(v) for v in np.percentile(samples, [2.5, 97.5])]


def _guarded(refit):
  """A refit's result, or None when it fails numerically (singular fit, overflow)."""
  with np.errstate(all="ignore"):
    try:
      return refit()
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
      return None


def approach2_samples(runs, labels, budgets, counts, window=None) -> dict:
  """Per resample: a, b, n_coef, d_coef of the IsoFLOP power laws (NaN below 2 usable budgets),
  and n_opt, [resamples, budgets], each budget's minimum (NaN where the resample skipped it)."""
  samples = {k: np.full(len(counts), np.nan) for k in ("a", "b", "n_coef", "d_coef")}
  samples["n_opt"] = np.full((len(counts), len(budgets)), np.nan)
  index = {float(b): i for i, b in enumerate(budgets)}
  for i, weights in enumerate(counts):
    profiles = _guarded(lambda: isoflop.fit_profiles(runs, labels, budgets, weights, warn=False,
                                                     window=window)) or []
    for p in profiles:
      samples["n_opt"][i, index[p.budget]] = p.n_opt
    fit = _guarded(lambda: isoflop.fit_frontier(profiles))
    for k in ("a", "b", "n_coef", "d_coef"):
      samples[k][i] = fit[k] if fit else np.nan
  return samples


def approach1_samples(n, loss, tokens, flops_grid, counts) -> dict:
  """Per resample of the runs with curves: a, b, n_coef, d_coef of the envelope power laws."""
  samples = {k: np.full(len(counts), np.nan) for k in ("a", "b", "n_coef", "d_coef")}
  for i, weights in enumerate(counts):
    fit = _guarded(lambda: envelope.fit_envelope(
        envelope.envelope(n, loss, tokens, flops_grid, weights > 0)))
    for k in samples:
      samples[k][i] = fit[k] if isinstance(fit, dict) else np.nan
  return samples


def one_variable_samples(x, loss, counts) -> dict:
  """Per resample: alpha and x_c of a Kaplan one-variable law (L(N) or L(D))."""
  samples = {"alpha": np.full(len(counts), np.nan), "x_c": np.full(len(counts), np.nan)}
  for i, weights in enumerate(counts):
    fit = _guarded(lambda: kaplan.fit_one_variable(x, loss, weights))
    if fit:
      samples["alpha"][i], samples["x_c"][i] = fit["alpha"], fit["x_c"]
  return samples


def compute_samples(runs, grid, counts, curve_counts) -> dict:
  """Per resample: alpha_C and C_c of L(C) through the envelope of the training curves (`grid` from
  envelope.loss_grid; `curve_counts` [resamples, its curves]) or, without curves, of the final
  points."""
  samples = {"alpha_C": np.full(len(counts), np.nan), "C_c": np.full(len(counts), np.nan)}
  for i, weights in enumerate(counts):
    if grid is not None:
      env = envelope.envelope(*grid, curve_counts[i] > 0)
      fit = _guarded(lambda: kaplan.fit_compute(env["flops"], env["loss"]))
    else:
      chosen = weights > 0
      fit = _guarded(lambda: kaplan.fit_compute(*kaplan.pareto_envelope(runs.c[chosen],
                                                                         runs.loss[chosen])))
    if fit:
      samples["alpha_C"][i], samples["C_c"][i] = fit["alpha_C"], fit["C_c"]
  return samples
