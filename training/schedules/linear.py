"""The linear decay to min_lr_ratio of the peak at the run's end, and the linear cooldown shape."""
import jax.numpy as jnp

from training.schedules import Schedule, register, register_cooldown


def decay(step, warmup, total, peak_lr, min_lr_ratio):
  progress = jnp.clip((step - warmup) / jnp.maximum(total - warmup, 1), 0, 1)
  return peak_lr * (1 - (1 - min_lr_ratio) * progress)


register(Schedule("linear", decay))
register_cooldown("linear", lambda p: p)
