"""Cosine against branches on one sweep plan: compute spent, wall time and the science, side by side.

  python benchmarks/branch_sweep.py [--config experiments/default_sweep.py] [--seeds 0,1]
      [--workdir DIR] [--json] [--config.key=value ...]

For each seed, trains the plan twice with `python sweep.py`: every run independently with a cosine
fitted to its own D (`train.schedule=cosine`, sizes from the shared ladder), and as a branch sweep
(`sweep.branches=True`, `train.schedule=wsd`: one constant-lr trunk per size, a 20% cooldown per
budget). Both plans have the same (N, D) points. Reports, per variant and seed: counted FLOPs spent
(DIR/cost.json), wall seconds, the best final eval loss per budget, the frontier exponent a of
Approaches 2 and 3 and tokens per parameter at each budget (Approach 3); and the noise yardstick:
per-point loss differences between the two variants against those between two seeds of one
variant. Reruns reuse what DIR already holds (the sweeps skip finished runs), so wall times are
only meaningful on a fresh DIR.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One seed per sweep (this benchmark loops over seeds itself), on the shared ladder either way.
VARIANTS = {"cosine": ["--config.train.schedule=cosine", "--config.sweep.branches=False",
                       "--config.sweep.ladder=True", "--config.sweep.seeds=()"],
            "branches": ["--config.train.schedule=wsd", "--config.sweep.branches=True",
                         "--config.sweep.seeds=()"]}


def run_sweep(config: str, sweep_dir: str, overrides: list[str]) -> float:
  """Trains one sweep in a fresh process; returns its wall seconds."""
  started = time.time()
  subprocess.run([sys.executable, "sweep.py", "--config", config, "--workdir", sweep_dir,
                  *overrides], cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
  return time.time() - started


def figures(sweep_dir: str) -> dict:
  """What one sweep spent and found: cost, losses per point and budget, exponents, D/N."""
  with open(os.path.join(sweep_dir, "cost.json")) as f:
    cost = json.load(f)
  with open(os.path.join(sweep_dir, "results.csv"), newline="") as f:
    results = [row for row in csv.DictReader(f) if row["status"] == "completed"]
  points = {(int(row["n_params"]), int(row["tokens"])): float(row["final_eval_loss"])
            for row in results}
  best = {}
  for row in results:
    budget = float(row["budget"])
    best[budget] = min(best.get(budget, float("inf")), float(row["final_eval_loss"]))
  fit = {}
  if os.path.exists(os.path.join(sweep_dir, "analysis", "fit.json")):
    with open(os.path.join(sweep_dir, "analysis", "fit.json")) as f:
      fit = json.load(f)
  frontier = {row["flops"]: row["tokens_per_param"] for row in fit.get("frontier", [])}
  return {"flops_spent": cost["flops_spent"], "flops_independent": cost["flops_independent"],
          "runs": len(results), "best_loss": {f"{b:.3g}": best[b] for b in sorted(best)},
          "a_approach2": fit.get("chinchilla_approach2", {}).get("a"),
          "a_approach3": fit.get("chinchilla_approach3", {}).get("a"),
          "tokens_per_param": {f"{b:.3g}": frontier.get(b) for b in sorted(best)},
          "points": points}


def differences(a: dict, b: dict) -> dict:
  """Per-point loss differences b - a over the points both have: mean, spread, largest."""
  shared = sorted(set(a) & set(b))
  diffs = [b[p] - a[p] for p in shared]
  if not diffs:
    return {"points": 0}
  return {"points": len(diffs), "mean": statistics.fmean(diffs),
          "rms": statistics.fmean(d * d for d in diffs) ** 0.5,
          "max_abs": max(abs(d) for d in diffs)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default=os.path.join(ROOT, "experiments", "default_sweep.py"))
  parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1")
  parser.add_argument("--workdir", help="where the sweeps go (default: a new temporary folder)")
  parser.add_argument("--json", action="store_true")
  args, overrides = parser.parse_known_args(argv)
  workdir = args.workdir or tempfile.mkdtemp(prefix="branch_sweep_")
  seeds = [int(seed) for seed in args.seeds.split(",")]
  out = {"config": args.config, "workdir": workdir, "overrides": overrides, "variants": {}}
  for seed in seeds:
    for name, variant in VARIANTS.items():
      sweep_dir = os.path.join(workdir, f"{name}_seed{seed}")
      wall = run_sweep(args.config, sweep_dir, [*overrides, *variant, f"--config.seed={seed}"])
      found = figures(sweep_dir)
      out["variants"][f"{name}_seed{seed}"] = {"wall_seconds": wall, **found}
      print(f"{name} seed {seed}: {wall:.0f} s, {found['flops_spent']:.3e} FLOPs, best losses "
            f"{found['best_loss']}, a = {found['a_approach2']} (approach 2), "
            f"{found['a_approach3']} (approach 3), D/N {found['tokens_per_param']}", flush=True)
  runs = out["variants"]
  out["branches_minus_cosine"] = {
      seed: differences(runs[f"cosine_seed{seed}"]["points"], runs[f"branches_seed{seed}"]["points"])
      for seed in seeds}
  if len(seeds) > 1:
    out["seed_noise"] = {name: differences(runs[f"{name}_seed{seeds[0]}"]["points"],
                                           runs[f"{name}_seed{seeds[1]}"]["points"])
                         for name in VARIANTS}
  for found in runs.values():
    found["points"] = {f"{n},{d}": loss for (n, d), loss in found.pop("points").items()}
  print(f"branches - cosine, per point: {out['branches_minus_cosine']}")
  if "seed_noise" in out:
    print(f"seed {seeds[1]} - seed {seeds[0]}, per point: {out['seed_noise']}")
  if args.json:
    print(json.dumps(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
