"""What each model family is trained to predict: the model it builds and its loss on a batch.

train.py trains every family through these two functions, so a family is added here (and in
model/transformer.py) without touching the trainer. Losses are means over target tokens, in nats,
so that laws fitted to different families are comparable.

  decoder   causal language modelling: predict tokens 1..T of each sequence from their prefixes.
"""
import jax
import jax.numpy as jnp

from model.transformer import Transformer

OBJECTIVES = {"decoder": "causal_lm"}


def build_model(cfg, rngs):
  return Transformer(cfg, rngs=rngs)


def cross_entropy(logits, targets):
  """Mean next-token loss in nats, computed in float32."""
  logits = logits.astype(jnp.float32)
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1)
                  - jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0])


def loss(model, batch, key):
  """Mean loss per target token of `batch` (int32 [B, seq_len + 1] sequences from data/).

  `key` is the step's own randomness (for families that corrupt their inputs), a pure function of
  (seed, step) so a resumed run draws the same noise.
  """
  del key  # causal language modelling uses no noise
  return cross_entropy(model(batch[:, :-1]), batch[:, 1:])
