"""Training throughput and MFU of a model shape on the default device, with the checks of issue 6.

  python benchmarks/throughput.py                    # the issue's shapes for this device
  python benchmarks/throughput.py --layers 4 --heads 4 --d-model 128 --context 256 --batch 16 --vocab 256 \
      [--replicas 1,4,8] [--compile-cache] [--torch PYTHON] [--json]

Times the real train step of training/steps.py (same jit, shardings, donation, optimizer) on random tokens:
the first step (tracing and compilation), then the median step time over repeats. MFU = counted
training FLOPs per token (Chinchilla Appendix F, model/sizing.py) x tokens/s / the device's peak,
and `mfu_6n` the same with 6 N_total per token (PaLM's convention; training/mfu.py): the
datasheet dense bf16 figure on GPUs, and on CPUs the best float32 1024x1024 matmul measured
between the repeats, so that on a shared machine the peak is taken under the same load as the
steps (a figure above the machine's cached peak, which train.py's rows use, raises it).

- `--replicas 1,4,8`: a group of K models in one jitted step (train.replicas) against K sequential
  single runs, whose throughput is the single model's: speedup = group tokens/s / single tokens/s.
- `--lora-ranks 2,8`: the LoRA fine-tuning step at each rank (adapters on every matrix, the base
  frozen: no weight gradients, no optimizer state for it) against the full step, interleaved.
- `--compile-cache`: trains the shape in two fresh processes sharing an empty persistent cache and
  reports each one's time to its first step and XLA compile time (the second should hit the cache).
- `--torch PYTHON`: runs benchmarks/torch_reference.py (the same model, batch and optimizer in plain
  PyTorch) with that interpreter between the JAX repeats, so both see the same machine load.
Every figure is a median over repeats; the machine's load average is recorded with them. Like
`python train.py`, the benchmark runs with malloc on transparent huge pages
(training/hugepages.py; GLIBC_TUNABLES=glibc.malloc.hugetlb=0 measures without them).
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
from jax import monitoring

from core.config import ConfigError
from core import defaults
from model import sizing
from model.recipe import RECIPES
from training import hugepages, mfu, process, schedules
from training.plan import Plan
from training.sharding import make_mesh
from training.steps import Trainer

if __name__ == "__main__":
  hugepages.reexec_with_huge_pages()  # as `python train.py` runs

# (layers, heads, d_model, context, batch, vocab) the issue asks for.
CPU_SHAPES = ((4, 4, 128, 256, 16, 256), (6, 6, 384, 256, 8, 256))
GPU_SHAPES = ((12, 12, 768, 1024, 16, 50257), (8, 8, 320, 1024, 32, 50257))  # GPT-2 small; ~10M


def compile_events() -> dict:
  """Counts and seconds JAX reports about compilation and the persistent cache, from now on."""
  events = collections.Counter()
  monitoring.register_event_listener(lambda name, **kw: events.update([name]))
  monitoring.register_event_duration_secs_listener(
      lambda name, seconds, **kw: events.update({name: seconds}))
  return events


class Shape:
  """One model shape's trainer (training.steps.Trainer, with `replicas` models), state and batch."""

  def __init__(self, args, shape, replicas: int, lora_rank: int = 0):
    layers, heads, d_model, context, batch, vocab = shape
    config = defaults.get_config()
    if lora_rank:
      config.finetune.update(method="lora", lora_rank=lora_rank)
    config.model.update(n_layer=layers, n_heads=heads, d_model=d_model, d_ff=args.d_ff,
                        mlp=args.mlp, dtype=args.dtype, remat=args.remat)
    config.train.update(seq_len=context, batch_size=batch, lr=1e-4, b2=RECIPES["default"].b2,
                        warmup_tokens=10 * batch * context, replica_batch=args.replica_batch)
    self.config = config
    self.model_cfg = sizing.model_config_from(config.model, vocab_size=vocab, seq_len=context)
    n_params, n_params_total = sizing.count_params(self.model_cfg)
    self.plan = Plan(
        n_params=n_params, n_params_total=n_params_total,
        flops_per_token=sizing.flops_per_token(self.model_cfg, context), batch_size=batch,
        seq_len=context, steps=10**6, tokens=10**6 * batch * context, lr=1e-4,
        schedule=config.train.schedule,
        schedule_numbers=schedules.check(config.train).numbers(config.train, 10**6, batch * context),
        eval_sequences=batch, eval_every=10**6, checkpoint_every=10**6,
        replica_seeds=tuple(range(replicas)) if replicas > 1 else (),
        replica_lrs=(1e-4,) * replicas if replicas > 1 else ())
    self.trainer = Trainer(config, self.model_cfg, self.plan, make_mesh(config))
    leading = (replicas,) if replicas > 1 else ()
    tokens = np.random.default_rng(0).integers(0, vocab, leading + (batch, context + 1), np.int32)
    self.batch = jax.device_put(tokens, self.trainer.batch_sharding)
    self.replicas, self.tokens_per_step = replicas, replicas * batch * context
    start = time.perf_counter()
    self.state, metrics = self.trainer.train_step(self.trainer.init(), self.batch)
    jax.block_until_ready(metrics)
    self.first_step_seconds = time.perf_counter() - start

  def seconds_per_step(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      self.state, metrics = self.trainer.train_step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - start) / steps


def torch_step_seconds(python: str, shape, steps: int) -> float:
  layers, heads, d_model, context, batch, vocab = shape
  command = [python, os.path.join(ROOT, "benchmarks", "torch_reference.py"), "--layers",
             str(layers), "--heads", str(heads), "--d-model", str(d_model), "--context",
             str(context), "--batch", str(batch), "--vocab", str(vocab), "--steps", str(steps),
             "--repeats", "1", "--json"]
  out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])["step_seconds"]


def benchmark(args, shape, shapes=None) -> dict:
  """Throughput of `shape` for every replica count asked for (and PyTorch's), repeats interleaved.
  `shapes`: {replicas: Shape} already built (default: one per count of args.replicas)."""
  shapes = shapes or {k: Shape(args, shape, k) for k in args.replicas}
  adapted = {rank: Shape(args, shape, 1, rank) for rank in args.lora_ranks}
  times, peaks, torch_times, loads = collections.defaultdict(list), [], [], []
  for _ in range(args.repeats):
    loads.append(os.getloadavg()[0])
    for k, timed in shapes.items():
      times[k].append(timed.seconds_per_step(args.steps))
    for rank, timed in adapted.items():
      times[f"lora{rank}"].append(timed.seconds_per_step(args.steps))
    if jax.devices()[0].platform == "cpu":
      peaks.append(mfu.measure_matmul_peak())
    if args.torch:
      torch_times.append(torch_step_seconds(args.torch, shape, args.steps))
  peak = max(peaks) if peaks else mfu.peak_flops_per_second()
  if peaks:  # the machine's cached CPU peak (what train.py's rows use) never stays below this
    mfu.remember_higher_cpu_peak(peak)
  single = shapes[min(shapes)]
  result = {
      "device": jax.devices()[0].device_kind, "n_devices": jax.device_count(),
      "shape": dict(zip(("layers", "heads", "d_model", "context", "batch", "vocab"), shape)),
      "dtype": single.model_cfg.dtype, "n_params": single.plan.n_params,
      "n_params_total": single.plan.n_params_total,
      "flops_per_token": single.plan.flops_per_token, "peak_flops_per_sec": peak,
      "peak_flops_per_sec_all": peaks, "load_average": loads, "repeats": args.repeats,
      "steps_per_repeat": args.steps, "replicas": {}}
  for k, timed in shapes.items():
    step_seconds = statistics.median(times[k])
    tokens_per_sec = timed.tokens_per_step / step_seconds
    achieved = tokens_per_sec * timed.plan.flops_per_token
    result["replicas"][k] = {
        "first_step_seconds": timed.first_step_seconds, "step_seconds": step_seconds,
        "step_seconds_all": times[k], "tokens_per_sec": tokens_per_sec,
        "achieved_flops_per_sec": achieved, "mfu": achieved / peak,
        "mfu_6n": tokens_per_sec * 6 * timed.plan.n_params_total / peak}
  base_tps = result["replicas"][min(shapes)]["tokens_per_sec"]
  for k, figures in result["replicas"].items():
    # K sequential runs take K times one run's time for K times its tokens: its tokens/s.
    figures["speedup_vs_sequential"] = figures["tokens_per_sec"] / base_tps
  result["lora"] = {rank: {"step_seconds": statistics.median(times[f"lora{rank}"]),
                           "step_seconds_all": times[f"lora{rank}"],
                           "tokens_per_sec": timed.tokens_per_step
                           / statistics.median(times[f"lora{rank}"])} for rank, timed in adapted.items()}
  for figures in result["lora"].values():
    figures["vs_full"] = figures["tokens_per_sec"] / base_tps
  if torch_times:
    torch_seconds = statistics.median(torch_times)
    result["torch"] = {"step_seconds": torch_seconds, "step_seconds_all": torch_times,
                       "tokens_per_sec": shape[4] * shape[3] / torch_seconds}
    result["jax_over_torch"] = (result["replicas"][min(shapes)]["tokens_per_sec"]
                                / result["torch"]["tokens_per_sec"])
  return result


def compile_cache_check(args, shape) -> dict:
  """Two fresh processes, one empty persistent cache: each one's first step and compile time."""
  layers, heads, d_model, context, batch, vocab = shape
  with tempfile.TemporaryDirectory() as cache_dir:
    processes = []
    for _ in range(2):
      command = [sys.executable, os.path.abspath(__file__), "--layers", str(layers), "--heads",
                 str(heads), "--d-model", str(d_model), "--context", str(context), "--batch",
                 str(batch), "--vocab", str(vocab), "--d-ff", str(args.d_ff), "--mlp", args.mlp,
                 "--dtype", args.dtype, "--steps", "1", "--repeats", "1",
                 "--cache-dir", cache_dir, "--json"] + (["--remat"] if args.remat else [])
      out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
      processes.append(json.loads(out.strip().splitlines()[-1])["results"][0]["compile"])
  return {"first_process": processes[0], "second_process": processes[1]}


def report(result: dict) -> None:
  shape = result["shape"]
  print(f"{result['device']}: {result['n_params']:,} non-embedding params, {shape['layers']} layers, "
        f"d_model {shape['d_model']}, {shape['heads']} heads, batch {shape['batch']} x context "
        f"{shape['context']}, vocab {shape['vocab']}, {result['dtype']}; median of "
        f"{result['repeats']} x {result['steps_per_repeat']} steps, load average "
        f"{min(result['load_average']):.1f}-{max(result['load_average']):.1f}")
  print(f"  peak {result['peak_flops_per_sec'] / 1e9:,.1f} GFLOP/s")
  for k, figures in result["replicas"].items():
    label = "1 model " if k == 1 else f"{k} models"
    print(f"  {label}: first step {figures['first_step_seconds']:.2f} s, step "
          f"{1e3 * figures['step_seconds']:.1f} ms, {figures['tokens_per_sec']:,.0f} tokens/s, "
          f"{figures['achieved_flops_per_sec'] / 1e9:,.1f} GFLOP/s, MFU {100 * figures['mfu']:.1f}% "
          f"(6N: {100 * figures['mfu_6n']:.1f}%)"
          + (f", {figures['speedup_vs_sequential']:.2f}x {k} sequential runs" if k > 1 else ""))
  for rank, figures in result.get("lora", {}).items():
    print(f"  LoRA r{rank}: step {1e3 * figures['step_seconds']:.1f} ms, "
          f"{figures['tokens_per_sec']:,.0f} tokens/s, {figures['vs_full']:.2f}x the full step")
  if "torch" in result:
    print(f"  PyTorch: step {1e3 * result['torch']['step_seconds']:.1f} ms, "
          f"{result['torch']['tokens_per_sec']:,.0f} tokens/s; JAX / PyTorch "
          f"{result['jax_over_torch']:.2f}x")
  if "compile_cache" in result:
    first, second = result["compile_cache"]["first_process"], result["compile_cache"]["second_process"]
    print(f"  compile cache: first process {first['first_step_seconds']:.2f} s to its first step "
          f"(XLA compile {first['backend_compile_seconds']:.2f} s, {first['cache_misses']} misses), "
          f"second {second['first_step_seconds']:.2f} s (XLA compile "
          f"{second['backend_compile_seconds']:.2f} s, {second['cache_hits']} hits, "
          f"{second['cache_misses']} misses)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for name in ("layers", "heads", "d-model", "context", "batch", "vocab"):
    parser.add_argument(f"--{name}", type=int, help="all six, or none for the issue's shapes")
  parser.add_argument("--d-ff", type=int, default=0, help="0: the default multiple of d_model")
  parser.add_argument("--mlp", default="gelu")
  parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
  parser.add_argument("--remat", action="store_true")
  parser.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--replicas", default="1", help="comma-separated group sizes, e.g. 1,4,8")
  parser.add_argument("--replica-batch", type=int, default=0,
                      help="train.replica_batch: replicas vmapped together (0: train.py's default)")
  parser.add_argument("--lora-ranks", default="",
                      help="comma-separated LoRA ranks to time against the full step, e.g. 2,8")
  parser.add_argument("--compile-cache", action="store_true",
                      help="also time the first step of two fresh processes sharing one cache")
  parser.add_argument("--cache-dir", default="", help="persistent compilation cache to use")
  parser.add_argument("--torch", default="", metavar="PYTHON",
                      help="an interpreter with torch: time benchmarks/torch_reference.py too")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  given = [args.layers, args.heads, args.d_model, args.context, args.batch, args.vocab]
  if any(value is not None for value in given) and None in given:
    parser.error("give all of --layers --heads --d-model --context --batch --vocab, or none")
  try:
    args.replicas = sorted({int(k) for k in args.replicas.split(",")} | {1})
  except ValueError:
    parser.error(f"--replicas must be comma-separated integers, got {args.replicas!r}")
  try:
    args.lora_ranks = [int(r) for r in args.lora_ranks.split(",") if r.strip()]
  except ValueError:
    parser.error(f"--lora-ranks must be comma-separated integers, got {args.lora_ranks!r}")
  process.enable_compilation_cache(args.cache_dir)
  events = compile_events()
  shapes = [tuple(given)] if None not in given else (
      CPU_SHAPES if jax.devices()[0].platform == "cpu" else GPU_SHAPES)
  results = []
  for shape in shapes:
    try:
      events.clear()
      result = benchmark(args, shape)
    except ConfigError as error:
      print(f"error: {error}", file=sys.stderr)
      sys.exit(2)
    result["compile"] = {
        "first_step_seconds": result["replicas"][1]["first_step_seconds"],
        "backend_compile_seconds": events["/jax/core/compile/backend_compile_duration"],
        "trace_seconds": events["/jax/core/compile/jaxpr_trace_duration"],
        "lowering_seconds": events["/jax/core/compile/jaxpr_to_mlir_module_duration"],
        "cache_hits": events["/jax/compilation_cache/cache_hits"],
        "cache_misses": events["/jax/compilation_cache/cache_misses"]}
    if args.compile_cache:
      result["compile_cache"] = compile_cache_check(args, shape)
    report(result)
    results.append(result)
  if args.json:
    print(json.dumps({"results": results}))


if __name__ == "__main__":
  main()
