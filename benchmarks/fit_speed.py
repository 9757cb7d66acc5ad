"""Speed of the law fitter and of the whole analysis command on the Chinchilla runs.

  python benchmarks/fit_speed.py --data svg_extracted_data.csv [--repeats 3] [--bootstrap 1000]
      [--scipy-starts 100] [--command-repeats 3] [--json]

On the 240 runs of Epoch AI's extraction of Chinchilla's Figure 4 (Besiroglu et al. 2024,
svg_extracted_data.csv from github.com/epoch-research/analyzing-chinchilla; 5 highest losses
dropped), measures:
- the Approach 3 fit from the 4,500-point Chinchilla grid (analysis/fitter.py: autodiff
  gradients, L-BFGS from the grid's `fitter.SCREENED_STARTS` starts of lowest objective), the
  same fit from every start of the grid, and that with the hand-written gradient the project
  used before (`hand_value_and_grad` below), so the hand gradient's worth is a measured figure;
- 1,000 bootstrap refits, each from the full-data optimum and the grid's best distinct minima;
- scipy's L-BFGS-B looping over the same grid start by start (a sample of `--scipy-starts` starts,
  scaled to the grid; same objective and gradient in numpy);
- the whole command, `python -m analysis --results DATA --drop-top-loss 5 --wandb-mode disabled`
  with its plots, first with an empty JAX compilation cache and then warm (its median).
Reports first calls (with XLA compilation) and medians of wall and CPU seconds; CPU seconds count
this process only (the command's: its children's), since wall time on a shared machine counts the
other processes too; the load average says how shared.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from analysis import bootstrap  # pylint: disable=wrong-import-position
from analysis import fitter  # pylint: disable=wrong-import-position
from analysis import forms  # pylint: disable=wrong-import-position
from analysis import lbfgs  # pylint: disable=wrong-import-position
from analysis import runs as runs_lib  # pylint: disable=wrong-import-position

TARGETS = {"command_s": 5.0, "speedup_over_scipy": 50.0}
DELTA = fitter.HUBER_DELTA


def hand_value_and_grad(x, weights, data):
  """The Approach 3 objective with its gradient written out (the form's loss, by hand): two
  exponentials and one logarithm per point and start."""
  (log_n, log_d), log_loss = data[0]
  a, b, e, alpha, beta = (x[:, i:i + 1] for i in range(5))
  n_term, d_term, e_term = jnp.exp(a - alpha * log_n), jnp.exp(b - beta * log_d), jnp.exp(e)
  total = n_term + d_term + e_term
  r = jnp.log(total) - log_loss
  huber = jnp.where(jnp.abs(r) <= DELTA, 0.5 * r * r, DELTA * (jnp.abs(r) - 0.5 * DELTA))
  slope = weights * jnp.clip(r, -DELTA, DELTA) / (DELTA * total)
  grad = jnp.stack([
      jnp.sum(slope * n_term, -1), jnp.sum(slope * d_term, -1), jnp.sum(slope, -1) * e_term[:, 0],
      -jnp.sum(slope * n_term * log_n, -1), -jnp.sum(slope * d_term * log_d, -1)], -1)
  return jnp.sum(weights * huber, -1) / DELTA, grad


def hand_fit(runs):
  """The grid fit with the hand gradient, on the same centred, padded data as fitter.minimize."""
  form = forms.get(forms.PRIMARY)
  logs = (np.log(runs.n), np.log(runs.d))
  centre = np.array([v.mean() for v in logs])
  starts = form.shift(fitter.starts_of(form, (runs.n, runs.d)), centre)
  points, weights = lbfgs.pad_points(tuple(v - c for v, c in zip(logs, centre))
                                     + (np.log(runs.loss),), np.ones((len(starts), len(runs))))
  with jax.enable_x64(True):
    data = ((tuple(jnp.asarray(v) for v in points[:2]), jnp.asarray(points[2])), None)
    minima = lbfgs.minimize(hand_value_and_grad, starts, weights, data)
  return float(np.min(minima.f))


def scipy_grid(runs, n_starts: int) -> dict:
  """scipy.optimize's L-BFGS-B from every (n_starts-th sample of the) grid start, one at a time."""
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  form = forms.get(forms.PRIMARY)
  log_n, log_d, log_loss = np.log(runs.n), np.log(runs.d), np.log(runs.loss)
  centre = np.array([log_n.mean(), log_d.mean()])
  log_n, log_d = log_n - centre[0], log_d - centre[1]
  grid = form.shift(fitter.starts_of(form, (runs.n, runs.d)), centre)
  sample = grid[np.linspace(0, len(grid) - 1, n_starts).astype(int)]

  def value_and_grad(x):
    a, b, e, alpha, beta = x
    n_term, d_term, e_term = np.exp(a - alpha * log_n), np.exp(b - beta * log_d), np.exp(e)
    total = n_term + d_term + e_term
    r = np.log(total) - log_loss
    huber = np.where(np.abs(r) <= DELTA, 0.5 * r * r, DELTA * (np.abs(r) - 0.5 * DELTA))
    slope = np.clip(r, -DELTA, DELTA) / (DELTA * total)
    return np.sum(huber) / DELTA, np.array([
        np.sum(slope * n_term), np.sum(slope * d_term), np.sum(slope) * e_term,
        -np.sum(slope * n_term * log_n), -np.sum(slope * d_term * log_d)])

  wall, cpu = time.perf_counter(), time.process_time()
  best = np.inf
  with np.errstate(all="ignore"):
    for start in sample:
      result = optimize.minimize(value_and_grad, start, jac=True, method="L-BFGS-B")
      if np.isfinite(result.fun):
        best = min(best, result.fun)
  wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  scale = len(grid) / n_starts
  return {"starts_timed": n_starts, "grid_estimate_s": wall * scale,
          "grid_estimate_cpu_s": cpu * scale, "best_objective_of_sample": float(best)}


def timed(fn):
  """(result, wall seconds, CPU seconds of this process) of fn()."""
  wall, cpu = time.perf_counter(), time.process_time()
  result = fn()
  return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(fn, repeats: int) -> dict:
  result, first_wall, _ = timed(fn)
  runs = [timed(fn)[1:] for _ in range(repeats)]
  return {"first_call_s": first_wall, "median_s": statistics.median(w for w, _ in runs),
          "median_cpu_s": statistics.median(c for _, c in runs), "result": result}


def command(data: str, repeats: int) -> dict:
  """The whole `python -m analysis` command: a cold compilation cache, then warm runs."""
  home = tempfile.mkdtemp(prefix="fit_speed_")
  env = {**os.environ, "HOME": home, "MPLBACKEND": "Agg"}  # the cache lives under ~/.cache
  argv = [sys.executable, "-m", "analysis", "--results", data, "--drop-top-loss", "5",
          "--out", os.path.join(home, "out"), "--wandb-mode", "disabled", "--quiet"]

  def once():
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.perf_counter() - wall,
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
  try:
    cold = once()
    warm = [once() for _ in range(repeats)]
  finally:
    shutil.rmtree(home, ignore_errors=True)
  return {"cold_s": cold[0], "cold_cpu_s": cold[1],
          "warm_median_s": statistics.median(w for w, _ in warm),
          "warm_median_cpu_s": statistics.median(c for _, c in warm)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="svg_extracted_data.csv (Epoch AI)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--bootstrap", type=int, default=1000)
  parser.add_argument("--scipy-starts", type=int, default=100)
  parser.add_argument("--command-repeats", type=int, default=3, help="0: skip the command")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  if not os.path.exists(args.data):
    print(f"error: {args.data} does not exist", file=sys.stderr)
    return 2
  load = os.getloadavg()[0]
  runs = runs_lib.load(args.data, drop_top_loss=5)
  form = forms.get(forms.PRIMARY)
  grid = measure(lambda: fitter.fit(form, (runs.n, runs.d), runs.loss), args.repeats)
  fit = grid.pop("result")
  screened, fitter.SCREENED_STARTS = fitter.SCREENED_STARTS, None
  every = measure(lambda: fitter.fit(form, (runs.n, runs.d), runs.loss), args.repeats)
  fitter.SCREENED_STARTS = screened
  every_objective = every.pop("result").objective
  hand = measure(lambda: hand_fit(runs), args.repeats)
  hand_objective = hand.pop("result")
  counts = bootstrap.resample_counts(len(runs), args.bootstrap)
  refits = measure(lambda: fitter.refit_samples(form, (runs.n, runs.d), runs.loss, fit, counts),
                   args.repeats)
  samples = refits.pop("result")
  scipy = scipy_grid(runs, args.scipy_starts)
  summary = {
      "machine": f"{os.cpu_count()} CPUs, load average {load:.1f} at the start, "
                 f"{os.getloadavg()[0]:.1f} after the fits",
      "n_points": len(runs), "n_starts": fit.n_starts, "repeats": args.repeats,
      "grid_autodiff": {**grid, "starts_run": fit.n_starts_run},
      "grid_every_start": {**every, "objective": every_objective}, "grid_hand_gradient": {**hand, "objective": hand_objective},
      "bootstrap": {**refits, "refits": args.bootstrap, "starts_per_refit": len(fit.alternates),
                    "converged": int(np.isfinite(samples["E"]).sum())},
      "scipy_grid": scipy,
      "speedup_over_scipy": scipy["grid_estimate_cpu_s"] / grid["median_cpu_s"],
      "speedup_over_scipy_every_start": scipy["grid_estimate_cpu_s"] / every["median_cpu_s"],
      "fit": {k: fit.params[k] for k in form.params} | {"objective": fit.objective,
                                                        "converged": fit.converged},
      "targets": TARGETS}
  if args.command_repeats:
    summary["command"] = command(args.data, args.command_repeats)
  summary["load_after"] = os.getloadavg()[0]
  print(f"machine: {summary['machine']}; {len(runs)} runs")
  for name, label in (("grid_autodiff", f"best {fit.n_starts_run} starts, autodiff gradient"),
                      ("grid_every_start", "every start, autodiff gradient"),
                      ("grid_hand_gradient", "every start, hand gradient")):
    m = summary[name]
    print(f"grid ({fit.n_starts} starts), {label}: first call {m['first_call_s']:.2f} s, "
          f"median {m['median_s']:.2f} s wall, {m['median_cpu_s']:.2f} s CPU")
  print(f"{args.bootstrap} bootstrap refits ({len(fit.alternates)} starts each): first call "
        f"{refits['first_call_s']:.2f} s, median {refits['median_s']:.2f} s wall, "
        f"{refits['median_cpu_s']:.2f} s CPU; {summary['bootstrap']['converged']} converged")
  print(f"scipy L-BFGS-B start by start: {scipy['grid_estimate_s']:.1f} s wall, "
        f"{scipy['grid_estimate_cpu_s']:.1f} s CPU for the grid (from {args.scipy_starts} "
        f"starts); the batched fit is {summary['speedup_over_scipy']:.0f}x faster in CPU seconds "
        f"({summary['speedup_over_scipy_every_start']:.0f}x from every start) "
        f"(target {TARGETS['speedup_over_scipy']:.0f}x)")
  if "command" in summary:
    c = summary["command"]
    print(f"python -m analysis (240 runs, plots): cold cache {c['cold_s']:.2f} s wall, "
          f"{c['cold_cpu_s']:.2f} s CPU; warm median {c['warm_median_s']:.2f} s wall, "
          f"{c['warm_median_cpu_s']:.2f} s CPU (target {TARGETS['command_s']:.0f} s)")
  print("fit: " + ", ".join(f"{k} = {v:.4g}" for k, v in summary["fit"].items()))
  if args.json:
    print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
