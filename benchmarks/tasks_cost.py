"""What eval.tasks adds to a run: the same run with the tasks on (the default) and off, end to end.

  python benchmarks/tasks_cost.py [--config experiments/tiny.py] [--repeats 3] [--json] [OVERRIDE ...]

Every run is a real `python train.py` process (imports, the compiled programs from a persistent
cache both kinds warmed first, data, training, evaluations, task scoring, files). The two kinds
alternate, so a machine's changing load falls on both; each is timed by its wall seconds and by
its CPU seconds (user + system of the child process), the steadier figure on a shared machine.
Extra arguments are passed to train.py (e.g. --config.eval.tasks.examples=32).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFF = "--config.eval.tasks.names="


def train(workdir: str, config: str, cache_dir: str, overrides) -> tuple[float, float]:
  """Runs train.py to completion; returns (wall seconds, CPU seconds)."""
  command = [sys.executable, os.path.join(ROOT, "train.py"), "--config", config, "--workdir",
             workdir, "--config.wandb.mode=disabled",
             f"--config.train.compilation_cache={cache_dir}", *overrides]
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  completed = subprocess.run(command, capture_output=True, text=True)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if completed.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
  return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=os.path.join(ROOT, "experiments", "tiny.py"))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json", action="store_true", help="print one JSON line")
  args, overrides = parser.parse_known_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "cache")
    runs = iter(range(10**6))
    fresh = lambda: os.path.join(tmp, f"run{next(runs)}")
    for kind in ([], [OFF]):  # compile both kinds' programs into the cache
      train(fresh(), args.config, cache, [*overrides, *kind])
    times = {"on": [], "off": []}
    for i in range(args.repeats):
      for name in (("on", "off") if i % 2 == 0 else ("off", "on")):
        times[name].append(train(fresh(), args.config, cache,
                                 [*overrides, *([OFF] if name == "off" else [])]))
    with open(os.path.join(tmp, "run2", "result.json")) as f:
      tasks = json.load(f).get("tasks", {})
  median = {name: [statistics.median(t[j] for t in runs) for j in (0, 1)]
            for name, runs in times.items()}
  record = {"config": os.path.relpath(args.config, ROOT), "overrides": overrides,
            "repeats": args.repeats, "tasks": sorted(tasks),
            "wall_on_s": median["on"][0], "wall_off_s": median["off"][0],
            "cpu_on_s": median["on"][1], "cpu_off_s": median["off"][1],
            "wall_extra": median["on"][0] / median["off"][0] - 1,
            "cpu_extra": median["on"][1] / median["off"][1] - 1,
            "runs": times, "load_average": os.getloadavg()}
  if args.json:
    print(json.dumps(record))
  else:
    print(f"{record['config']} {' '.join(overrides)}: tasks {', '.join(record['tasks'])}")
    print(f"  wall {record['wall_on_s']:.1f} s on vs {record['wall_off_s']:.1f} s off "
          f"({100 * record['wall_extra']:+.1f}%); CPU {record['cpu_on_s']:.1f} s vs "
          f"{record['cpu_off_s']:.1f} s ({100 * record['cpu_extra']:+.1f}%); "
          f"load average {record['load_average'][0]:.1f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
