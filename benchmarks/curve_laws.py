"""How well the curve laws predict runs they were not fitted on, on the project's own tiny runs.

  python benchmarks/curve_laws.py [--workdir DIR] [--json]

Trains (with train.py, experiments/tiny.py: 256 steps of 1,024 tokens, peak lr 3e-3, a metrics
row every 4 steps) one constant-lr run, WSD runs of several cooldown lengths and shapes and a
cosine run at one size, and a constant, a WSD and a cosine run at a second size; then runs
`python -m analysis.curves` on each experiment below and prints, per experiment, predicted run
and form, the held-out curve errors (relative, mean and max over the measured points after the
warmup) and the final-loss error, and a noise yardstick: how far each run's train_loss rows lie
from their own moving average (a 4-step mean of 16 x 64-token batches is noisy). Reruns reuse the runs DIR holds (train.py skips a completed
run), so only the first run's wall time includes training.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["--config.train.log_every=4", "--config.wandb.mode=disabled"]
SIZE_M = ["--config.model.d_model=96", "--config.model.n_layer=3"]


def wsd(fraction, shape):
  return ["--config.train.schedule=wsd", f"--config.train.cooldown_fraction={fraction}",
          f"--config.train.cooldown_shape={shape}"]


RUNS = {
    "s_constant": ["--config.train.schedule=constant"],
    "s_wsd20_sqrt": wsd(0.2, "1-sqrt"),
    "s_wsd20_linear": wsd(0.2, "linear"),
    "s_wsd20_cosine": wsd(0.2, "cosine"),
    "s_wsd50_sqrt": wsd(0.5, "1-sqrt"),
    "s_wsd10_sqrt": wsd(0.1, "1-sqrt"),
    "s_cosine": ["--config.train.schedule=cosine"],
    "m_constant": SIZE_M + ["--config.train.schedule=constant"],
    "m_wsd20_sqrt": SIZE_M + wsd(0.2, "1-sqrt"),
    "m_cosine": SIZE_M + ["--config.train.schedule=cosine"],
}
S_HELD_OUT = ["s_wsd20_linear", "s_wsd20_cosine", "s_wsd50_sqrt", "s_wsd10_sqrt", "s_cosine"]
# name -> (fitted runs, predicted runs, the loss fitted, forms): a trunk and one branch predict
# other cooldowns and the cosine; two sizes share one law (tissue_n: the only form for 2 sizes).
EXPERIMENTS = {
    "trunk+wsd20_sqrt": (["s_constant", "s_wsd20_sqrt"], S_HELD_OUT, "train_loss", None),
    "trunk+wsd20_sqrt, eval_loss": (["s_constant", "s_wsd20_sqrt"], S_HELD_OUT, "eval_loss", None),
    "wsd20_sqrt_alone": (["s_wsd20_sqrt"], S_HELD_OUT, "train_loss", None),
    "two_sizes": (["s_constant", "s_wsd20_sqrt", "m_constant", "m_wsd20_sqrt"],
                  ["s_cosine", "m_cosine", "s_wsd50_sqrt"], "train_loss", ["tissue_n"]),
}
SMOOTH = 9  # rows of the moving average the noise yardstick compares each row with


def noise(workdir: str) -> dict:
  """Per run: the mean relative distance of its train_loss rows after the warmup from their
  centred moving average (SMOOTH rows): the error of a perfect smooth law, roughly."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, ROOT)
  from core import rundir  # pylint: disable=g-import-not-at-top
  out = {}
  for name in RUNS:
    loss = np.array([r["train_loss"] for r in rundir.read_metrics(
        os.path.join(workdir, "runs", name)) if r["step"] > 28])
    smooth = np.convolve(np.pad(loss, SMOOTH // 2, mode="edge"), np.ones(SMOOTH) / SMOOTH, "valid")
    out[name] = float(np.mean(np.abs(loss - smooth) / smooth))
  return out


def train(workdir: str) -> float:
  started = time.time()
  for name, overrides in RUNS.items():
    run_dir = os.path.join(workdir, "runs", name)
    done = subprocess.run([sys.executable, "train.py", "--config", "experiments/tiny.py",
                           "--workdir", run_dir, *COMMON, *overrides], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
      sys.exit(f"train.py {name} failed ({done.returncode}): {done.stderr[-500:]}")
  return time.time() - started


def experiment(workdir: str, name: str, fit: list, predict: list, loss: str, forms) -> dict:
  out = os.path.join(workdir, "analysis", name.replace(", ", "_"))
  started = time.time()
  done = subprocess.run([sys.executable, "-m", "analysis.curves", "--runs",
                         os.path.join(workdir, "runs"), "--fit", *fit, "--predict", *predict,
                         "--out", out, "--loss", loss, *(["--forms", *forms] if forms else []),
                         "--json"], cwd=ROOT, capture_output=True, text=True)
  if done.returncode:
    sys.exit(f"analysis.curves {name} failed ({done.returncode}): {done.stderr[-500:]}")
  record = json.loads(done.stdout.strip().splitlines()[-1])
  rows = [{**p, "final_error": (abs(p["predicted_final_loss"] - p["measured_final_loss"])
                                / p["measured_final_loss"])} for p in record["predictions"]]
  return {"experiment": name, "fit": fit, "loss": loss, "best_form": record["best_form"],
          "held_out_error_mean": record["held_out_error_mean"], "predictions": rows,
          "fit_error_mean": {f: v["fit_error_mean"] for f, v in record["forms"].items()},
          "skipped": record["skipped"], "seconds": time.time() - started}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "curve_laws"))
  parser.add_argument("--json", action="store_true", help="print one JSON line last")
  args = parser.parse_args(argv)
  train_seconds = train(args.workdir)
  results = [experiment(args.workdir, name, *runs) for name, runs in EXPERIMENTS.items()]
  yardstick = noise(args.workdir)
  print("noise yardstick (train_loss rows against their moving average): " + ", ".join(
      f"{name} {100 * v:.2f}%" for name, v in yardstick.items()))
  for r in results:
    print(f"{r['experiment']} (fitted on {', '.join(r['fit'])}): best {r['best_form']}")
    for p in r["predictions"]:
      print(f"  {p['run']:16s} {p['form']:10s} curve error mean {100 * p['curve_error_mean']:.2f}% "
            f"max {100 * p['curve_error_max']:.2f}%, final {100 * p['final_error']:.2f}%")
  if args.json:
    print(json.dumps({"train_seconds": train_seconds, "experiments": results, "noise": yardstick,
                      "loadavg": [round(x, 2) for x in os.getloadavg()]}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
