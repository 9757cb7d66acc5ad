"""A ~1B-parameter decoder by the sizing rule: 26 layers of width 1792 (1.0B non-embedding,
1.18B with a 50257-token vocabulary), 2048-token contexts, 4 sequences per device.

  python -m training.memory --config experiments/gpt_1b.py --vocab 50257 --backend gpu --device-memory-gb 60

As for experiments/gpt2_small.py, --vocab stands in for a GPT-2-sized tokenizer; to train, point
data.path at text and pick a tokenizer.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "gpt_1b"
  c.model.target_params = 1e9
  c.data.source = "text"
  c.data.tokenizer = "sentencepiece"
  c.data.vocab_size = 50257
  c.train.seq_len = 2048
  c.train.batch_size = 4
  c.train.tokens = 20_000_000_000  # ~20 tokens per parameter (Chinchilla)
  return c
