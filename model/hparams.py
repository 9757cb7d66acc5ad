"""Optimisation hyperparameters as documented rules of model size, and the learning-rate schedule.

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
- Schedule: linear warmup from 0, then cosine decay to `min_lr_ratio` (10%) of the peak, reaching it
  exactly at the last step, so the schedule is fitted to the run's own budget (Chinchilla).
"""
import math

import jax.numpy as jnp

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


def scheduled_lr(step, peak_lr, warmup_steps, total_steps, min_lr_ratio: float):
  """Learning rate at `step`: 0 -> peak over the warmup, cosine to min_lr_ratio * peak at total_steps.

  Every number may be an array: the train step takes a run's peak, warmup and length as inputs, so
  runs that differ in them share one compiled program. The warmup is at least one step and leaves
  at least one step of decay (optax.warmup_cosine_decay_schedule's curve otherwise).
  """
  step = jnp.asarray(step, jnp.float32)
  total = jnp.asarray(total_steps, jnp.float32)
  warmup = jnp.where(total > 1, jnp.clip(jnp.asarray(warmup_steps, jnp.float32), 1, total - 1), 0)
  decay_steps = total - warmup
  # Written as optax's linear schedule is, so the two agree to float32 rounding.
  warming = -peak_lr * (1 - jnp.clip(step, 0, warmup) / jnp.maximum(warmup, 1)) + peak_lr
  cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(step - warmup, decay_steps) / decay_steps))
  decayed = peak_lr * ((1 - min_lr_ratio) * cosine + min_lr_ratio)
  return jnp.where(step < warmup, warming, decayed)
