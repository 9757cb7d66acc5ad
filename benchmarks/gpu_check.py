"""One prepared GPU check, printing one JSON line: the figures a first session on a GPU should bring back.

  python benchmarks/gpu_check.py            # one H100: under 8 minutes
  python benchmarks/gpu_check.py --smoke    # tiny shapes, any machine (2 CPU cores: ~1-2 minutes)

It measures, in this order:
- mini_sweep: a two-budget IsoFLOP sweep (3 sizes per budget) end to end through `sweep.py`,
  analysis included, with WSD trunks and cooldown branches (`sweep.branches`; --smoke: a fitted
  cosine per run, fewer processes). First, in a subprocess, before this process takes the GPU
  (a run preallocates 75% of it);
- gpt2_small and model_10m: training tokens/s, MFU (counted FLOPs and 6N, training/mfu.py) and
  the attention implementation the compiled step really uses (a cuDNN flash attention custom
  call in the lowered step, or XLA's), GPT-2 small against the 50% MFU target;
- memory: the memory planner's estimate (training/memory.py) against the device's measured peak
  after the GPT-2 small steps (no such counter on a CPU: XLA's compiled figure stands in);
- replicas: K = 1, 4, 8 models of a small shape in one jitted step, tokens/s and speed-up.
A section that fails is reported under "errors" and the others still run.

A bare GPU machine has JAX, flax, optax and orbax (and with them numpy, scipy, absl-py, PyYAML);
with no network, bring these wheels of requirements.txt's other packages (`pip download -d
wheels ml-collections tqdm sentencepiece matplotlib` on a machine of the same Python and platform,
then `pip install --no-index --find-links wheels ml-collections tqdm sentencepiece matplotlib`):
ml-collections (configs), tqdm (the progress bar), sentencepiece (data/tokenizers.py) and
matplotlib (the sweep's analysis plots, with its dependencies contourpy, cycler, fonttools,
kiwisolver, pillow, pyparsing, python-dateutil, six, packaging). wandb, wandb-workspaces,
tensorflow-datasets, array-record and pytest are not needed: the check logs nothing to W&B.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

NEEDED = {"ml_collections": "ml-collections", "tqdm": "tqdm", "sentencepiece": "sentencepiece",
          "matplotlib": "matplotlib"}
MISSING = [wheel for module, wheel in NEEDED.items() if importlib.util.find_spec(module) is None]
if MISSING and __name__ == "__main__":
  print(f"error: missing packages {' '.join(MISSING)}; bring their wheels (see the docstring of "
        f"{os.path.relpath(__file__, ROOT)}) and pip install --no-index --find-links DIR them",
        file=sys.stderr)
  sys.exit(2)

# pylint: disable=wrong-import-position
import jax

from benchmarks import throughput
from model import attention
from training import hugepages, memory, process

MFU_TARGET = 0.5  # GPT-2 small on one H100
# (layers, heads, d_model, context, batch, vocab)
SHAPES = {"gpt2_small": (12, 12, 768, 1024, 16, 50257), "model_10m": (8, 8, 320, 1024, 32, 50257),
          "replicas": (4, 4, 256, 512, 16, 64)}
SMOKE_SHAPES = {"gpt2_small": (2, 2, 64, 128, 4, 256), "model_10m": (1, 2, 32, 128, 4, 256),
                "replicas": (1, 2, 32, 64, 4, 64)}
# The mini sweep: gpu_sweep.py's data and context at two budgets a GPU trains in about two minutes;
# smoke: the CPU default's source at micro shapes.
SWEEP = ("gpu_sweep.py", ["--config.sweep.budgets=(3e13, 1e14)", "--config.sweep.workers=2"])
SMOKE_SWEEP = ("default_sweep.py", [
    "--config.sweep.budgets=(7e9, 2e10)", "--config.train.seq_len=16",
    "--config.train.batch_size=64", "--config.train.eval_tokens=1024", "--config.sweep.seeds=()",
    "--config.sweep.branches=False", "--config.sweep.ladder=False",
    "--config.train.schedule=cosine"])


def bench_args(replicas, steps: int, repeats: int) -> argparse.Namespace:
  """benchmarks/throughput.py's options: default model options, these counts."""
  return argparse.Namespace(d_ff=0, mlp="gelu", dtype="auto", remat=False, replica_batch=0,
                            replicas=list(replicas), steps=steps, repeats=repeats, torch="",
                            lora_ranks=[])


def attention_used(shape) -> str:
  """The attention the compiled train step runs: cudnn (its flash attention custom call is in the
  lowered step), xla, or on CPUs the project's own (in blocks of queries when causal_blocks > 1)."""
  lowered = shape.trainer.train_step.lower(shape.trainer.abstract_state, shape.batch).as_text()
  if "__cudnn$fmha" in lowered:
    return "cudnn"
  if jax.default_backend() != "cpu":
    return "xla"
  blocks = attention.causal_blocks(shape.model_cfg.max_len)
  return f"cpu (heads leading, {blocks} causal blocks)" if blocks > 1 else "cpu (heads leading)"


def train_check(shape_tuple, steps: int, repeats: int):
  """Tokens/s, MFU and the attention implementation of one model shape; returns (figures, Shape)."""
  args = bench_args([1], steps, repeats)
  shape = throughput.Shape(args, shape_tuple, 1)
  result = throughput.benchmark(args, shape_tuple, {1: shape})
  figures = result["replicas"][1]
  return {"shape": result["shape"], "dtype": result["dtype"], "n_params": result["n_params"],
          "n_params_total": result["n_params_total"], "attention": attention_used(shape),
          "tokens_per_sec": figures["tokens_per_sec"], "mfu": figures["mfu"],
          "mfu_6n": figures["mfu_6n"], "step_seconds": figures["step_seconds"],
          "first_step_seconds": figures["first_step_seconds"],
          "peak_flops_per_sec": result["peak_flops_per_sec"]}, shape


def memory_check(shape) -> dict:
  """The planner's estimate for the shape's step against what the device measured (its peak)."""
  memory_plan = memory.plan(shape.config, 1, vocab_size=shape.model_cfg.vocab_size)
  precision, remat, estimate = memory.comparable_estimate(memory_plan)
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    measured, source = stats["peak_bytes_in_use"], "device peak_bytes_in_use"
  else:
    measured = memory.xla_memory(shape.config, shape.model_cfg, shape.plan)["total"]
    source = "XLA compiled step (no device memory counter)"
  return {"estimate_bytes": estimate, "precision": precision, "remat": remat,
          "measured_bytes": measured, "measured_by": source,
          "estimate_over_measured": estimate / measured}


def replicas_check(shape_tuple, steps: int, repeats: int) -> dict:
  result = throughput.benchmark(bench_args([1, 4, 8], steps, repeats), shape_tuple)
  return {"shape": result["shape"], "n_params": result["n_params"], **{
      str(k): {"tokens_per_sec": f["tokens_per_sec"], "mfu": f["mfu"], "mfu_6n": f["mfu_6n"],
               "speedup_vs_sequential": f["speedup_vs_sequential"]}
      for k, f in result["replicas"].items()}}


def mini_sweep(smoke: bool, workdir: str) -> dict:
  """`python sweep.py` on two budgets, 3 sizes each, into workdir; its --json summary's figures."""
  config, overrides = SMOKE_SWEEP if smoke else SWEEP
  branches = not smoke  # smoke: 6 processes, not 9
  command = [sys.executable, os.path.join(ROOT, "sweep.py"), "--config",
             os.path.join(ROOT, "experiments", config), "--workdir", workdir, "--json",
             "--config.sweep.sizes_per_budget=3", "--config.sweep.span=4.0",
             "--config.wandb.mode=disabled", *overrides]
  if branches:  # WSD trunks, a cooldown branch per budget (sweeps/branches.py)
    command += ["--config.sweep.branches=True", "--config.train.schedule=wsd"]
  started = time.time()
  done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
  lines = done.stdout.strip().splitlines()
  summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
  figures = {"schedule": "wsd branches" if branches else "cosine", "exit_code": done.returncode,
             "seconds": time.time() - started, "runs": summary.get("runs"),
             "completed": summary.get("completed"), "a": summary.get("a"), "b": summary.get("b"),
             "tokens_per_param": [p["tokens_per_param"] for p in summary.get("frontier", [])]}
  if done.returncode != 0:
    figures["stderr_tail"] = done.stderr.strip()[-800:]
  return figures


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--smoke", action="store_true", help="tiny shapes: the code paths, anywhere")
  parser.add_argument("--workdir", help="where the mini sweep and compiled programs go (default: a "
                                        "temporary directory)")
  args = parser.parse_args()
  started = time.time()
  workdir = args.workdir or tempfile.mkdtemp(prefix="gpu_check_")
  shapes, steps, repeats = (SMOKE_SHAPES, 2, 2) if args.smoke else (SHAPES, 10, 3)
  process.enable_compilation_cache(os.path.join(workdir, "compilation_cache"))
  report, errors = {"smoke": args.smoke, "workdir": workdir}, {}

  def section(name, run):
    section_started = time.time()
    try:
      report[name] = run()
    except Exception as error:  # pylint: disable=broad-except  (the other sections still run)
      errors[name] = f"{type(error).__name__}: {error}"[:800]
    print(f"{name}: {time.time() - section_started:.0f} s", file=sys.stderr, flush=True)

  section("mini_sweep", lambda: mini_sweep(args.smoke, os.path.join(workdir, "mini_sweep")))
  report["device"] = jax.devices()[0].device_kind
  report["backend"] = jax.default_backend()
  gpt2 = {}

  def gpt2_small():
    figures, gpt2["shape"] = train_check(shapes["gpt2_small"], steps, repeats)
    return {**figures, "mfu_target": MFU_TARGET, "meets_target": figures["mfu"] >= MFU_TARGET}

  section("gpt2_small", gpt2_small)
  section("memory", lambda: memory_check(gpt2["shape"]))  # right after: the peak is GPT-2's
  gpt2.clear()
  section("model_10m", lambda: train_check(shapes["model_10m"], steps, repeats)[0])
  section("replicas", lambda: replicas_check(shapes["replicas"], steps, repeats))
  report["errors"] = errors
  report["seconds"] = time.time() - started
  print(json.dumps(report))
  return 1 if errors else 0


if __name__ == "__main__":
  hugepages.reexec_with_huge_pages()  # as `python train.py` runs
  sys.exit(main())
