"""Chinchilla Approach 2: IsoFLOP profiles (Hoffmann et al. 2022, section 3.2, Figure 3).

For each compute budget, the loss-optimal N is located on the final losses of the runs spending
that budget; power laws through those minima give N_opt(C) ∝ C^a and D_opt(C) ∝ C^b. D_opt at a
budget is read off the group's own (N, D) pairs (log D is linear in log N along an IsoFLOP curve),
so it holds whatever FLOP convention C uses.

How a budget's minimum is located (`ESTIMATORS`, all with one signature: the curves of every
budget in, one Minimum or (kind, reason) per curve out):
- `window`: a parabola in log N through the runs within a factor `window` of the lowest-loss run
  (the lowest run is itself noisy, so the window is lopsided and the vertex biased);
- `whole`: a parabola through the whole curve (pulled towards the steep side of asymmetric curves);
- `centred`: a parabola through the runs within `window` of the fitted vertex, refitted until the
  window stops moving (starting from the whole curve's vertex);
- `law`: the profile the parametric law implies along one curve, c + P N^-alpha + Q D^-beta with
  each budget's own c, P, Q >= 0 and alpha, beta shared by all budgets (the law says they are
  common, and pooling them is what makes five noisy points enough); with D = C / (k N^gamma) its
  minimum is closed form, N^(alpha + beta gamma) = alpha P / (beta gamma Q') (Q' = Q (k/C)^beta);
- `akima`: Porian et al. 2024's smoothing of the whole curve, an Akima spline of log loss in log N
  minimised on a fine grid.
benchmarks/isoflop_estimators.py measures them on studies drawn from known laws (results in
docs/results/); DEFAULT is the one those figures pick.

A budget is skipped, with a warning, when it has fewer than 3 distinct sizes, when its curve has
no minimum (a parabola opening downward, a law term fitted to 0), or when the minimum lies outside
the sizes it was fitted to (an extrapolated minimum is not a measurement).
"""
import dataclasses
import warnings

import numpy as np
from scipy import interpolate
from scipy import optimize

from analysis import laws
from analysis import runs as runs_lib
from analysis.runs import AnalysisWarning

DEFAULT = "law"
WINDOW = 4.0  # the windowed parabolas' factor in N (0: the whole curve)
MIN_SIZES = 3
CENTRED_ITERATIONS = 20
EXPONENT_BOUNDS = (0.02, 3.0)  # the law estimator's alpha and beta
AKIMA_POINTS = 25  # grid points per interval between sizes (Porian et al.'s interp_num_multiplier)


@dataclasses.dataclass(frozen=True)
class Curve:
  """One budget's runs: x = log10 N, their losses and log10 D, row weights (bootstrap counts)."""
  x: np.ndarray
  loss: np.ndarray
  log_d: np.ndarray
  weights: np.ndarray


@dataclasses.dataclass(frozen=True)
class Minimum:
  """An estimator's minimum of one curve: log10 N_opt, the loss there, the rows it used, and the
  fitted curve as a function of log10 N (for plots)."""
  x_opt: float
  loss_opt: float
  fitted: np.ndarray
  predict: object


@dataclasses.dataclass(frozen=True)
class Profile:
  """One IsoFLOP curve: its runs, the estimator's minimum, and `parabola` p0 x^2 + p1 x + p2 in
  x = log10 N (the fitted parabola; for the other estimators the curve's quadratic at its
  minimum); `predict(x)` is the fitted curve itself."""
  budget: float
  n: np.ndarray
  d: np.ndarray
  loss: np.ndarray
  parabola: np.ndarray
  n_opt: float
  d_opt: float
  loss_opt: float
  fitted: np.ndarray
  method: str = DEFAULT
  predict: object = None


def window_mask(n, loss, window: float = WINDOW, centre=None) -> np.ndarray:
  """The runs within a factor `window` in N of `centre` (log10 N; default the lowest-loss run),
  widened to the MIN_SIZES sizes nearest it (0: every run)."""
  n = np.asarray(n, np.float64)
  if not window:
    return np.ones(len(n), bool)
  x = np.log10(n)
  distance = np.abs(x - (x[np.argmin(loss)] if centre is None else centre))
  inside = distance <= np.log10(window) * (1 + 1e-9)
  sizes = runs_lib.group_log(n, 1e-3)
  if len(np.unique(sizes[inside])) < MIN_SIZES:
    nearest = sorted(np.unique(sizes), key=lambda s: distance[sizes == s].min())[:MIN_SIZES]
    inside = np.isin(sizes, nearest)
  return inside


def _parabola(curve: Curve, mask):
  """(coefficients, vertex) of the weighted parabola through curve[mask]; vertex None if concave."""
  p = np.polyfit(curve.x[mask], curve.loss[mask], 2, w=np.sqrt(curve.weights[mask]))
  return p, (-p[1] / (2 * p[0]) if p[0] > 0 else None)


def _parabola_minimum(curve, mask, p, vertex):
  if vertex is None:
    return "concave", "the losses do not curve upward in log N (no minimum)"
  return Minimum(float(vertex), float(np.polyval(p, vertex)), mask,
                 lambda x, p=p: np.polyval(p, x))


def _windowed(curves, window=WINDOW):
  out = []
  for c in curves:
    mask = window_mask(10 ** c.x, c.loss, window)
    out.append(_parabola_minimum(c, mask, *_parabola(c, mask)))
  return out


def _whole(curves, window=WINDOW):
  del window
  return _windowed(curves, 0)


def _centred(curves, window=WINDOW):
  out = []
  for c in curves:
    mask = np.ones(len(c.x), bool)
    p, vertex = _parabola(c, mask)
    for _ in range(CENTRED_ITERATIONS if window else 0):
      centre = c.x[np.argmin(c.loss)] if vertex is None else np.clip(vertex, c.x.min(), c.x.max())
      new = window_mask(10 ** c.x, c.loss, window, centre)
      if np.array_equal(new, mask):
        break
      mask = new
      p, vertex = _parabola(c, mask)
    out.append(_parabola_minimum(c, mask, p, vertex))
  return out


def _law_design(curves):
  """The curves padded to one array each ([curves, rows], padding weight 0): log10 N and log10 D
  about each curve's middle, the relative least squares' row scale and target."""
  size = max(len(c.x) for c in curves)

  def pad(values):
    return np.stack([np.pad(v, (0, size - len(v))) for v in values])
  x = pad([c.x - c.x.mean() for c in curves])
  y = pad([c.log_d - c.log_d.mean() for c in curves])
  scale = pad([np.sqrt(c.weights) / c.loss for c in curves])  # multiplicative noise: relative
  return x, y, scale, pad([c.loss for c in curves]) * scale


def _law_coefficients(design, alpha, beta):
  """([curves, 3] c, P, Q of each curve's least squares at these exponents, the summed squared
  residual); unconstrained: a curve whose P or Q comes out <= 0 has no minimum."""
  x, y, scale, target = design
  terms = np.stack([np.ones_like(x), 10 ** (-alpha * x), 10 ** (-beta * y)], -1) * scale[..., None]
  gram = np.einsum("kri,krj->kij", terms, terms)
  ridge = 1e-12 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(3)
  coef = np.linalg.solve(gram + ridge, np.einsum("kri,kr->ki", terms, target)[..., None])[..., 0]
  return coef, float(np.sum((np.einsum("kri,ki->kr", terms, coef) - target) ** 2))


def _law(curves, window=WINDOW):
  del window
  low, high = np.log(EXPONENT_BOUNDS)
  design = _law_design(curves)

  def objective(z):
    return _law_coefficients(design, *np.exp(np.clip(z, low, high)))[1]

  grid = np.linspace(low, high, 6)
  start = min(((u, v) for u in grid for v in grid), key=objective)
  z = optimize.minimize(objective, start, method="Nelder-Mead",
                        options={"xatol": 1e-3, "fatol": 1e-14, "maxiter": 300}).x
  alpha, beta = np.exp(np.clip(z, low, high))
  coefs, _ = _law_coefficients(design, alpha, beta)
  out = []
  for c, (e, p, q) in zip(curves, coefs):
    # along the curve log D is linear in log N with slope -gamma: Q D^-beta = Q' N^g, g = beta gamma
    slope, intercept = np.polyfit(c.x, c.log_d, 1)
    g = -beta * slope
    if not (p > 0 and q > 0 and g > 0):
      out.append(("concave", "the law's fit has no minimum along this curve (a term fitted <= 0)"))
      continue
    m = c.x.mean()
    q_n = q * 10 ** (-beta * (intercept + slope * m - c.log_d.mean()))  # Q' at log10 N - m
    x_opt = m + np.log10(alpha * p / (g * q_n)) / (alpha + g)

    def predict(x, e=e, p=p, q_n=q_n, g=g, m=m):
      return e + p * 10 ** (-alpha * (x - m)) + q_n * 10 ** (g * (x - m))
    out.append(Minimum(float(x_opt), float(predict(x_opt)), np.ones(len(c.x), bool), predict))
  return out


def _akima(curves, window=WINDOW):
  del window
  out = []
  for c in curves:
    sizes = runs_lib.group_log(10 ** c.x, 1e-3)
    ids = np.unique(sizes)
    x = np.array([np.average(c.x[sizes == s], weights=c.weights[sizes == s]) for s in ids])
    y = np.array([np.average(np.log(c.loss[sizes == s]), weights=c.weights[sizes == s])
                  for s in ids])
    spline = interpolate.Akima1DInterpolator(x, y)
    grid = np.linspace(x[0], x[-1], (len(x) - 1) * AKIMA_POINTS)
    i = int(np.argmin(spline(grid)))
    if i in (0, len(grid) - 1):
      out.append(("outside", "the smoothed curve's minimum is at the smallest or largest size"))
      continue
    out.append(Minimum(float(grid[i]), float(np.exp(spline(grid[i]))), np.ones(len(c.x), bool),
                       lambda x, s=spline: np.exp(s(x))))
  return out


ESTIMATORS = {"window": _windowed, "whole": _whole, "centred": _centred, "law": _law,
              "akima": _akima}


def estimate_minima(curves: list[Curve], method: str = DEFAULT, window: float = WINDOW) -> list:
  """One Minimum or (kind, reason) per curve, by the estimator `method` (ESTIMATORS)."""
  ready = [i for i, c in enumerate(curves)
           if len(np.unique(runs_lib.group_log(10 ** c.x, 1e-3))) >= MIN_SIZES]
  out = [("sizes", f"has {len(np.unique(runs_lib.group_log(10 ** c.x, 1e-3)))} model sizes; "
          "a minimum needs at least 3") for c in curves]
  if not ready:
    return out
  with np.errstate(all="ignore"):
    try:
      found = ESTIMATORS[method]([curves[i] for i in ready], window)
    except (ValueError, np.linalg.LinAlgError, RuntimeError) as e:
      found = [("concave", f"the {method} estimator failed ({e})")] * len(ready)
  for i, minimum in zip(ready, found):
    c = curves[i]
    if isinstance(minimum, Minimum) and not (
        np.isfinite(minimum.x_opt) and c.x[minimum.fitted].min() <= minimum.x_opt
        <= c.x[minimum.fitted].max()):
      minimum = ("outside", f"the minimum N = {np.power(10.0, minimum.x_opt):.3g} lies outside "
                 "the sizes it "
                 f"was fitted to, {10 ** c.x.min():.3g}..{10 ** c.x.max():.3g}")
    out[i] = minimum
  return out


SKIP_KINDS = {"sizes": "fewer than 3 sizes", "concave": "no minimum in log N",
              "outside": "the minimum outside the sampled sizes"}
MAX_SKIP_WARNINGS = 5  # more skipped budgets than this are summarised in one warning


def _curve(n, d, loss, weights=None) -> Curve:
  n, d, loss = (np.asarray(v, np.float64) for v in (n, d, loss))
  w = np.ones(len(n)) if weights is None else np.asarray(weights, np.float64)
  return Curve(np.log10(n), loss, np.log10(d), w)


def _profile(budget, n, d, loss, minimum, method) -> Profile | tuple[str, str]:
  if not isinstance(minimum, Minimum):
    kind, reason = minimum
    return kind, f"budget {budget:.3g}{' ' if kind == 'sizes' else ': '}{reason}"
  x_opt = minimum.x_opt
  slope, intercept = np.polyfit(np.log10(n), np.log10(d), 1)
  h = 0.05  # the quadratic at the minimum, from the fitted curve (for plots drawing parabolas)
  f0, fp, fm = (float(minimum.predict(x_opt + s)) for s in (0, h, -h))
  curvature = (fp + fm - 2 * f0) / (2 * h * h)
  parabola = np.array([curvature, -2 * curvature * x_opt, f0 + curvature * x_opt ** 2])
  return Profile(float(budget), n, d, loss, parabola, float(10 ** x_opt),
                 float(10 ** (intercept + slope * x_opt)), float(minimum.loss_opt),
                 minimum.fitted, method, minimum.predict)


def fit_profile(budget, n, d, loss, weights=None, window: float = WINDOW,
                method: str | None = None) -> Profile | tuple[str, str]:
  """The profile of one budget, or (kind, reason) when it cannot be used (kinds: SKIP_KINDS).
  Without `method`: the windowed parabola (window > 0) or the whole curve (window 0), the
  one-curve estimators of this module's first version."""
  method = method or ("window" if window else "whole")
  return _profile(budget, *(np.asarray(v, np.float64) for v in (n, d, loss)),
                  estimate_minima([_curve(n, d, loss, weights)], method, window)[0], method)


def method_for(window: float | None) -> str:
  """The estimator a window asks for: none given, DEFAULT; a factor, the windowed parabola
  (`--isoflop-window`); 0, the parabola through the whole curve."""
  return DEFAULT if window is None else "window" if window else "whole"


def fit_profiles(runs: runs_lib.Runs, labels, budgets, weights=None, warn=True,
                 window: float | None = None, method: str | None = None) -> list[Profile]:
  """Profiles of every usable budget (labels from runs.isoflop_groups) by `method` (default:
  method_for(window)); weights per run, optional (the bootstrap's counts: rows of weight 0 are
  left out)."""
  method = method or method_for(window)
  window = WINDOW if window is None else window
  masks = []
  for g in range(len(budgets)):
    mask = labels == g
    masks.append(mask & (weights > 0) if weights is not None else mask)
  curves = [_curve(runs.n[m], runs.d[m], runs.loss[m], None if weights is None else weights[m])
            for m in masks]
  minima = estimate_minima(curves, method, window)
  profiles, skipped = [], []
  for budget, mask, minimum in zip(budgets, masks, minima):
    profile = _profile(budget, runs.n[mask], runs.d[mask], runs.loss[mask], minimum, method)
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


def minimum_interval(samples: dict | None, budgets, profile: Profile) -> dict:
  """{"n_opt_ci95": 95% interval of the profile's N_opt over the bootstrap resamples} ({} without
  a bootstrap); samples["n_opt"] from bootstrap.approach2_samples, one column per budget."""
  if samples is None or "n_opt" not in samples:
    return {}
  from analysis import bootstrap  # pylint: disable=import-outside-toplevel  (it imports this)
  column = list(np.asarray(budgets, np.float64)).index(profile.budget)
  return {"n_opt_ci95": bootstrap.interval(samples["n_opt"][:, column])}


def fit_frontier(profiles: list[Profile]) -> dict | None:
  """N_opt = n_coef C^a and D_opt = d_coef C^b through the minima; None below 2 budgets."""
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


def minimum_loss_at(budgets, losses, flops, floor: float = 0.0) -> float | None:
  """The IsoFLOP minima's loss extrapolated to compute `flops`: a power law of (loss - floor) in
  C through (budgets, losses) (floor 0: a plain power law). None below 2 minima or where a
  minimum is not above the floor. benchmarks/verify_predictors.py backtests it."""
  losses = np.asarray(losses, np.float64) - floor
  if len(losses) < 2 or not np.all(losses > 0):
    return None
  coef, slope = laws.fit_power_law(budgets, losses)
  return float(floor + coef * np.asarray(flops, np.float64) ** slope)
