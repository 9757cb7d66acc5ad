"""The train step's speed under each parametrization (model/parametrization.py), side by side.

  python benchmarks/parametrization_speed.py [--layers 4 --heads 4 --d-model 128 --context 256
      --batch 16 --vocab 256] [--steps 10] [--repeats 5] [--json]

Builds training/steps.py's real Trainer for sp, mup and completep (base shape half the width and
depth, so every multiplier and per-group optimizer is live) and times the same batch, the
parametrizations interleaved in every repeat so they see the same machine load. Reports the
median seconds per step (wall and process CPU) and each one's ratio to sp; the load average is
recorded with them. The last line is one JSON object with --json.
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from core import defaults
from model import sizing
from model.parametrization import PARAMETRIZATIONS
from training import schedules
from training.plan import Plan
from training.sharding import make_mesh
from training.steps import Trainer


class Timed:
  """One parametrization's trainer, state and batch, compiled by one first step."""

  def __init__(self, args, name: str):
    config = defaults.get_config()
    config.model.update(n_layer=args.layers, n_heads=args.heads, d_model=args.d_model,
                        parametrization=name)
    if name != "sp":
      config.model.update(base_width=args.d_model // 2, base_depth=max(1, args.layers // 2))
    config.train.update(seq_len=args.context, batch_size=args.batch, lr=1e-3, b2=0.95,
                        warmup_tokens=args.batch * args.context)
    model_cfg = sizing.model_config_from(config.model, vocab_size=args.vocab, seq_len=args.context)
    n, n_total = sizing.count_params(model_cfg)
    steps = 10**6
    plan = Plan(n_params=n, n_params_total=n_total,
                flops_per_token=sizing.flops_per_token(model_cfg, args.context),
                batch_size=args.batch, seq_len=args.context, steps=steps,
                tokens=steps * args.batch * args.context, lr=1e-3, schedule=config.train.schedule,
                schedule_numbers=schedules.check(config.train).numbers(
                    config.train, steps, args.batch * args.context),
                eval_sequences=args.batch, eval_every=steps, checkpoint_every=steps)
    self.trainer = Trainer(config, model_cfg, plan, make_mesh(config))
    tokens = np.random.default_rng(0).integers(0, args.vocab, (args.batch, args.context + 1),
                                               np.int32)
    self.batch = jax.device_put(tokens, self.trainer.batch_sharding)
    self.state, metrics = self.trainer.train_step(self.trainer.init(), self.batch)
    jax.block_until_ready(metrics)

  def seconds_per_step(self, steps: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
      self.state, metrics = self.trainer.train_step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for flag, default in (("layers", 4), ("heads", 4), ("d-model", 128), ("context", 256),
                        ("batch", 16), ("vocab", 256), ("steps", 10), ("repeats", 5)):
    parser.add_argument(f"--{flag}", type=int, default=default)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  timed = {name: Timed(args, name) for name in PARAMETRIZATIONS}
  wall, cpu, loads = {n: [] for n in timed}, {n: [] for n in timed}, []
  for _ in range(args.repeats):
    loads.append(os.getloadavg()[0])
    for name, shape in timed.items():
      seconds, cpu_seconds = shape.seconds_per_step(args.steps)
      wall[name].append(seconds)
      cpu[name].append(cpu_seconds)
  rows = {name: {"step_seconds": statistics.median(wall[name]),
                 "cpu_seconds": statistics.median(cpu[name]),
                 "ratio_to_sp": statistics.median(wall[name]) / statistics.median(wall["sp"]),
                 "cpu_ratio_to_sp": statistics.median(cpu[name]) / statistics.median(cpu["sp"])}
          for name in timed}
  print(f"shape {args.layers} x {args.d_model} ({args.heads} heads), context {args.context}, batch "
        f"{args.batch}, vocab {args.vocab}; {jax.devices()[0].platform}, load average "
        f"{min(loads):.1f}-{max(loads):.1f}; median of {args.repeats} x {args.steps} steps")
  for name, row in rows.items():
    print(f"  {name:<10} {row['step_seconds'] * 1e3:8.1f} ms/step ({row['ratio_to_sp']:.3f} x sp)"
          f"  CPU {row['cpu_seconds'] * 1e3:8.1f} ms/step ({row['cpu_ratio_to_sp']:.3f} x sp)")
  if args.json:
    print(json.dumps({"shape": vars(args), "platform": jax.devices()[0].platform,
                      "load_average": loads, "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
