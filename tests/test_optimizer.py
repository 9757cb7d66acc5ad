"""The learning-rate schedules (training/schedules/): cosine and wsd exactly as they always were,
the other decays, cooldown shapes and points against their formulas, and what branches need."""
import functools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from core.config import ConfigError
from training import schedules


def reference_lr(step, peak_lr, warmup_steps, total_steps, min_lr_ratio: float,
                 schedule: str = "cosine", cooldown_steps=0, cooldown_shape: str = "1-sqrt"):
  """training/optimizer.py's scheduled_lr before schedules were registered parts, verbatim."""
  step = jnp.asarray(step, jnp.float32)
  total = jnp.asarray(total_steps, jnp.float32)
  warmup = jnp.where(total > 1, jnp.clip(jnp.asarray(warmup_steps, jnp.float32), 1, total - 1), 0)
  warming = -peak_lr * (1 - jnp.clip(step, 0, warmup) / jnp.maximum(warmup, 1)) + peak_lr
  if schedule == "cosine":
    decay_steps = total - warmup
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(step - warmup, decay_steps) / decay_steps))
    decayed = peak_lr * ((1 - min_lr_ratio) * cosine + min_lr_ratio)
  elif schedule == "wsd":
    cooldown = jnp.clip(jnp.asarray(cooldown_steps, jnp.float32), 0, total - warmup)
    progress = jnp.where(cooldown > 0,
                         jnp.clip((step - (total - cooldown)) / jnp.maximum(cooldown, 1), 0, 1), 0)
    fall = jnp.sqrt(progress) if cooldown_shape == "1-sqrt" else progress
    decayed = peak_lr * (1 - (1 - min_lr_ratio) * fall)
  return jnp.where(step < warmup, warming, decayed)


def train_config(schedule="cosine", points=(), fraction=0.2, shape="1-sqrt", min_lr_ratio=0.1,
                 warmup_tokens=0):
  return types.SimpleNamespace(schedule=schedule, cooldown_points=points,
                               cooldown_fraction=fraction, cooldown_shape=shape,
                               min_lr_ratio=min_lr_ratio, warmup_tokens=warmup_tokens)


def lr_of(train, steps, warmup, peak=1e-3, at=None, jit=True):
  """The lr over steps 0..steps+1 (or at `at`) of a run of `train`'s schedule, as the step sees it:
  every number a float32 or int32 array, compiled (or eagerly)."""
  numbers = schedules.get(train.schedule).numbers(train, steps, 1) | {"warmup_steps": warmup}
  run = {"peak_lr": np.float32(peak), **{k: np.asarray(v, np.int32) for k, v in numbers.items()}}
  at = np.arange(steps + 2) if at is None else at
  lr = lambda run: schedules.get(train.schedule).lr(at, run, train)
  lr = jax.jit(lr) if jit else lr
  return np.asarray(lr(run)), numbers


SETTINGS = [(10, 100, 20), (0, 7, 2), (5, 1, 0), (999, 1000, 200), (30, 400, 0), (3, 250, 249),
            (40, 100, 90)]  # (warmup, total, cooldown steps)


@pytest.mark.parametrize("schedule, shape", [("cosine", "1-sqrt"), ("wsd", "1-sqrt"),
                                             ("wsd", "linear")])
def test_cosine_and_wsd_give_exactly_the_learning_rates_they_always_did(schedule, shape):
  """To the bit at every step of every setting, with a cooldown and without (a trunk): compiled
  with the numbers as inputs (as in the train step), over all steps at once and one step at a
  time, and eagerly."""
  schedule_, static = schedules.get(schedule), train_config(schedule, shape=shape)
  new = lambda step, run: schedule_.lr(step, run, static)
  old = lambda step, run: reference_lr(step, run["peak_lr"], run["warmup_steps"],
                                       run["total_steps"], 0.1, schedule, run["cooldown_steps"],
                                       shape)
  steps = np.arange(1003)
  new_all, old_all = (jax.jit(functools.partial(fn, steps)) for fn in (new, old))
  new_step, old_step = jax.jit(new), jax.jit(old)
  for warmup, total, cooldown in SETTINGS:
    train = train_config(schedule, shape=shape, fraction=cooldown / total)
    numbers = schedule_.numbers(train, total, 1) | {"warmup_steps": warmup}
    assert numbers["cooldown_steps"] == (cooldown if schedule == "wsd" else 0)
    for trunk in (False, True):
      run = {"peak_lr": np.float32(3e-3), **{k: np.int32(v) for k, v in numbers.items()}}
      if trunk:
        run["cooldown_steps"] = np.int32(0)
      np.testing.assert_array_equal(np.asarray(new_all(run)), np.asarray(old_all(run)))
      for step in range(0, total + 2, max(1, total // 20)):
        assert new_step(np.int32(step), run) == old_step(np.int32(step), run), step
  np.testing.assert_array_equal(np.asarray(new(steps[:120], run)),
                                np.asarray(old(steps[:120], run)))


@pytest.mark.parametrize("peak, total, warmup", [(3e-3, 100, 10), (1e-3, 7, 0), (0.5, 1, 5),
                                                 (2e-4, 1000, 999)])
def test_the_cosine_is_optax_warmup_cosine_with_its_warmup_clamped(peak, total, warmup):
  """Equal to optax's warmup-cosine curve, with at least one warmup and one decay step."""
  clamped = min(max(warmup, 1), total - 1) if total > 1 else 0
  expected = optax.warmup_cosine_decay_schedule(0.0, peak, clamped, max(total, 1), 0.1 * peak)(
      np.arange(total + 2))
  got, _ = lr_of(train_config("cosine"), total, warmup, peak, jit=False)  # as optax computes
  np.testing.assert_allclose(got, np.asarray(expected), rtol=2e-6, atol=1e-12)


def test_the_cosine_warms_up_then_ends_at_ten_percent_exactly_at_the_last_step():
  lr, _ = lr_of(train_config("cosine"), 1000, 100)
  assert lr[0] == 0.0 and lr[50] == pytest.approx(5e-4) and lr[100] == pytest.approx(1e-3)
  assert lr[550] == pytest.approx(1e-4 + 0.5 * 9e-4, rel=1e-5)
  assert lr[1000] == pytest.approx(1e-4) and np.all(np.diff(lr[100:1001]) <= 1e-12)


@pytest.mark.parametrize("shape, fall", [("1-sqrt", math.sqrt), ("linear", lambda p: p),
                                         ("cosine", lambda p: 0.5 * (1 - math.cos(math.pi * p)))])
def test_wsd_holds_the_peak_then_cools_down_in_each_shape_to_its_floor(shape, fall):
  """lr = peak (1 - (1 - min) f(p)) over the cooldown, p its progress."""
  lr, numbers = lr_of(train_config("wsd", shape=shape), 100, 10)
  assert numbers == {"warmup_steps": 10, "total_steps": 100, "cooldown_steps": 20}
  assert lr[0] == 0.0 and lr[5] == pytest.approx(5e-4)
  assert lr[10:81] == pytest.approx([1e-3] * 71)  # the stable phase ends where the cooldown starts
  for step in (85, 90, 95):
    assert lr[step] == pytest.approx(1e-3 * (1 - 0.9 * fall((step - 80) / 20)), rel=1e-5)
  assert lr[100] == lr[101] == pytest.approx(1e-4)
  assert np.all(np.diff(lr[80:102]) <= 0)


def test_linear_constant_and_inverse_sqrt_decays_follow_their_formulas():
  steps = np.arange(202)
  linear, _ = lr_of(train_config("linear"), 200, 20)
  expected = 1e-3 * (1 - 0.9 * np.clip((steps - 20) / 180, 0, 1))
  np.testing.assert_allclose(linear[20:], expected[20:], rtol=1e-6)
  constant, _ = lr_of(train_config("constant"), 200, 20)
  assert constant[20:] == pytest.approx([1e-3] * 182)
  rsqrt, _ = lr_of(train_config("inverse_sqrt"), 200, 20)
  np.testing.assert_allclose(rsqrt[20:], 1e-3 * np.sqrt(20 / steps[20:]), rtol=1e-6)
  for lr in (linear, constant, rsqrt):  # the same warmup for all
    np.testing.assert_allclose(lr[:20], 1e-3 * steps[:20] / 20, rtol=1e-6, atol=1e-12)


def test_a_cooldown_on_a_decay_starts_from_where_the_decay_is():
  """inverse_sqrt with a linear cooldown over the last 25% (Zhai et al. 2022's rsqrt + cooldown)."""
  lr, numbers = lr_of(train_config("inverse_sqrt", points=(1.0,), fraction=0.25, shape="linear"),
                      200, 20)
  assert numbers["cooldown_steps"] == 50
  held = 1e-3 * math.sqrt(20 / 150)
  np.testing.assert_allclose(lr[20:151], 1e-3 * np.sqrt(20 / np.arange(20, 151)), rtol=1e-6)
  for step in (160, 175, 199, 200):
    assert lr[step] == pytest.approx(held * (1 - 0.9 * (step - 150) / 50), rel=1e-5)


def test_wsd_s_cools_down_at_every_point_and_returns_to_the_peak_between():
  """OLMo's ladder's points: 0.5, 1, 2, 5 and 10x Chinchilla of a 10x run, each cooldown 20% of
  the steps up to it."""
  lr, numbers = lr_of(train_config("wsd_s"), 1000, 10)
  assert numbers["cooldown_ends"] == (50, 100, 200, 500, 1000)
  assert numbers["cooldown_steps"] == (10, 20, 40, 100, 200)
  for end, length in zip(numbers["cooldown_ends"], numbers["cooldown_steps"]):
    start = end - length
    assert lr[start] == pytest.approx(1e-3)
    for step in range(start, end):
      assert lr[step] == pytest.approx(1e-3 * (1 - 0.9 * math.sqrt((step - start) / length)),
                                       rel=1e-5)
    if end < 1000:
      assert lr[end] == pytest.approx(1e-3)  # the decay (the peak) again after the point
  assert lr[1000] == pytest.approx(1e-4)
  phases = [(10, 40), (50, 80), (100, 160), (200, 400), (500, 800)]
  for first, last in phases:
    assert lr[first:last + 1] == pytest.approx([1e-3] * (last - first + 1))
  assert schedules.get("wsd_s").branch_step(numbers) == 40


def test_overlapping_cooldown_points_and_bad_keys_are_one_line_config_errors():
  with pytest.raises(ConfigError, match="overlap"):
    schedules.get("wsd_s").numbers(train_config("wsd_s", points=(0.9, 1.0)), 100, 1)
  for bad, match in [(dict(schedule="step"), "train.schedule must be one of"),
                     (dict(shape="square"), "cooldown_shape must be one of"),
                     (dict(points=(0.5, 0.2)), "increasing fractions"),
                     (dict(points=(0.0, 1.0)), "increasing fractions"),
                     (dict(fraction=1.5), "within")]:
    with pytest.raises(ConfigError, match=match):
      schedules.check(train_config(**bad))


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_branchable_schedules_equal_every_longer_run_up_to_their_branch_step(name):
  """What a branch sweep relies on: up to the branch step, a run's lr is its trunk's (the schedule
  without cooldown, longer) and a longer run's; schedules whose decay depends on the length
  refuse."""
  schedule = schedules.get(name)
  train = train_config(name, points=schedule.points or (1.0,))
  lr, numbers = lr_of(train, 300, 5)
  branch = schedule.branch_step(numbers)
  if not schedule.supports_branches:
    assert branch is None and name in ("cosine", "linear")
    return
  trunk_train = train_config(name, points=train.cooldown_points, fraction=0.0)
  for other in (lr_of(trunk_train, 500, 5)[0], lr_of(train, 2000, 5)[0]):
    np.testing.assert_array_equal(lr[:branch + 1], other[:branch + 1])
  assert lr[branch + 1] < lr[branch] or name == "constant"
