"""What each model family is trained to predict: the model it builds and its loss on a batch.

The trainer (training/steps.py) trains every family through these two functions, so a family is added here (and in
model/transformer.py) without touching the trainer. Losses are means over target tokens, in nats,
so that laws fitted to different families are comparable. Each family reads the first seq_len
tokens of a batch row (the rows hold seq_len + 1), so train.tokens counts the same tokens for all.

  decoder          causal language modelling: predict tokens 1..T of each sequence from their
                   prefixes (T targets per sequence).
  encoder          masked language modelling (BERT): predict the round(0.15 T) chosen tokens from
                   the corrupted sequence, seen bidirectionally (model/corruption.py).
  encoder_decoder  span corruption (T5): the decoder predicts each sentinel and the span it stands
                   for, reading the corrupted sequence through cross-attention (n_noise + n_spans
                   targets per sequence; the sentinels are targets too, as in T5, since the decoder
                   must learn where a span ends).
"""
import jax.numpy as jnp
import optax

from model import corruption, lora
from model.transformer import Transformer


def build_model(cfg, rngs, lora_settings=None):
  """The family's Transformer; with LoRA settings, adapters on its targeted matrices, initialised
  after (and so without changing) the base weights."""
  model = Transformer(cfg, rngs=rngs)
  return model if lora_settings is None else lora.attach(model, lora_settings, rngs)


def cross_entropy(logits, targets, weights=None):
  """Mean loss per target in nats, computed in float32; weights (0 or 1) select the targets."""
  losses = optax.losses.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                                  targets)
  if weights is None:
    return jnp.mean(losses)
  return jnp.sum(losses * weights) / jnp.sum(weights)


def loss(model, batch, key):
  """Mean loss per target token of `batch` (int32 [B, seq_len + 1] sequences from data/).

  `key` is the step's own randomness (for families that corrupt their inputs), a pure function of
  (seed, step) so a resumed run draws the same noise.
  """
  family, vocab_size = model.cfg.family, model.cfg.vocab_size
  if family == "decoder":
    return cross_entropy(model(batch[:, :-1]), batch[:, 1:])
  tokens = batch[:, :-1]
  if family == "encoder":
    inputs, weights = corruption.mask_tokens(key, tokens, vocab_size)
    return cross_entropy(model(inputs), tokens, weights)
  encoder_tokens, targets = corruption.corrupt_spans(key, tokens, vocab_size)
  return cross_entropy(model(corruption.decoder_inputs(targets, vocab_size), encoder_tokens),
                       targets)
