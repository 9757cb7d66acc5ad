"""A schedule that lives only in the tests: exponential decay from the peak to min_lr_ratio of it
at the run's end. Importing this module registers it; no project file names it."""
import jax.numpy as jnp

from training.schedules import Schedule, register

NAME = "exponential_for_tests"


def decay(step, warmup, total, peak_lr, min_lr_ratio):
  progress = jnp.clip((step - warmup) / jnp.maximum(total - warmup, 1), 0, 1)
  return peak_lr * min_lr_ratio ** progress


register(Schedule(NAME, decay))
