"""The inverse square root decay (Vaswani et al. 2017): peak sqrt(warmup / step) after the warmup.

It does not depend on the run's length, so a cooldown ending the run (train.cooldown_points=(1.0,),
Zhai et al. 2022) brings it to min_lr_ratio at the end, and branch sweeps can branch off one trunk.
"""
import jax.numpy as jnp

from training.schedules import Schedule, register


def decay(step, warmup, total, peak_lr, min_lr_ratio):
  warmup = jnp.maximum(warmup, 1)
  return peak_lr * jnp.sqrt(warmup / jnp.maximum(step, warmup))


register(Schedule("inverse_sqrt", decay, length_free=True))
