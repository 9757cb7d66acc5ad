"""The rules of N for learning rate, batch and warmup."""
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
