"""The cosine decay (Chinchilla) to min_lr_ratio of the peak at the run's end, and the cosine
cooldown shape."""
import jax.numpy as jnp

from training.schedules import Schedule, register, register_cooldown


def decay(step, warmup, total, peak_lr, min_lr_ratio):
  decay_steps = total - warmup
  cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(step - warmup, decay_steps) / decay_steps))
  return peak_lr * ((1 - min_lr_ratio) * cosine + min_lr_ratio)


register(Schedule("cosine", decay))
register_cooldown("cosine", lambda p: 0.5 * (1 - jnp.cos(jnp.pi * p)))
