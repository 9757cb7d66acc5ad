"""The optimizer: AdamW after global-norm clipping (the lr it follows is training/schedules/)."""
import jax
import optax


def make_optimizer(train, lr):
  """AdamW after global-norm clipping. `lr` is the step's learning rate (an array inside the
  step); the optimizer state's structure does not depend on it."""
  # Decay matrices only: biases, norm scales and other vectors are left alone (GPT-2, nanoGPT).
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(lr, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay, mask=decay_mask))

