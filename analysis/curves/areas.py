"""The learning-rate schedule as the curve laws read it: areas, annealing drops and their quadrature.

A run's schedule is its lr at every update u = 0..T-1 (the update that makes step u + 1; a metrics
row at step t logs lr(t - 1)). At step t:
- S1(t) = sum_{u < t} lr(u): the area under the schedule so far, warmup included (Tissue et al.
  2024's forward area; Luo et al. 2025's S1 + S_W).
- The annealing drops d_u = lr(u - 1) - lr(u) after the warmup (the updates past the first peak of
  the lr; a re-warming, as after a WSD-S cooldown, is a negative drop). Tissue et al.'s
  S2(t) = sum_{u < t} m_u with momentum m_u = lambda m_{u-1} + d_u is sum_u d_u (1 - lambda^(t-u))
  / (1 - lambda); the multi-power law's loss drop is B sum_u d_u G(lr(u)^-gamma S_u(t)) with
  S_u(t) = sum_{u <= v < t} lr(v). Both are sums over the drops of a kernel of the law's own
  parameters, so a point carries its drop history: NODES quadrature nodes, each a segment of
  consecutive drops of one sign holding an equal share of a measure that is half the run's total
  |drop| and half its number of drops (a midpoint rule in the drop measure whose nodes never
  span a long stretch of steps; with at most NODES drops, every drop is its own node, exactly).
  A node's drop is lr(first - 1) - lr(last) (exact over the segment), its lr, area S_u(t) and lag
  t - u are those of the update where the segment's cumulative drop reaches half.
Every feature is positive (the fitter works on logs): a node past t is padded with zero drop, and
the lr is floored at LR_FLOOR of the peak (a cooldown to 0 ends at the floor, not at 0).
"""
import dataclasses

import numpy as np

NODES = 48
LR_FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class History:
  """One run's schedule: the lr at every update, where the warmup ends, the drop segments."""
  lr: np.ndarray        # [T] lr(u), float64, floored
  warmup: int           # the first update at the lr's peak; drops count from the next one
  cumulative: np.ndarray  # [T + 1] S1 at each step
  segments: tuple       # (first, last) update index of each drop segment, in order

  @property
  def steps(self) -> int:
    return len(self.lr)


def history(lr, nodes: int = NODES) -> History:
  """The History of a schedule given as the lr at every update."""
  lr = np.asarray(lr, np.float64)
  if lr.ndim != 1 or len(lr) < 2 or not np.all(np.isfinite(lr)) or lr.min() < 0 or lr.max() <= 0:
    raise ValueError("a schedule is at least 2 finite, non-negative learning rates, one positive")
  lr = np.maximum(lr, LR_FLOOR * lr.max())
  warmup = int(np.argmax(lr))
  drops = np.zeros(len(lr))
  drops[warmup + 1:] = lr[warmup:-1] - lr[warmup + 1:]
  return History(lr, warmup, np.concatenate([[0.0], np.cumsum(lr)]),
                 _segments(drops, nodes))


def _segments(drops, nodes: int) -> tuple:
  """Runs of consecutive non-zero drops of one sign, cut where the cumulative measure (half
  |drop|, half count) crosses a multiple of 1 / nodes (so each segment holds an equal share)."""
  where = np.flatnonzero(drops)
  if not len(where):
    return ()
  # Each drop's share: half by its size, half by its one step, so no node spans a long stretch.
  measure = 0.5 * np.abs(drops[where]) / np.abs(drops).sum() + 0.5 / len(where)
  share = np.floor(np.cumsum(measure) * nodes * (1 - 1e-12)).astype(int)
  segments, first = [], where[0]
  for k in range(1, len(where)):
    u, prev = where[k], where[k - 1]
    if u != prev + 1 or np.sign(drops[u]) != np.sign(drops[prev]) or share[k] != share[k - 1]:
      segments.append((first, prev))
      first = u
  segments.append((first, where[-1]))
  return tuple(segments)


def s1(h: History, steps) -> np.ndarray:
  """S1 at each step (the area under the lr over the updates before it)."""
  return h.cumulative[np.asarray(steps, int)]


def s2(h: History, steps, lam: float) -> np.ndarray:
  """Tissue et al.'s annealing area S2 at each step, by its momentum recursion, update by update
  (the reference the quadrature is tested against)."""
  drops = np.zeros(h.steps)
  drops[h.warmup + 1:] = h.lr[h.warmup:-1] - h.lr[h.warmup + 1:]
  m, total, out = 0.0, 0.0, np.zeros(h.steps + 1)
  for u in range(h.steps):
    m = lam * m + drops[u]
    total += m
    out[u + 1] = total
  return out[np.asarray(steps, int)]


def nodes(h: History, steps, size: int = NODES) -> dict:
  """The drop history of each step as quadrature nodes: arrays [len(steps), size] of `eta_hi`,
  `eta_lo` (the drop is eta_hi - eta_lo), `eta` (the lr at the node), `area` (S_u(t)) and `lag`
  (t - u). Segments past a step are padded (zero drop, lr and lag 1, area the peak lr)."""
  steps = np.asarray(steps, int)
  if len(h.segments) > size:
    raise ValueError(f"{len(h.segments)} drop segments exceed {size} nodes")
  shape = (len(steps), size)
  peak = float(h.lr.max())
  out = {"eta_hi": np.full(shape, peak), "eta_lo": np.full(shape, peak), "eta": np.full(shape, peak),
         "area": np.full(shape, peak), "lag": np.ones(shape)}
  drops = np.zeros(h.steps)
  drops[h.warmup + 1:] = np.abs(h.lr[h.warmup:-1] - h.lr[h.warmup + 1:])
  cum_drop = np.cumsum(drops)
  for j, (first, last) in enumerate(h.segments):
    for i, t in enumerate(steps):
      end = min(last, t - 1)
      if end < first:
        continue
      before = cum_drop[first - 1] if first else 0.0
      half = before + 0.5 * (cum_drop[end] - before)
      node = first + int(np.searchsorted(cum_drop[first:end + 1], half))
      out["eta_hi"][i, j], out["eta_lo"][i, j] = h.lr[first - 1], h.lr[end]
      out["eta"][i, j] = h.lr[node]
      out["area"][i, j] = h.cumulative[t] - h.cumulative[node]
      out["lag"][i, j] = t - node
  return out


def features(h: History, steps, n: float | None = None, size: int = NODES) -> dict:
  """Every input a curve form reads, at each step: `s1`, the drop nodes and (given) `n`."""
  steps = np.asarray(steps, int)
  out = {"s1": s1(h, steps), **nodes(h, steps, size)}
  if n is not None:
    out["n"] = np.full(len(steps), float(n))
  return out


def lr_of_config(config) -> np.ndarray:
  """The lr at every update of a resolved run config (config.json), from its schedule as
  training/schedules/ registers it: the one implementation the training step uses."""
  from training import schedules  # pylint: disable=g-import-not-at-top (JAX; the schedules only)
  train = config.train
  tokens_per_step = train.batch_size * train.seq_len
  steps = round(train.tokens / tokens_per_step)
  schedule = schedules.check(train)
  run = {**schedule.numbers(train, steps, tokens_per_step), "peak_lr": float(train.lr)}
  # Evaluated on a power-of-two number of steps (sliced to the run's): one shape for JAX's eager
  # ops to compile for every run up to that length.
  padded = max(1024, 1 << (steps - 1).bit_length())
  return np.asarray(schedule.lr(np.arange(padded), run, train), np.float64)[:steps]


def lr_of_points(steps, lr, total: int) -> np.ndarray:
  """The lr at every update of a schedule logged at some steps (a table): linear between logged
  steps (a row at step t holds lr(t - 1)), held before the first and after the last."""
  return np.interp(np.arange(total) + 1.0, np.asarray(steps, np.float64),
                   np.asarray(lr, np.float64))
