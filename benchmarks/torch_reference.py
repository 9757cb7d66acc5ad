"""The same model and batch in plain PyTorch, as the CPU speed reference for benchmarks/throughput.py.

  pip install torch==2.13.0   # not a project dependency; any recent CPU build
  python benchmarks/torch_reference.py --layers 4 --heads 4 --d-model 128 --context 256 --batch 16 --vocab 256

The architecture mirrors model/transformer.py (pre-norm RMSNorm without biases, fused K/V,
GELU MLP of 4 d_model, rotary positions, untied output matrix) and the step mirrors train.py
(forward, float32 cross-entropy, backward, global-norm clipping, AdamW), so tokens/s compare like
for like. Prints the median step time of several repeats; `--json` prints one JSON object last.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F


def rope(x, positions):
  half = x.shape[-1] // 2
  freqs = 10_000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
  angles = positions[:, None].float() * freqs[None]
  cos, sin = angles.cos()[None, None], angles.sin()[None, None]
  x1, x2 = x[..., :half], x[..., half:]
  return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):

  def __init__(self, d_model, n_heads):
    super().__init__()
    self.n_heads = n_heads
    self.norm1, self.norm2 = nn.RMSNorm(d_model), nn.RMSNorm(d_model)
    self.query = nn.Linear(d_model, d_model, bias=False)
    self.key_value = nn.Linear(d_model, 2 * d_model, bias=False)
    self.out = nn.Linear(d_model, d_model, bias=False)
    self.up = nn.Linear(d_model, 4 * d_model, bias=False)
    self.down = nn.Linear(4 * d_model, d_model, bias=False)

  def forward(self, x, positions):
    batch, length, width = x.shape
    h = self.norm1(x)
    heads = lambda t: t.view(batch, length, self.n_heads, -1).transpose(1, 2)
    q = heads(self.query(h))
    k, v = (heads(t) for t in self.key_value(h).chunk(2, dim=-1))
    q, k = rope(q, positions), rope(k, positions)
    attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    x = x + self.out(attended.transpose(1, 2).reshape(batch, length, width))
    return x + self.down(F.gelu(self.up(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):

  def __init__(self, layers, heads, d_model, vocab):
    super().__init__()
    self.embed = nn.Embedding(vocab, d_model)
    self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
    self.norm = nn.RMSNorm(d_model)
    self.unembed = nn.Linear(d_model, vocab, bias=False)

  def forward(self, tokens):
    positions = torch.arange(tokens.shape[1])
    x = self.embed(tokens)
    for block in self.blocks:
      x = block(x, positions)
    return self.unembed(self.norm(x))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for name in ("layers", "heads", "d-model", "context", "batch", "vocab"):
    parser.add_argument(f"--{name}", type=int, required=True)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  model = GPT(args.layers, args.heads, args.d_model, args.vocab)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
  batch = torch.randint(0, args.vocab, (args.batch, args.context + 1))

  def step():
    logits = model(batch[:, :-1])
    loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), batch[:, 1:].reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()

  step()  # warm-up
  step_times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    for _ in range(args.steps):
      step()
    step_times.append((time.perf_counter() - start) / args.steps)
  step_seconds = statistics.median(step_times)
  figures = {"framework": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
             "layers": args.layers, "heads": args.heads, "d_model": args.d_model,
             "context": args.context, "batch": args.batch, "vocab": args.vocab,
             "step_seconds": step_seconds, "step_seconds_all": step_times,
             "tokens_per_sec": args.batch * args.context / step_seconds}
  print(f"torch {torch.__version__} ({figures['threads']} threads): step "
        f"{1e3 * step_seconds:.2f} ms (median of {args.repeats}), "
        f"{figures['tokens_per_sec']:,.0f} tokens/s")
  if args.json:
    print(json.dumps(figures))


if __name__ == "__main__":
  main()
