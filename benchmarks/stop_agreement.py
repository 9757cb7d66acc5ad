"""What a multi-process run's stop agreement costs: two jax.distributed processes training the tiny
preset with it (training/loop.py StepLoop._stopping: one all-gather of the stop flag per step)
against the same run with each process reading only its own flag, as the loop did before, side by
side.

  python benchmarks/stop_agreement.py [--steps 300] [--repeats 2] [--json]

Each run is two train.py processes joined over localhost (CPU devices, one per process), trained
from scratch into a fresh directory, the compiled programs shared through one persistent cache (a
warm-up run of each variant fills it first). Reported per variant: the median over the training
rows of the step rate (metrics.jsonl's tokens_per_sec over tokens per step: the step loop without
compilation, evaluations or checkpoints) and the median wall seconds of the runs. The variants
alternate, so a machine's changing load falls on both alike. The variant without the agreement is
what a signal would hang (tests/test_reliability.py); this benchmark sends none.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "experiments", "tiny.py")
TOKENS_PER_STEP = 16 * 64  # the tiny preset's batch of 16 sequences of 64 tokens
# A child: train.py's main, in the variant asked for (argv[1]: "agreed" or "own_flag").
CHILD = """import sys
sys.path.insert(0, {root!r})
from training.loop import StepLoop
if sys.argv[1] == "own_flag":
  StepLoop._stopping = lambda self: bool(self.stop_signal)
import train
sys.exit(train.main(sys.argv[2:]))
"""


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run_two(variant: str, workdir: str, steps: int, cache: str) -> float:
  """Trains the run with two processes; returns the wall seconds until both exited."""
  argv = ["--config", TINY, "--workdir", workdir, f"--config.train.tokens={steps * TOKENS_PER_STEP}",
          "--config.train.log_every=10", "--config.wandb.mode=disabled",
          f"--config.train.compilation_cache={cache}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_PROCESSES": "2",
         "JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}"}
  started = time.perf_counter()
  processes = [subprocess.Popen([sys.executable, "-c", CHILD.format(root=ROOT), variant, *argv],
                                cwd=ROOT, env={**env, "JAX_PROCESS_ID": str(i)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
  for process in processes:
    _, stderr = process.communicate()
    if process.returncode != 0:
      raise RuntimeError(f"{variant} run failed (exit {process.returncode}):\n{stderr[-2000:]}")
  return time.perf_counter() - started


def step_rates(workdir: str) -> list[float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [row["tokens_per_sec"] / TOKENS_PER_STEP for row in rows[1:]]  # the first: compiling


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--json", action="store_true", help="print one JSON line")
  args = parser.parse_args(argv)
  variants = ("agreed", "own_flag")
  rates, walls = {v: [] for v in variants}, {v: [] for v in variants}
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "cache")
    for variant in variants:  # fills the compilation cache
      run_two(variant, os.path.join(tmp, f"warm {variant}"), args.steps, cache)
    for repeat in range(args.repeats):
      for variant in variants:
        workdir = os.path.join(tmp, f"{variant} {repeat}")
        walls[variant].append(run_two(variant, workdir, args.steps, cache))
        rates[variant].extend(step_rates(workdir))
  report = {"steps": args.steps, "repeats": args.repeats, "load_1min": os.getloadavg()[0],
            **{f"{v}_steps_per_sec": statistics.median(rates[v]) for v in variants},
            **{f"{v}_wall_s": statistics.median(walls[v]) for v in variants}}
  report["agreed_over_own_flag"] = report["agreed_steps_per_sec"] / report["own_flag_steps_per_sec"]
  if args.json:
    print(json.dumps(report))
  else:
    for key, value in report.items():
      print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
