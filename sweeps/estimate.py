"""`--dry-run`: a few real steps of the plan's extreme shapes, and each run's wall time from them."""
import math
import subprocess
import tempfile
import time

from core import rundir
from sweeps import branches, tables
from sweeps.processes import start_run

PROBE_STEPS = 8
PROBE_TIMEOUT_S = 300


def probe(config_path: str, row: dict) -> dict:
  """A few real train steps of one plan shape: steady FLOP/s and the fixed cost of a run
  (interpreter start, compilation, final evaluation and checkpoint)."""
  with tempfile.TemporaryDirectory(prefix="sweep_probe_", ignore_cleanup_errors=True) as workdir:
    tokens = PROBE_STEPS * (row.tokens // row.steps)
    overrides = list(row.overrides) + [
        f"--config.train.tokens={tokens}", "--config.train.log_every=1",
        f"--config.train.eval_every={PROBE_STEPS}", f"--config.train.checkpoint_every={PROBE_STEPS}",
        "--config.wandb.mode=disabled"]
    started = time.time()
    proc = start_run(config_path, workdir, overrides)
    try:
      returncode = proc.wait(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      raise RuntimeError(f"{PROBE_STEPS} steps of {row.run_id} take over {PROBE_TIMEOUT_S} s "
                         "here; run --dry-run on the machine the sweep is for") from None
    if returncode != 0:
      error = open(rundir.path(workdir, rundir.TRAIN_LOG), errors="replace").read().strip()
      last = error.splitlines()[-1] if error else f"exit {returncode}"
      if returncode == rundir.EXIT_BAD_INPUT:  # train.py's own refusal, before it compiled
        raise RuntimeError(f"{row.run_id} is refused here, not probed "
                           f"({last.removeprefix('error: ')}); run --dry-run on the machine "
                           "the sweep is for") from None
      raise RuntimeError(f"the probe of {row.run_id} failed: {last}")
    wall = time.time() - started
    metrics = rundir.read_metrics(workdir)
  steady = sorted(m["tokens_per_sec"] for m in metrics[2:]) or [metrics[-1]["tokens_per_sec"]]
  tokens_per_sec = steady[len(steady) // 2]
  flops_per_token = row.flops / row.tokens
  return {"run_id": row.run_id, "flops_per_token": flops_per_token,
          "tokens_per_sec": tokens_per_sec, "flops_per_sec": tokens_per_sec * flops_per_token,
          "overhead_s": max(0.0, wall - tokens / tokens_per_sec)}


def estimate_seconds(rows, probes, eval_tokens: int) -> list[float]:
  """Wall seconds of each row, interpolating the probes' FLOP/s and overhead in log FLOPs/token.

  A run evaluates about 10 times (train.py's default), each eval_tokens forward tokens (1/3 the
  cost of a training token)."""
  probes = sorted(probes, key=lambda p: p["flops_per_token"])
  first, last = probes[0], probes[-1]

  def interpolate(key, x):
    if last["flops_per_token"] == first["flops_per_token"]:
      return first[key]
    t = (math.log(x) - math.log(first["flops_per_token"])) / (
        math.log(last["flops_per_token"]) - math.log(first["flops_per_token"]))
    t = min(1.0, max(0.0, t))
    if key == "flops_per_sec":
      return math.exp((1 - t) * math.log(first[key]) + t * math.log(last[key]))
    return (1 - t) * first[key] + t * last[key]

  estimates = []
  for row in rows:
    flops_per_token = row.flops / row.tokens
    evals = min(10, row.steps)
    work = (row.flops * branches.trained_fraction(row)
            + evals * eval_tokens * flops_per_token / 3)
    estimates.append(interpolate("overhead_s", flops_per_token)
                     + work / interpolate("flops_per_sec", flops_per_token))
  return estimates


def dry_run(rows, config_path: str, config, workers: int) -> dict:
  """Probes the smallest and largest shapes and prints the plan with its estimated wall time."""
  # The largest shape first: train.py checks its memory planner estimate against this machine's
  # memory (limits.check_memory, with its margin) before compiling, and a shape refused there
  # ends the probing in one line before any other probe spends its minutes.
  by_cost = sorted(rows, key=lambda r: r.flops / r.tokens)
  shapes = [by_cost[-1]] + ([by_cost[0]] if len(by_cost) > 1 else [])
  print(f"probing throughput: {PROBE_STEPS} train steps of {len(shapes)} shape(s) ...", flush=True)
  total_flops = sum(r.flops for r in rows)
  total_6nd = sum(r.flops_6nd for r in rows)
  summary = {"runs": len(rows), "total_flops": total_flops, "total_flops_6nd": total_6nd}
  totals = f"{len(rows)} runs, {total_flops:.3e} FLOPs counted ({total_6nd:.3e} as 6ND)"
  try:
    probes = [probe(config_path, row) for row in shapes]
  except RuntimeError as error:
    tables.print_plan(rows)
    print(f"{totals}; no wall-time estimate: {error}")
    return {**summary, "estimated_seconds": None, "probe_error": str(error)}
  estimates = estimate_seconds(rows, probes, config.train.eval_tokens)
  tables.print_plan(rows, estimates)
  serial = sum(estimates)
  for p in probes:
    print(f"probe {p['run_id']}: {p['tokens_per_sec']:,.0f} tokens/s = "
          f"{p['flops_per_sec']:.3g} FLOP/s, {p['overhead_s']:.1f} s fixed cost per run")
  print(f"{totals}; estimated wall time {serial / 60:.1f} min on one worker"
        + (f", about {serial / workers / 60:.1f} min with {workers} if the machine has room for them"
           if workers > 1 else ""))
  return {**summary, "estimated_seconds": serial, "estimated_seconds_per_row": estimates,
          "workers": workers, "probes": probes}
