"""The 1-sqrt cooldown shape (Hägele et al. 2024): the lr falls as sqrt(p) of the cooldown's
progress p."""
import jax.numpy as jnp

from training.schedules import register_cooldown

register_cooldown("1-sqrt", jnp.sqrt)
