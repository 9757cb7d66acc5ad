"""One fitter for every law form: L-BFGS from a grid of starts on log L, autodiff gradients.

The objective is the form's: Huber (delta HUBER_DELTA, Hoffmann et al. 2022's choice) between
log L and the law's predicted log L, or squares (Kaplan et al. fit least squares on log L). The
Huber sum is divided by delta (the minimiser is unchanged). Every start runs in one jit-compiled
loop (analysis/lbfgs.py); the gradient is jax.vmap(jax.value_and_grad) of the form's loss
(benchmarks/fit_speed.py compares it with a hand-written one). Inputs are centred in log space
where the form can shift its variables (same minima, better conditioned). Float64 throughout,
scoped with `jax.enable_x64(True)` around the fit only, so a process that also trains keeps
JAX's float32 default. The result is one typed record, `LawFit`.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from analysis import lbfgs
from analysis import runs as runs_lib
from analysis.forms import Form

HUBER_DELTA = 1e-3
SAME_MINIMUM = 1e-6  # starts within this relative objective of the best found the same minimum
N_ALTERNATES = 4     # distinct minima kept to warm-start refits (bootstrap)
SCREENED_STARTS = 64  # L-BFGS runs from the grid's starts of lowest objective (None: from all)


@dataclasses.dataclass(frozen=True)
class LawFit:
  """A fitted law: its parameters, how the optimiser got there, and how well it fits."""
  form: str
  params: dict             # the reported parameters
  derived: dict            # numbers that follow from them (frontier exponents, ...)
  objective: float         # at the best start
  converged: bool          # a start at the best objective met the convergence test
  n_points: int
  n_starts: int            # the grid's starting points
  n_starts_run: int        # those L-BFGS ran from (the best SCREENED_STARTS of them)
  n_starts_converged: int
  n_starts_at_best: int
  n_iter: int              # iterations the best start used
  r2_log: float            # R^2 of log L
  rms_log_residual: float  # RMS of log L - predicted log L
  objective_kind: str = "huber"
  raw: np.ndarray = dataclasses.field(default=None, repr=False, compare=False)
  alternates: np.ndarray = dataclasses.field(default=None, repr=False, compare=False)

  def __getattr__(self, name):  # fit.E, fit.alpha, fit.a: the parameters and derived numbers
    if name in ("params", "derived") or name.startswith("__"):
      raise AttributeError(name)
    for table in (self.params, self.derived):
      if name in table:
        return table[name]
    raise AttributeError(name)

  def law(self) -> dict:
    return dict(self.params)

  def to_dict(self) -> dict:
    return {**self.params, **self.derived, "objective": self.objective,
            "converged": self.converged, "n_points": self.n_points, "n_starts": self.n_starts,
            "n_starts_run": self.n_starts_run, "n_starts_converged": self.n_starts_converged,
            "n_starts_at_best": self.n_starts_at_best, "n_iter": self.n_iter,
            "r2_log": self.r2_log, "rms_log_residual": self.rms_log_residual,
            **({"huber_delta": HUBER_DELTA} if self.objective_kind == "huber" else {})}


@functools.cache
def value_and_grad(form: Form):
  """The batched objective of `form` for lbfgs.minimize (one function object per form, so its
  compiled loop is reused)."""
  def objective(raw, weights, data):
    logs, log_loss = data
    r = form.loss(raw, logs) - log_loss
    if form.objective == "squares":
      return jnp.sum(weights * r * r)
    huber = jnp.where(jnp.abs(r) <= HUBER_DELTA, 0.5 * r * r,
                      HUBER_DELTA * (jnp.abs(r) - 0.5 * HUBER_DELTA))
    return jnp.sum(weights * huber) / HUBER_DELTA

  batched = jax.vmap(jax.value_and_grad(objective), in_axes=(0, 0, None))

  def fn(x, weights, data):
    points, free = data
    f, g = batched(x, weights, points)
    return f, g * free  # a held variable never moves from its start
  return fn


def _centre(form: Form, logs) -> np.ndarray | None:
  return None if form.shift is None else np.array([v.mean() for v in logs])


def _centred(form: Form, inputs, loss, starts, weights, fixed):
  """(centred starts, padded weights, the objective's data, centre) in float64 numpy."""
  logs = tuple(np.log(np.asarray(v, np.float64)) for v in inputs)
  log_loss = np.log(np.asarray(loss, np.float64))
  starts = np.array(starts, np.float64)
  centre = _centre(form, logs)
  if centre is not None:
    starts = form.shift(starts, centre)
    logs = tuple(v - c for v, c in zip(logs, centre))
  points, weights = lbfgs.pad_points(logs + (log_loss,), weights)
  free = np.array([name not in fixed for name in form.raw], np.float64)
  return starts, weights, (points, free), centre


def _device(data):
  (points, free) = data
  return (tuple(jnp.asarray(v, jnp.float64) for v in points[:-1]),
          jnp.asarray(points[-1], jnp.float64)), jnp.asarray(free)


def minimize(form: Form, inputs, loss, starts, weights, *, fixed=(), max_iter: int = 1000
             ) -> lbfgs.Minima:
  """L-BFGS from each start (raw rows, uncentred) with its own point weights, in float64; raw
  variables named in `fixed` stay at their start. Returns minima in uncentred raw variables."""
  starts, weights, data, centre = _centred(form, inputs, loss, starts, weights, fixed)
  with jax.enable_x64(True):
    minima = lbfgs.minimize(value_and_grad(form), starts, weights, _device(data),
                            max_iter=max_iter)
  x = minima.x if centre is None else form.shift(minima.x, -centre)
  return dataclasses.replace(minima, x=x)


@functools.cache
def _objective(form: Form):
  return jax.jit(lambda x, w, data: value_and_grad(form)(x, w, data)[0])


def screen(form: Form, inputs, loss, starts, k: int) -> np.ndarray:
  """The k starts of lowest objective (one batched evaluation of all of them): L-BFGS from a
  grid's best k reaches the minimum the whole grid reaches at a fraction of the cost
  (benchmarks/fit_speed.py compares the two on the published tables)."""
  if k is None or len(starts) <= k:
    return starts
  centred, weights, data, _ = _centred(form, inputs, loss, starts,
                                       np.ones((len(starts), len(loss))), ())
  with jax.enable_x64(True):
    f = np.asarray(_objective(form)(jnp.asarray(centred), jnp.asarray(weights), _device(data)))
  order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")
  return starts[np.sort(order[:k])]


def starts_of(form: Form, inputs, fixed: dict | None = None) -> np.ndarray:
  """The form's start grid (a callable grid gets the data's mean log inputs), with fixed raw
  variables set (duplicates removed)."""
  grid = form.grid
  if callable(grid):
    grid = grid(np.array([np.log(np.asarray(v, np.float64)).mean() for v in inputs]))
  starts = np.array(grid, np.float64)
  if fixed:
    for name, value in fixed.items():
      starts[:, form.raw.index(name)] = value
    starts = np.unique(starts, axis=0)
  return starts


def distinct_minima(minima: lbfgs.Minima, k: int, tol: float = 1e-3) -> np.ndarray:
  """The best k minima that differ from each other by more than tol in some variable."""
  order = np.argsort(np.where(np.isfinite(minima.f), minima.f, np.inf))
  chosen = []
  for i in order:
    if not np.isfinite(minima.f[i]):
      break
    if all(np.max(np.abs(minima.x[i] - minima.x[j])) > tol for j in chosen):
      chosen.append(i)
    if len(chosen) == k:
      break
  return minima.x[chosen]


def predict_log(form: Form, raw, inputs) -> np.ndarray:
  """The law's log L at the inputs from one raw row."""
  with jax.enable_x64(True):
    logs = tuple(jnp.log(jnp.asarray(np.asarray(v, np.float64))) for v in inputs)
    return np.asarray(form.loss(jnp.asarray(np.asarray(raw, np.float64)), logs))


def predict(form: Form, params: dict, inputs) -> np.ndarray:
  """The law's L at the inputs from reported parameters."""
  return np.exp(predict_log(form, form.to_raw(params), inputs))


def goodness(form: Form, raw, inputs, loss) -> tuple[float, float]:
  """(R^2 of log L, RMS of the log residual) of a raw row on the points."""
  log_loss = np.log(np.asarray(loss, np.float64))
  residual = log_loss - predict_log(form, raw, inputs)
  spread = np.sum((log_loss - log_loss.mean()) ** 2)
  r2 = 1 - np.sum(residual ** 2) / spread if spread > 0 else float("nan")
  return float(r2), float(np.sqrt(np.mean(residual ** 2)))


def _params(form: Form, raw) -> tuple[dict, dict]:
  params = {k: float(v) for k, v in form.to_params(raw).items()}
  with np.errstate(all="ignore"):
    derived = {k: float(v) for k, v in (form.derived(params) if form.derived else {}).items()}
  return params, derived


def fit(form: Form, inputs, loss, starts=None, *, fixed: dict | None = None,
        max_iter: int = 1000) -> LawFit:
  """Fits `form` to points (inputs: arrays in the order of form.inputs; loss: final losses) from
  its grid (or `starts`), keeping the best final objective; `fixed` holds raw variables."""
  inputs = tuple(np.asarray(v, np.float64) for v in inputs)
  loss = np.asarray(loss, np.float64)
  starts = starts_of(form, inputs, fixed) if starts is None else np.asarray(starts, np.float64)
  n_grid = len(starts)
  starts = screen(form, inputs, loss, starts, SCREENED_STARTS)
  minima = minimize(form, inputs, loss, starts, np.ones((len(starts), len(loss))),
                    fixed=tuple(fixed or ()), max_iter=max_iter)
  finite = np.isfinite(minima.f)
  if not finite.any():
    raise runs_lib.DataError(f"{form.title}: the law's loss is not finite from any starting "
                             "point; check the N, D and loss columns")
  best = int(np.argmin(np.where(finite, minima.f, np.inf)))
  at_best = minima.f <= minima.f[best] * (1 + SAME_MINIMUM)
  params, derived = _params(form, minima.x[best])
  r2, rms = goodness(form, minima.x[best], inputs, loss)
  return LawFit(
      form=form.name, params=params, derived=derived, objective=float(minima.f[best]),
      converged=bool(np.any(minima.converged & at_best)), n_points=len(loss),
      n_starts=n_grid, n_starts_run=len(starts), n_starts_converged=int(minima.converged.sum()),
      n_starts_at_best=int(at_best.sum()), n_iter=int(minima.n_iter[best]),
      r2_log=r2, rms_log_residual=rms, objective_kind=form.objective, raw=minima.x[best],
      alternates=distinct_minima(minima, N_ALTERNATES))


def refit_samples(form: Form, inputs, loss, law_fit: LawFit, counts) -> dict:
  """Per row of counts (point weights of a resample): the parameters and derived numbers of the
  refit warm-started from law_fit's distinct minima (NaN where the best start did not converge)."""
  starts = law_fit.alternates
  n_samples, k = len(counts), len(starts)
  minima = minimize(form, inputs, loss, np.tile(starts, (n_samples, 1)),
                    np.repeat(counts, k, axis=0))
  f = np.where(np.isfinite(minima.f), minima.f, np.inf).reshape(n_samples, k)
  best = np.argmin(f, 1) + k * np.arange(n_samples)
  ok = minima.converged[best]
  samples = {name: np.where(ok, v, np.nan) for name, v in form.to_params(minima.x[best]).items()}
  if form.derived:
    with np.errstate(all="ignore"):
      samples.update(form.derived(samples))
  return samples
