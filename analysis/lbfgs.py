"""L-BFGS over many starting points at once, in one jit-compiled JAX loop.

Scaling-law fits are tiny problems (4 or 5 parameters, a few hundred points) solved from thousands
of starting points (the Chinchilla grid, or bootstrap samples times a few starts). A scipy loop pays
Python overhead per start and per iteration; vmapping optax's L-BFGS pays for the slowest start on
every lane of every nested line-search loop. Here the starts share one flat loop instead:

- A pool of `pool` lanes runs L-BFGS side by side; each loop iteration makes exactly one batched
  value-and-gradient call. A lane whose trial step fails the Armijo test simply shrinks its step
  (quadratic interpolation) and retries on the next iteration, so no lane waits on a nested loop.
- When a lane converges (or gives up), its result is written out and the lane takes the next
  start from the queue, so a few slow starts do not hold thousands of finished ones.

Each start may carry its own row of point weights (bootstrap resamples are weights on the runs).
`value_and_grad(x[W, P], weights[W, n], data) -> (f[W], g[W, P])` is the batched objective.
Dtypes follow the inputs: callers wanting float64 enable x64 around the call (approach3.py).
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

ARMIJO = 1e-4
MIN_STEP = 1e-16
POINTS_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class Minima:
  """Per start: the final point, objective, whether it converged, and iterations used."""
  x: np.ndarray
  f: np.ndarray
  converged: np.ndarray
  n_iter: np.ndarray


def _direction(g, S, Y, rho):
  """The L-BFGS two-loop recursion, batched over lanes; empty memory slots have rho = 0."""
  def newest_first(q, memory):
    s, y, r = memory
    alpha = r * jnp.sum(s * q, -1)
    return q - alpha[:, None] * y, alpha

  def oldest_first(z, memory):
    s, y, r, alpha = memory
    beta = r * jnp.sum(y * z, -1)
    return z + s * (alpha - beta)[:, None], None

  history = (jnp.swapaxes(S, 0, 1), jnp.swapaxes(Y, 0, 1), rho.T)  # memory axis first
  q, alphas = jax.lax.scan(newest_first, g, history, reverse=True)
  sy, yy = jnp.sum(S[:, -1] * Y[:, -1], -1), jnp.sum(Y[:, -1] ** 2, -1)
  # The first step of a lane moves at most a unit distance (no curvature information yet).
  first = jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.linalg.norm(g, axis=-1), 1e-30))
  gamma = jnp.where(rho[:, -1] > 0, sy / jnp.where(yy > 0, yy, 1.0), first)
  r, _ = jax.lax.scan(oldest_first, gamma[:, None] * q, history + (alphas,))
  return -r, first


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("pool", "memory"))
def _minimize(value_and_grad, starts, weights, data, *, pool, memory, max_iter, gtol, ftol):
  n_starts, n_params = starts.shape
  dtype = starts.dtype

  def lane_where(mask, new, old):
    return jnp.where(mask.reshape(mask.shape + (1,) * (old.ndim - 1)), new, old)

  def body(s):
    d, first = _direction(s["g"], s["S"], s["Y"], s["rho"])
    gd = jnp.sum(s["g"] * d, -1)
    uphill = ~(gd < 0)  # stale curvature pairs: restart from steepest descent
    d = lane_where(uphill, -s["g"] * first[:, None], d)
    gd = jnp.sum(s["g"] * d, -1)
    memory_kept = ~uphill[:, None]
    S, Y = s["S"] * memory_kept[..., None], s["Y"] * memory_kept[..., None]
    rho = s["rho"] * memory_kept
    fresh, active, t = s["fresh"], s["active"], s["t"]
    # A fresh lane evaluates its start; the others evaluate their trial step.
    xt = jnp.where(fresh[:, None], s["x"], s["x"] + t[:, None] * d)
    ft, gt = value_and_grad(xt, weights[s["slot"]], data)
    finite = jnp.isfinite(ft) & jnp.all(jnp.isfinite(gt), -1)
    accept = active & ~fresh & finite & (ft <= s["f"] + ARMIJO * t * gd)
    step, dg = xt - s["x"], gt - s["g"]
    sy = jnp.sum(step * dg, -1)
    store = accept & (sy > 1e-10 * jnp.sqrt(jnp.sum(step ** 2, -1) * jnp.sum(dg ** 2, -1)))
    S = lane_where(store, jnp.concatenate([S[:, 1:], step[:, None]], 1), S)
    Y = lane_where(store, jnp.concatenate([Y[:, 1:], dg[:, None]], 1), Y)
    inverse_sy = 1 / jnp.where(store, sy, 1)
    rho = lane_where(store, jnp.concatenate([rho[:, 1:], inverse_sy[:, None]], 1), rho)
    moved = accept | fresh
    x = lane_where(moved, xt, s["x"])
    f = jnp.where(moved, jnp.where(finite, ft, jnp.inf), s["f"])
    g = lane_where(moved, jnp.where(finite[:, None], gt, 0), s["g"])
    # Backtracking: the minimiser of the quadratic through f, f'(0) and f(t), kept in [t/10, t/2].
    t_quad = -gd * t * t / (2 * (ft - s["f"] - gd * t))
    t_back = jnp.where(jnp.isfinite(t_quad), jnp.clip(t_quad, 0.1 * t, 0.5 * t), 0.1 * t)
    t = jnp.where(moved, 1.0, t_back).astype(dtype)
    n_iter = s["n_iter"] + active
    small_g = jnp.max(jnp.abs(g), -1) <= gtol
    small_f = accept & (s["f"] - ft <= ftol * jnp.maximum(jnp.abs(s["f"]), 1e-10))
    converged = active & finite & (small_g | small_f)
    finished = active & (converged | (t < MIN_STEP) | (n_iter >= max_iter) | (fresh & ~finite))
    out = jnp.where(finished, s["slot"], n_starts)  # out of range: dropped
    out_x = s["out_x"].at[out].set(x, mode="drop")
    out_f = s["out_f"].at[out].set(f, mode="drop")
    out_conv = s["out_conv"].at[out].set(converged, mode="drop")
    out_iter = s["out_iter"].at[out].set(n_iter, mode="drop")
    # Refill finished lanes with the next starts of the queue.
    free = ~(active & ~finished)
    queue_index = s["next"] + jnp.cumsum(free) - 1
    take = free & (queue_index < n_starts)
    slot = jnp.where(take, queue_index, s["slot"])
    x = lane_where(take, starts[jnp.minimum(queue_index, n_starts - 1)], x)
    keep = ~take
    return dict(
        x=x, f=f, g=g, S=S * keep[:, None, None], Y=Y * keep[:, None, None],
        rho=rho * keep[:, None],
        t=jnp.where(take, 1.0, t).astype(dtype), fresh=take, active=(active & ~finished) | take,
        slot=slot, n_iter=jnp.where(take, 0, n_iter), next=s["next"] + jnp.sum(take),
        out_x=out_x, out_f=out_f, out_conv=out_conv, out_iter=out_iter)

  state = dict(
      x=starts[:pool], f=jnp.full(pool, jnp.inf, dtype), g=jnp.zeros((pool, n_params), dtype),
      S=jnp.zeros((pool, memory, n_params), dtype), Y=jnp.zeros((pool, memory, n_params), dtype),
      rho=jnp.zeros((pool, memory), dtype), t=jnp.ones(pool, dtype), fresh=jnp.ones(pool, bool),
      active=jnp.ones(pool, bool), slot=jnp.arange(pool), n_iter=jnp.zeros(pool, jnp.int32),
      next=jnp.asarray(pool), out_x=jnp.zeros_like(starts),
      out_f=jnp.full(n_starts, jnp.inf, dtype), out_conv=jnp.zeros(n_starts, bool),
      out_iter=jnp.zeros(n_starts, jnp.int32))
  state = jax.lax.while_loop(lambda s: jnp.any(s["active"]), body, state)
  return state["out_x"], state["out_f"], state["out_conv"], state["out_iter"]


def pad_points(points, weights, multiple: int = POINTS_MULTIPLE):
  """Pads the point axis (the first) to a multiple of `multiple` with copies of the first point at
  weight 0, so fits of slightly different tables (a holdout refit, another test) reuse one compiled
  loop. A point's input may be a row (a curve law's schedule history: [n, M])."""
  weights = np.asarray(weights, np.float64)
  n = weights.shape[1]
  extra = -n % multiple
  points = tuple(np.concatenate([v, np.repeat(v[:1], extra, axis=0)]) for v in points)
  return points, np.pad(weights, ((0, 0), (0, extra)))


def minimize(value_and_grad, starts, weights, data=(), *, pool: int = 128, memory: int = 10,
             max_iter: int = 1000, gtol: float = 1e-8, ftol: float = 1e-10) -> Minima:
  """Minimises from every start; returns each start's minimum.

  Args:
    value_and_grad: batched objective `(x[W, P], weights[W, n], data) -> (f[W], g[W, P])`; a
      module-level function (it is a static argument of the compiled loop).
    starts: [S, P] starting points.
    weights: [S, n] point weights of each start.
    data: a pytree of arrays shared by all starts.
    pool: lanes run side by side (fewer when there are fewer starts).
    memory: L-BFGS history length.
    max_iter: iterations per start before it is reported as not converged.
    gtol: converged when the largest gradient component is at most this...
    ftol: ...or when an accepted step lowers f by at most ftol * |f| (scipy's L-BFGS-B default
      is about 2e-9; 1e-10 moves the Chinchilla fit by less than 1e-7 relative).
  """
  starts = jnp.asarray(starts)
  weights = jnp.asarray(weights, starts.dtype)
  x, f, converged, n_iter = _minimize(
      value_and_grad, starts, weights, data, pool=min(pool, starts.shape[0]), memory=memory,
      max_iter=max_iter, gtol=gtol, ftol=ftol)
  return Minima(np.asarray(x), np.asarray(f), np.asarray(converged), np.asarray(n_iter))
