"""The optimizer (AdamW after global-norm clipping) and the learning-rate schedules it follows.

Every schedule is fitted to the run's own budget: linear warmup from 0, then either a cosine decay
(Chinchilla) or a constant peak and a short cooldown (WSD), reaching `min_lr_ratio` of the peak
exactly at the last step.
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


SCHEDULES = ("cosine", "wsd")
COOLDOWN_SHAPES = ("1-sqrt", "linear")


def scheduled_lr(step, peak_lr, warmup_steps, total_steps, min_lr_ratio: float,
                 schedule: str = "cosine", cooldown_steps=0, cooldown_shape: str = "1-sqrt"):
  """Learning rate at `step`: 0 -> peak over the warmup, then to min_lr_ratio * peak at total_steps.

  cosine: cosine decay over everything after the warmup. wsd (warmup-stable-decay, Hägele et al.
  2024): constant peak, then over the last `cooldown_steps` a cooldown of shape 1 - sqrt(p) or
  1 - p in the cooldown's progress p; with no cooldown steps the lr stays at the peak (a trunk).
  `schedule` and `cooldown_shape` are fixed per compiled program; every number may be an array:
  the train step takes a run's peak, warmup, length and cooldown as inputs, so runs that differ
  in them share one compiled program. The warmup is at least one step and leaves at least one
  step after it (optax.warmup_cosine_decay_schedule's curve, for the cosine).
  """
  step = jnp.asarray(step, jnp.float32)
  total = jnp.asarray(total_steps, jnp.float32)
  warmup = jnp.where(total > 1, jnp.clip(jnp.asarray(warmup_steps, jnp.float32), 1, total - 1), 0)
  # Written as optax's linear schedule is, so the two agree to float32 rounding.
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
  else:
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
  return jnp.where(step < warmup, warming, decayed)
