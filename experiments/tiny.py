"""A single tiny run on the synthetic source: trains in well under a minute on 2 CPU cores."""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "tiny"
  c.model.n_layer = 2
  c.model.d_model = 64
  c.model.n_heads = 4
  c.train.tokens = 262_144
  c.train.seq_len = 64
  c.train.batch_size = 16
  c.train.lr = 3e-3
  c.train.eval_tokens = 16_384
  return c
