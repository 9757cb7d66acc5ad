"""The optimizer (AdamW after global-norm clipping) and the learning-rate schedule it follows.

The schedule is fitted to the run's own budget (Chinchilla): linear warmup from 0, then cosine
decay to `min_lr_ratio` (10%) of the peak, reaching it exactly at the last step.
"""
import jax
import jax.numpy as jnp
import optax


def make_optimizer(train, lr):
  """AdamW after global-norm clipping. `lr` is the step's learning rate (an array inside the
  step); the optimizer state's structure does not depend on it."""
  # Decay matrices only: biases, norm scales and other vectors are left alone (GPT-2, nanoGPT).
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(lr, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay, mask=decay_mask))


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
