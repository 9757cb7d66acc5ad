"""Training throughput and MFU of one model shape on the default device.

  python benchmarks/throughput.py --layers 4 --heads 4 --d-model 128 --context 256 --batch 16 --vocab 256

Times the real train step of train.py (same jit, shardings, optimizer) on random tokens: compile
time, then the median step time over several repeats. MFU = counted training FLOPs per token
(Chinchilla Appendix F, model/sizing.py) x tokens/s / the device peak (datasheet dense bf16 on GPUs,
a float32 matmul measured in this run on CPUs).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

import train
from experiments import base
from model import sizing


def benchmark(args) -> dict:
  config = base.get_config()
  config.model.update(n_layer=args.layers, n_heads=args.heads, d_model=args.d_model,
                      d_ff=args.d_ff, mlp=args.mlp, dtype=args.dtype, remat=args.remat)
  config.train.update(seq_len=args.context, batch_size=args.batch, lr=1e-4)
  model_cfg = sizing.model_config_from(config.model, vocab_size=args.vocab, seq_len=args.context)
  n_params, n_params_total = sizing.count_params(model_cfg)
  steps_per_repeat = args.steps
  plan = train.Plan(
      n_params=n_params, n_params_total=n_params_total,
      flops_per_token=sizing.flops_per_token(model_cfg, args.context), batch_size=args.batch,
      seq_len=args.context, steps=10**6, tokens=10**6 * args.batch * args.context, lr=1e-4,
      warmup_steps=10, eval_sequences=args.batch, eval_every=10**6, checkpoint_every=10**6)
  trainer = train.Trainer(config, model_cfg, plan, train.make_mesh(config))
  rng = np.random.default_rng(0)
  batch = jax.device_put(
      rng.integers(0, args.vocab, (args.batch, args.context + 1), dtype=np.int32),
      trainer.batch_sharding)
  state = trainer.init()
  start = time.perf_counter()
  state, metrics = trainer.train_step(state, batch)
  jax.block_until_ready(metrics)
  compile_seconds = time.perf_counter() - start
  step_times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    for _ in range(steps_per_repeat):
      state, metrics = trainer.train_step(state, batch)
    jax.block_until_ready(metrics)
    step_times.append((time.perf_counter() - start) / steps_per_repeat)
  step_seconds = statistics.median(step_times)
  tokens_per_sec = args.batch * args.context / step_seconds
  peak = train.peak_flops_per_second()
  achieved = tokens_per_sec * plan.flops_per_token
  return {
      "device": jax.devices()[0].device_kind, "n_devices": jax.device_count(),
      "layers": args.layers, "heads": args.heads, "d_model": args.d_model, "context": args.context,
      "batch": args.batch, "vocab": args.vocab, "dtype": model_cfg.dtype,
      "n_params": n_params, "n_params_total": n_params_total,
      "first_step_seconds": compile_seconds, "step_seconds": step_seconds,
      "step_seconds_all": step_times, "tokens_per_sec": tokens_per_sec,
      "flops_per_token": plan.flops_per_token, "achieved_flops_per_sec": achieved,
      "peak_flops_per_sec": peak, "mfu": achieved / peak,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--layers", type=int, required=True)
  parser.add_argument("--heads", type=int, required=True)
  parser.add_argument("--d-model", type=int, required=True)
  parser.add_argument("--context", type=int, required=True)
  parser.add_argument("--batch", type=int, required=True)
  parser.add_argument("--vocab", type=int, required=True)
  parser.add_argument("--d-ff", type=int, default=0, help="0: the default multiple of d_model")
  parser.add_argument("--mlp", default="gelu")
  parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
  parser.add_argument("--remat", action="store_true")
  parser.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  try:
    figures = benchmark(args)
  except base.ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  print(f"{figures['device']}: {figures['n_params']:,} non-embedding params, "
        f"batch {args.batch} x context {args.context}, {figures['dtype']}")
  print(f"  first step (compile) {figures['first_step_seconds']:.2f} s, "
        f"step {1e3 * figures['step_seconds']:.2f} ms (median of {args.repeats})")
  print(f"  {figures['tokens_per_sec']:,.0f} tokens/s, "
        f"{figures['achieved_flops_per_sec'] / 1e9:,.1f} GFLOP/s achieved, peak "
        f"{figures['peak_flops_per_sec'] / 1e9:,.1f} GFLOP/s, MFU {100 * figures['mfu']:.1f}%")
  if args.json:
    print(json.dumps(figures))


if __name__ == "__main__":
  main()
