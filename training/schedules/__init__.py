"""Learning-rate schedules as registered parts: a linear warmup, a decay, and cooldowns.

A schedule (`train.schedule`, one `Schedule` registered by name) is a linear warmup from 0 to the
peak, then its decay, with cooldowns of shape `train.cooldown_shape` ending at
`train.cooldown_points` (fractions of the run; () takes the schedule's own: wsd one at the end,
cosine none). Each cooldown
spans `train.cooldown_fraction` of the steps up to its end and takes the lr from where the decay
has it at its start to `train.min_lr_ratio` of that; after a cooldown that ends before the run does,
the lr goes back to the decay (WSD-S, Wen et al. 2024). Each decay and each cooldown shape is one
module of this package that registers itself on import.

A run's numbers (`Schedule.numbers`: warmup, length, cooldown lengths and ends) are arrays in the
train state's `run` dict, so runs that differ only in them share one compiled step; the schedule's
name, the cooldown shape, min_lr_ratio and the number of cooldown points are fixed per program.
"""
import dataclasses
import importlib
import pkgutil
from typing import Callable

import jax.numpy as jnp

from core.config import ConfigError

SCHEDULES: dict = {}        # name -> Schedule
COOLDOWN_SHAPES: dict = {}  # name -> fall(p): 0 -> 1 over the cooldown's progress p in [0, 1]


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Warmup x `decay` x cooldowns at `points` (or train.cooldown_points).

  `decay(step, warmup, total, peak_lr, min_lr_ratio)` is the lr after the warmup (float32 arrays).
  `length_free`: the decay does not depend on the run's length (constant, inverse square root), so
  up to its first cooldown a run equals any longer run of the schedule: a branch sweep's trunk.
  """
  name: str
  decay: Callable
  length_free: bool = False
  points: tuple = ()  # cooldown ends, fractions of the run, when train.cooldown_points is ()
  # The train.* keys it reads (experiments/base.py documents each one).
  keys: tuple = ("warmup_tokens", "min_lr_ratio", "cooldown_points", "cooldown_fraction",
                 "cooldown_shape")
  # What makes a run of it a branch sweep's trunk: no cooldown.
  trunk_overrides: tuple = ("--config.train.cooldown_fraction=0.0",)

  @property
  def supports_branches(self) -> bool:
    return self.length_free

  def cooldown_points(self, train) -> tuple:
    return tuple(train.cooldown_points) or self.points

  def numbers(self, train, steps: int, tokens_per_step: int) -> dict:
    """The run's own numbers: warmup and total steps, cooldown lengths (and ends, unless there is
    at most one, at the end: the numbers cosine and wsd runs have always had)."""
    numbers = {"warmup_steps": round(train.warmup_tokens / tokens_per_step), "total_steps": steps}
    points = self.cooldown_points(train)
    if points in ((), (1.0,)):
      numbers["cooldown_steps"] = round(train.cooldown_fraction * steps) if points else 0
      return numbers
    ends = tuple(round(point * steps) for point in points)
    lengths = tuple(round(train.cooldown_fraction * end) for end in ends)
    starts = [end - length for end, length in zip(ends, lengths)]
    if ends[0] < 1 or any(start < end for start, end in zip(starts[1:], ends)):
      raise ConfigError(f"train.cooldown_points={points} end cooldowns of {lengths} steps at steps "
                        f"{ends} of {steps}: they overlap; space the points further apart or lower "
                        "train.cooldown_fraction")
    return {**numbers, "cooldown_ends": ends, "cooldown_steps": lengths}

  def branch_step(self, numbers: dict) -> int | None:
    """Where a branch leaves its trunk: the first cooldown's start (None: no such step)."""
    if not self.length_free:
      return None
    ends = numbers.get("cooldown_ends", (numbers["total_steps"],))
    lengths = numbers["cooldown_steps"]
    lengths = lengths if isinstance(lengths, tuple) else (lengths,)
    return min(end - length for end, length in zip(ends, lengths))

  def lr(self, step, run: dict, train):
    """The lr at `step` of the run whose numbers (and "peak_lr") are `run`; `train` gives the
    static min_lr_ratio and cooldown_shape. The warmup is at least one step and leaves at least one
    step after it (optax.warmup_cosine_decay_schedule's curve, for the cosine)."""
    step = jnp.asarray(step, jnp.float32)
    peak_lr, total = run["peak_lr"], jnp.asarray(run["total_steps"], jnp.float32)
    warmup = jnp.where(total > 1, jnp.clip(jnp.asarray(run["warmup_steps"], jnp.float32), 1,
                                           total - 1), 0)
    # Written as optax's linear schedule is, so the two agree to float32 rounding.
    warming = -peak_lr * (1 - jnp.clip(step, 0, warmup) / jnp.maximum(warmup, 1)) + peak_lr
    lr = self.decay(step, warmup, total, peak_lr, train.min_lr_ratio)
    fall = COOLDOWN_SHAPES[train.cooldown_shape]
    lengths = jnp.atleast_1d(jnp.asarray(run["cooldown_steps"], jnp.float32))
    ends = (jnp.atleast_1d(jnp.asarray(run["cooldown_ends"], jnp.float32))
            if "cooldown_ends" in run else total[None])
    for i in range(lengths.shape[0]):
      end = ends[i]
      cooldown = jnp.clip(lengths[i], 0, end - warmup)
      start = end - cooldown
      progress = jnp.where(cooldown > 0,
                           jnp.clip((step - start) / jnp.maximum(cooldown, 1), 0, 1), 0)
      held = self.decay(start, warmup, total, peak_lr, train.min_lr_ratio)
      cooled = held * (1 - (1 - train.min_lr_ratio) * fall(progress))
      # A cooldown that ends the run holds its floor beyond; an earlier one hands back to the decay.
      during = (cooldown > 0) & (step >= start) & ((step < end) | (end >= total))
      lr = jnp.where(during, cooled, lr)
    return jnp.where(step < warmup, warming, lr)


def register(schedule: Schedule) -> Schedule:
  SCHEDULES[schedule.name] = schedule
  return schedule


def register_cooldown(name: str, fall: Callable) -> Callable:
  COOLDOWN_SHAPES[name] = fall
  return fall


def get(name: str) -> Schedule:
  if name not in SCHEDULES:
    raise ConfigError(f"train.schedule must be one of {', '.join(sorted(SCHEDULES))}, got "
                      f"{name!r}")
  return SCHEDULES[name]


def check(train) -> Schedule:
  """train's schedule, its keys and their ranges checked (one-line ConfigErrors)."""
  schedule = get(train.schedule)
  missing = [key for key in schedule.keys if not hasattr(train, key)]
  if missing:
    raise ConfigError(f"train.schedule={schedule.name} reads train.{', train.'.join(missing)}, "
                      "which the config lacks")
  if train.cooldown_shape not in COOLDOWN_SHAPES:
    raise ConfigError(f"train.cooldown_shape must be one of {', '.join(sorted(COOLDOWN_SHAPES))}, "
                      f"got {train.cooldown_shape!r}")
  if not 0 <= train.cooldown_fraction <= 1 or not 0 <= train.min_lr_ratio <= 1:
    raise ConfigError(f"train.cooldown_fraction and train.min_lr_ratio must be within [0, 1], got "
                      f"{train.cooldown_fraction} and {train.min_lr_ratio}")
  points = tuple(train.cooldown_points)
  if (any(not isinstance(p, (int, float)) or not 0 < p <= 1 for p in points)
      or list(points) != sorted(set(points))):
    raise ConfigError(f"train.cooldown_points must be increasing fractions of the run in (0, 1], "
                      f"got {points}")
  return schedule


# The built-in parts: every module of this package, each registering itself on import (so adding
# one is adding its file).
for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")
