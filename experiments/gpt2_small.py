"""GPT-2 small's shape (124M parameters): the memory planner's reference point.

  python -m training.memory --config experiments/gpt2_small.py --vocab 50257

12 layers of width 768, 12 heads, 1024 positions, learned positions and tied embeddings as GPT-2
(Radford et al. 2019), so the parameter count is GPT-2's 124M less its biases; 8 sequences per
device. GPT-2's 50257-token BPE is not one of data/'s tokenizers: the memory planner takes the
vocabulary from --vocab; to train, point data.path at text and pick a tokenizer.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "gpt2_small"
  c.model.n_layer = 12
  c.model.d_model = 768
  c.model.n_heads = 12
  c.model.d_ff = 3072
  c.model.pos = "learned"
  c.model.tie_embeddings = True
  c.data.source = "text"
  c.data.tokenizer = "sentencepiece"
  c.data.vocab_size = 50257
  c.train.seq_len = 1024
  c.train.batch_size = 8
  c.train.tokens = 2_500_000_000  # ~20 tokens per parameter (Chinchilla)
  return c
