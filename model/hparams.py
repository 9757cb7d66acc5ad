"""Optimisation hyperparameters as documented rules of model size (training/optimizer.py holds the schedule).

A sweep is only as fair as its worst-tuned point, so when a config leaves the learning rate, batch
or warmup at 0 they follow these rules of the non-embedding parameter count N and the budget D:

- Peak learning rate  lr(N) = 3e-3 * (N / 1e6) ** (-1/3): the N^-1/3 scaling of the OLMo model
  ladder, anchored so that ~1M-parameter models get 3e-3 and ~100M get 6.5e-4 (GPT-3 125M: 6e-4).
- Batch               tokens(N) = 4096 * sqrt(N / 1e5), rounded to a power of two in sequences, then
  lowered (by powers of two) until the run has at least 100 optimiser steps, and never below one
  sequence per device. Larger models tolerate larger batches (Kaplan's critical batch grows as the
  loss falls); the step floor keeps small budgets from being a handful of huge steps.
- Warmup              min(N tokens, 10% of D): one token per parameter as in the OLMo ladder,
  capped so that short runs spend most of their budget in the cosine.
"""
import math

MIN_STEPS = 100


def learning_rate(n_params: float) -> float:
  return 3e-3 * (n_params / 1e6) ** (-1 / 3)


def batch_size(n_params: float, tokens: float, seq_len: int, multiple_of: int = 1) -> int:
  """Sequences per optimiser step: the rule above, a multiple of `multiple_of` (devices x micro-batches)."""
  target_sequences = 4096 * math.sqrt(n_params / 1e5) / seq_len
  sequences = 2 ** max(0, round(math.log2(max(target_sequences, 1))))
  while sequences > 1 and tokens / (sequences * seq_len) < MIN_STEPS:
    sequences //= 2
  return max(multiple_of, sequences // multiple_of * multiple_of)


def warmup_tokens(n_params: float, tokens: float) -> int:
  return int(min(n_params, 0.1 * tokens))
