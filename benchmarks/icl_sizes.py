"""In-context learning task accuracy against model size: one train.py run per N at one budget.

  python benchmarks/icl_sizes.py [--config experiments/default_sweep.py] [--sizes 3e3,1e4,3e4,1e5]
      [--tokens 2e6] --out DIR [--json] [OVERRIDE ...]

Trains each size into DIR/n_SIZE (a completed run is reused, as train.py reuses it), then reads
each result.json's `tasks` (eval.tasks, data/tasks.py) and prints per N and task the accuracy,
the exact Bayes ceiling and the gold continuations' loss against its floor, and writes
DIR/icl_tasks.png: accuracy against N per shot count, each with its ceiling, and the few-shot gain
(the most shots' accuracy minus zero-shot) against N. Extra arguments go to train.py.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(workdir: str, args, size: float, overrides) -> dict:
  command = [sys.executable, os.path.join(ROOT, "train.py"), "--config", args.config,
             "--workdir", workdir, f"--config.model.target_params={size}",
             f"--config.train.tokens={args.tokens}", "--config.wandb.mode=disabled", *overrides]
  completed = subprocess.run(command, capture_output=True, text=True)
  if completed.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
  with open(os.path.join(workdir, "result.json")) as f:
    return json.load(f)


def plot(rows, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = sorted(rows[0]["tasks"], key=lambda name: rows[0]["tasks"][name]["shots"])
  n = [row["n_params"] for row in rows]
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  for i, name in enumerate(names):
    color = f"C{i}"
    left.plot(n, [row["tasks"][name]["accuracy"] for row in rows], "o-", color=color,
              label=f"{rows[0]['tasks'][name]['shots']}-shot")
    left.plot(n, [row["tasks"][name]["ceiling"] for row in rows], "--", color=color,
              label=f"{rows[0]['tasks'][name]['shots']}-shot ceiling (Bayes)")
  left.axhline(1 / rows[0]["tasks"][names[0]]["choices"], color="grey", lw=0.8, label="chance")
  left.set(xscale="log", xlabel="N (non-embedding parameters)", ylabel="accuracy",
           title="topic task accuracy")
  left.legend(fontsize=7)
  gain = [row["tasks"][names[-1]]["accuracy"] - row["tasks"][names[0]]["accuracy"] for row in rows]
  right.plot(n, gain, "o-")
  right.axhline(0, color="grey", lw=0.8)
  right.set(xscale="log", xlabel="N (non-embedding parameters)",
            ylabel=f"{names[-1]} minus {names[0]} accuracy", title="few-shot gain")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=os.path.join(ROOT, "experiments", "default_sweep.py"))
  parser.add_argument("--sizes", default="3e3,1e4,3e4,1e5")
  parser.add_argument("--tokens", type=float, default=2e6)
  parser.add_argument("--out", required=True)
  parser.add_argument("--json", action="store_true", help="print one JSON line")
  args, overrides = parser.parse_known_args(argv)
  os.makedirs(args.out, exist_ok=True)
  rows = []
  for size in (float(s) for s in args.sizes.split(",")):
    result = train(os.path.join(args.out, f"n_{size:g}"), args, size, overrides)
    rows.append({key: result.get(key) for key in ("n_params", "tokens", "final_eval_loss",
                                                  "loss_floor", "wall_seconds", "tasks")})
  plot(rows, os.path.join(args.out, "icl_tasks.png"))
  if args.json:
    print(json.dumps({"config": os.path.relpath(args.config, ROOT), "overrides": overrides,
                      "rows": rows}))
    return 0
  for row in rows:
    print(f"N {row['n_params']:>8,}  D {row['tokens']:,}  eval loss {row['final_eval_loss']:.3f} "
          f"(floor {row['loss_floor']:.3f})")
    for name, task in sorted(row["tasks"].items(), key=lambda item: item[1]["shots"]):
      print(f"  {name:<12} accuracy {task['accuracy']:.3f}  ceiling {task['ceiling']:.3f}  "
            f"gold loss {task['gold_loss']:.3f} (floor {task['gold_loss_floor']:.3f})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
