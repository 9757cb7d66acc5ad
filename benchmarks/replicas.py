"""A group of K replicas (train.replicas=K, one process) against K sequential single runs, end to end.

  python benchmarks/replicas.py [--config experiments/default_sweep.py] [--target-params 3.1e3]
      [--tokens 204800] [--replicas 1,4,8] [--json]

Every run is a real `python train.py` process, timed from launch to exit (imports, tracing, the
compiled programs from the persistent cache, data, training, evaluations, checkpoints, files), as a
sweep pays for it. Replica i of a group has seed i, as single run i does, so their results must
agree: the largest difference in final train and eval loss is reported beside the speedup. Both
kinds of program are compiled once before timing, by runs of a twentieth of the budget (a run's
budget is an input of its programs, so they compile exactly what the timed runs use);
benchmarks/throughput.py --replicas times the step alone.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(workdir: str, args, cache_dir: str, *overrides) -> float:
  """Runs train.py to completion; returns its wall seconds."""
  command = [sys.executable, os.path.join(ROOT, "train.py"), "--config", args.config,
             "--workdir", workdir, f"--config.model.target_params={args.target_params}",
             f"--config.train.tokens={args.tokens}", "--config.wandb.mode=disabled",
             f"--config.train.compilation_cache={cache_dir}", *overrides]
  start = time.perf_counter()
  completed = subprocess.run(command, capture_output=True, text=True)
  if completed.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
  return time.perf_counter() - start


def result(workdir: str) -> dict:
  with open(os.path.join(workdir, "result.json")) as f:
    return json.load(f)


def benchmark(args) -> dict:
  group_sizes = sorted(set(args.replicas) - {1})
  loads = [os.getloadavg()[0]]
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "cache")
    warm = lambda name, *overrides: train(os.path.join(tmp, name), args, cache, *overrides,
                                          f"--config.train.tokens={args.batch_tokens}")
    warm("warm_single")
    for k in group_sizes:
      warm(f"warm_group_{k}", f"--config.train.replicas={k}")
    singles = [train(os.path.join(tmp, f"single_{i}"), args, cache, f"--config.seed={i}")
               for i in range(max(args.replicas))]
    loads.append(os.getloadavg()[0])
    first = result(os.path.join(tmp, "single_0"))
    tokens = first["tokens"]
    figures = {"n_params": first["n_params"], "tokens_per_run": tokens, "steps": first["steps"],
               "batch_size": first["batch_size"], "seq_len": first["seq_len"],
               "single_run_seconds": singles, "groups": {}}
    for k in group_sizes:
      workdir = os.path.join(tmp, f"group_{k}")
      seconds = train(workdir, args, cache, f"--config.train.replicas={k}")
      loads.append(os.getloadavg()[0])
      gaps = [abs(result(os.path.join(workdir, f"replica_{i}"))[key]
                  - result(os.path.join(tmp, f"single_{i}"))[key])
              for i in range(k) for key in ("final_train_loss", "final_eval_loss")]
      sequential = sum(singles[:k])
      figures["groups"][k] = {
          "group_seconds": seconds, "sequential_seconds": sequential,
          "group_tokens_per_sec": k * tokens / seconds,
          "sequential_tokens_per_sec": k * tokens / sequential,
          "speedup": sequential / seconds, "max_final_loss_difference": max(gaps)}
  figures["median_single_run_seconds"] = statistics.median(singles)
  figures["load_average"] = loads
  return figures


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=os.path.join(ROOT, "experiments", "default_sweep.py"))
  parser.add_argument("--target-params", type=float, default=3.1e3,
                      help="non-embedding N (the default sweep's smallest model)")
  parser.add_argument("--tokens", type=int, default=204_800, help="each run's token budget")
  parser.add_argument("--replicas", default="1,4,8", help="comma-separated group sizes")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  args.replicas = sorted({int(k) for k in args.replicas.split(",")} | {1})
  args.batch_tokens = args.tokens // 20  # the warm-up runs: a twentieth of the budget
  figures = benchmark(args)
  print(f"N = {figures['n_params']:,}, {figures['steps']} steps of {figures['batch_size']} x "
        f"{figures['seq_len']} tokens per run; one run {figures['median_single_run_seconds']:.1f} s "
        f"(median), load average {min(figures['load_average']):.1f}-"
        f"{max(figures['load_average']):.1f}")
  for k, group in figures["groups"].items():
    print(f"  {k} replicas: {group['group_seconds']:.1f} s for the group vs "
          f"{group['sequential_seconds']:.1f} s for {k} sequential runs: {group['speedup']:.2f}x "
          f"({group['group_tokens_per_sec']:,.0f} vs {group['sequential_tokens_per_sec']:,.0f} "
          f"tokens/s); final losses within {group['max_final_loss_difference']:.1e}")
  if args.json:
    print(json.dumps(figures))


if __name__ == "__main__":
  main()
