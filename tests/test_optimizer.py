"""The learning-rate schedule fitted to the budget."""
import math

import numpy as np
import optax
import pytest

from training import optimizer


def test_schedule_warms_up_then_ends_at_ten_percent_exactly_at_the_last_step():
  lr = lambda step: optimizer.scheduled_lr(step, peak_lr=1e-3, warmup_steps=100, total_steps=1000,
                                           min_lr_ratio=0.1)
  assert float(lr(0)) == 0.0
  assert float(lr(50)) == pytest.approx(5e-4)
  assert float(lr(100)) == pytest.approx(1e-3)
  midway = 100 + 450
  assert float(lr(midway)) == pytest.approx(1e-4 + 0.5 * 9e-4, rel=1e-5)
  assert float(lr(1000)) == pytest.approx(1e-4)
  values = np.array([float(lr(s)) for s in range(100, 1001)])
  assert np.all(np.diff(values) <= 1e-12)  # monotone decay after warmup
  assert math.isclose(values.min(), 1e-4, rel_tol=1e-6)


@pytest.mark.parametrize("peak, total, warmup", [(3e-3, 100, 10), (1e-3, 7, 0), (0.5, 1, 5),
                                                 (2e-4, 1000, 999)])
def test_the_schedule_is_optax_warmup_cosine_with_its_warmup_clamped(peak, total, warmup):
  """scheduled_lr takes arrays (so the train step compiles once for every lr and budget) and
  equals optax's warmup-cosine curve, with at least one warmup and one decay step."""
  steps = np.arange(total + 2)
  clamped = min(max(warmup, 1), total - 1) if total > 1 else 0
  expected = optax.warmup_cosine_decay_schedule(0.0, peak, clamped, max(total, 1), 0.1 * peak)(steps)
  got = optimizer.scheduled_lr(steps, np.float32(peak), np.int32(warmup), np.int32(total), 0.1)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=2e-6, atol=1e-12)


@pytest.mark.parametrize("shape, fall", [("1-sqrt", math.sqrt), ("linear", lambda p: p)])
def test_wsd_warms_up_holds_the_peak_then_cools_down_to_its_floor(shape, fall):
  """Warmup-stable-decay (Hägele et al. 2024): lr = peak (1 - (1 - min) f(p)) over the cooldown,
  p its progress, f = sqrt (the 1-sqrt shape) or the identity (linear)."""
  lr = lambda step, cooldown=20: float(optimizer.scheduled_lr(
      step, 1e-3, 10, 100, 0.1, schedule="wsd", cooldown_steps=cooldown, cooldown_shape=shape))
  assert lr(0) == 0.0 and lr(5) == pytest.approx(5e-4)
  for step in (10, 50, 79, 80):  # the stable phase ends where the cooldown starts, at step 80
    assert lr(step) == pytest.approx(1e-3)
  for step in (85, 90, 95):
    assert lr(step) == pytest.approx(1e-3 * (1 - 0.9 * fall((step - 80) / 20)), rel=1e-5)
  assert lr(100) == pytest.approx(1e-4)
  values = [lr(step) for step in range(80, 101)]
  assert all(b <= a for a, b in zip(values, values[1:]))
  # No cooldown steps: a trunk, constant after its warmup to the end and beyond.
  assert [lr(step, cooldown=0) for step in (10, 100, 150)] == pytest.approx([1e-3] * 3)


def test_the_schedule_kinds_are_checked():
  with pytest.raises(ValueError, match="schedule must be one of"):
    optimizer.scheduled_lr(0, 1e-3, 1, 10, 0.1, schedule="linear")
