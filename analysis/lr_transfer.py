"""The lr-transfer study: `python -m analysis.lr_transfer --sweep DIR [--out OUT] [--json]`.

Reads an lr_transfer sweep (sweeps/kinds/lr_transfer.py): DIR/results.csv and each run's
config.json (its parametrization, d_model, n_layer and lr). Per (parametrization, width, depth)
the final eval loss against the lr (a run that diverged counts as worse than any), and its
optimum `lr_opt`: the vertex of the parabola in log lr through the lowest point and its two
neighbours, `lr_opt_interval` the neighbours' lrs (the grid's resolution; an optimum on the
grid's edge is that edge, with `at_edge` true and the interval open on that side, null). Writes
DIR/lr_transfer.json: `optima` (one entry each: parametrization, width, depth, lrs, losses,
lr_opt, lr_opt_interval, at_edge), `transfer` (per parametrization and line, width or depth:
the sizes, their lr_opt and `ratio`, the largest over the smallest), and lr_transfer.png, the
muTransfer figure: loss against lr, one curve per width (top row) and depth (bottom), one panel
per parametrization.
"""
import argparse
import csv
import json
import math
import os
import sys

import numpy as np

from analysis.runs import DataError
from core import files, rundir


def optimum(lrs, losses) -> dict:
  """lr_opt, lr_opt_interval and at_edge of one shape's (lr, loss) points; see the docstring."""
  order = np.argsort(lrs)
  grid = [float(lr) for lr in np.asarray(lrs, float)[order]]
  x, y = np.log(grid), np.asarray(losses, float)[order]
  y = np.where(np.isfinite(y), y, np.inf)
  i, last = int(np.argmin(y)), len(grid) - 1
  if i in (0, last) or not np.all(np.isfinite(y[i - 1:i + 2])):
    return {"lr_opt": grid[i], "lr_opt_interval": [grid[i - 1] if i > 0 else None,
                                                   grid[i + 1] if i < last else None],
            "at_edge": i in (0, last)}
  a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
  vertex = float(np.clip(-b / (2 * a), x[i - 1], x[i + 1])) if a > 0 else float(x[i])
  return {"lr_opt": float(np.exp(vertex)), "lr_opt_interval": [grid[i - 1], grid[i + 1]],
          "at_edge": False}


def load(sweep_dir: str) -> dict:
  """{(parametrization, width, depth): {lr: loss}} of a sweep's finished runs."""
  path = os.path.join(sweep_dir, "results.csv")
  if not os.path.isfile(path):
    raise DataError(f"{path} does not exist: give the directory of an lr_transfer sweep")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  points = {}
  for row in rows:
    try:
      config = rundir.read_config(os.path.join(sweep_dir, "runs", row["run_id"]))
    except (FileNotFoundError, KeyError):
      raise DataError(f"{path}: run {row.get('run_id')!r} has no run directory with a "
                      "config.json under runs/") from None
    loss = row.get("final_eval_loss") or ""
    loss = float(loss) if row.get("status") == "completed" and loss else math.inf
    key = (config.model.get("parametrization", "sp"), int(config.model.d_model),
           int(config.model.n_layer))
    points.setdefault(key, {})[float(config.train.lr)] = loss
  if not points:
    raise DataError(f"{path} has no runs")
  return points


def study(points: dict) -> dict:
  """The optima of every shape and, per parametrization, the lr_opt ratio along each line."""
  optima = []
  for (name, width, depth), by_lr in sorted(points.items()):
    lrs = sorted(by_lr)
    if len(lrs) < 3:
      continue
    losses = [by_lr[lr] for lr in lrs]
    optima.append({"parametrization": name, "width": width, "depth": depth, "lrs": lrs,
                   "losses": [loss if math.isfinite(loss) else None for loss in losses],
                   **optimum(lrs, losses)})
  transfer = {}
  for name in sorted({o["parametrization"] for o in optima}):
    mine = [o for o in optima if o["parametrization"] == name]
    depths = {o["depth"] for o in mine}
    widths = {o["width"] for o in mine}
    # The width line is the depth most widths share; the depth line the width most depths share.
    line_depth = max(depths, key=lambda d: sum(o["depth"] == d for o in mine))
    line_width = max(widths, key=lambda w: sum(o["width"] == w for o in mine))
    lines = {"width": [o for o in mine if o["depth"] == line_depth],
             "depth": [o for o in mine if o["width"] == line_width]}
    transfer[name] = {}
    for axis, line in lines.items():
      if len(line) < 2:
        continue
      opts = [o["lr_opt"] for o in line]
      transfer[name][axis] = {"sizes": [o[axis] for o in line], "lr_opt": opts,
                              "at": line_depth if axis == "width" else line_width,
                              "ratio": max(opts) / min(opts),
                              "any_at_edge": any(o["at_edge"] for o in line)}
  return {"optima": optima, "transfer": transfer}


def plot(result: dict, path: str) -> str | None:
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    names = sorted(result["transfer"])
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), squeeze=False)
    for column, name in enumerate(names):
      for row, axis in enumerate(("width", "depth")):
        ax, line = axes[row][column], result["transfer"][name].get(axis)
        ax.set(xscale="log", xlabel="peak lr", ylabel="final eval loss",
               title=f"{name}: {axis}" + (f" (ratio {line['ratio']:.2f})" if line else ""))
        for o in result["optima"]:
          if line and o["parametrization"] == name and o[axis] in line["sizes"] and (
              o["depth" if axis == "width" else "width"] == line["at"]):
            drawn = ax.plot(o["lrs"], [np.nan if v is None else v for v in o["losses"]],
                            marker="o", label=f"{axis} {o[axis]}")
            ax.axvline(o["lr_opt"], color=drawn[0].get_color(), lw=0.6, ls="--")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
  except Exception as error:  # pylint: disable=broad-except  (a figure is never fatal)
    print(f"warning: no lr-transfer figure ({type(error).__name__}: {error})", file=sys.stderr)
    return None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m analysis.lr_transfer",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--sweep", required=True, help="an lr_transfer sweep's directory")
  parser.add_argument("--out", default="", help="default: SWEEP/analysis")
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args = parser.parse_args(argv)
  try:
    result = study(load(args.sweep))
  except DataError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  out = args.out or os.path.join(args.sweep, "analysis")
  os.makedirs(out, exist_ok=True)
  result["figure"] = plot(result, os.path.join(out, "lr_transfer.png"))
  files.write_json_atomic(os.path.join(out, "lr_transfer.json"), result)
  for name, lines in result["transfer"].items():
    for axis, line in lines.items():
      other = "depth" if axis == "width" else "width"
      print(f"{name}: lr_opt over {axis} {line['sizes']} (at {other} {line['at']}): {', '.join(f'{lr:.2g}' for lr in line['lr_opt'])}; largest / "
            f"smallest {line['ratio']:.2f}" + (" (an optimum at the grid's edge)"
                                                if line["any_at_edge"] else ""))
  print(f"lr transfer: {os.path.join(out, 'lr_transfer.json')}")
  if args.json:
    print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
