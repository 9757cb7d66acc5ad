"""The rules of N for learning rate, batch and warmup, and the schedule fitted to the budget."""
import math

import numpy as np
import optax
import pytest

from model import hparams


def test_learning_rate_falls_as_n_to_the_minus_one_third():
  assert hparams.learning_rate(1e6) == pytest.approx(3e-3)
  assert hparams.learning_rate(8e6) == pytest.approx(1.5e-3)
  assert hparams.learning_rate(1e8) == pytest.approx(3e-3 / 100 ** (1 / 3))


def test_batch_grows_with_n_keeps_100_steps_and_fits_the_devices():
  seq_len = 128
  assert hparams.batch_size(1e5, 1e9, seq_len) == 32          # 4096 tokens at N = 1e5
  assert hparams.batch_size(1e7, 1e9, seq_len) == 256         # x sqrt(100) = 10, to a power of 2
  small_budget = hparams.batch_size(1e7, 1e6, seq_len)        # 1M tokens: at least 100 steps
  assert 1e6 / (small_budget * seq_len) >= hparams.MIN_STEPS
  assert hparams.batch_size(1e4, 1e5, seq_len, multiple_of=8) % 8 == 0


def test_warmup_is_n_tokens_capped_at_a_tenth_of_the_budget():
  assert hparams.warmup_tokens(1e5, 1e7) == 100_000
  assert hparams.warmup_tokens(1e6, 1e6) == 100_000


def test_schedule_warms_up_then_ends_at_ten_percent_exactly_at_the_last_step():
  lr = lambda step: hparams.scheduled_lr(step, peak_lr=1e-3, warmup_steps=100, total_steps=1000,
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
  got = hparams.scheduled_lr(steps, np.float32(peak), np.int32(warmup), np.int32(total), 0.1)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=2e-6, atol=1e-12)
