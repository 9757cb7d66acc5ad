"""The optimizer: AdamW after global-norm clipping (the lr it follows is training/schedules/).

Under model.parametrization mup or completep each parameter group (model/parametrization.py) has
its own AdamW, with its factors on the lr, Adam's epsilon and the weight decay
(optax.multi_transform); under sp one AdamW covers every parameter, exactly as before.
"""
import jax
import optax

from model import parametrization

ADAM_EPS = 1e-8  # optax's default, the base epsilon the groups' factors multiply


def make_optimizer(train, lr, model_cfg=None):
  """AdamW after global-norm clipping. `lr` is the step's learning rate (an array inside the
  step); the optimizer state's structure does not depend on it. `model_cfg` (a ModelConfig) sets
  the per-group factors of a mup or completep model; None or sp: one AdamW."""
  clip = optax.clip_by_global_norm(train.grad_clip)
  if model_cfg is None or model_cfg.parametrization == "sp":
    # Decay matrices only: biases, norm scales and other vectors are left alone (GPT-2, nanoGPT).
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    return optax.chain(clip, optax.adamw(lr, b1=train.b1, b2=train.b2,
                                         weight_decay=train.weight_decay, mask=decay_mask))
  adamw = lambda group: optax.adamw(lr * group.lr, b1=train.b1, b2=train.b2,
                                    eps=ADAM_EPS * group.eps,
                                    weight_decay=train.weight_decay * group.weight_decay)
  return optax.chain(clip, optax.multi_transform(
      {name: adamw(group) for name, group in parametrization.groups(model_cfg).items()},
      parametrization.labels))
