"""In-context learning task accuracy against model size: one train.py run per N at one budget,
or a sweep's results.csv.

  python benchmarks/icl_sizes.py [--config experiments/default_sweep.py] [--sizes 3e3,1e4,3e4,1e5]
      [--tokens 2e6] --out DIR [--json] [OVERRIDE ...]
  python benchmarks/icl_sizes.py --results SWEEP/results.csv --out DIR [--json]

Trains each size into DIR/n_SIZE (a completed run is reused, as train.py reuses it) and reads each
result.json's `tasks` (eval.tasks, data/tasks.py), or reads the `tasks.*` columns of a sweep's
completed runs (averaged over the seeds of each N and budget); prints per N (and budget) and task
the accuracy, the exact Bayes ceiling and the gold continuations' loss against its floor, and
writes DIR/icl_tasks.png: accuracy against N per shot count (a line per budget), each with its
ceiling, and the few-shot gain (the most shots' accuracy minus zero-shot) against N. Extra
arguments go to train.py.
"""
import argparse
import collections
import csv
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


def from_results(path: str) -> list[dict]:
  """The completed runs of a sweep's results.csv, averaged over seeds per (budget, N)."""
  groups = collections.defaultdict(list)
  with open(path, newline="") as f:
    for row in csv.DictReader(f):
      if row.get("status") == "completed" and row.get("tasks.topic_0shot.accuracy"):
        groups[(float(row["budget"] or 0), int(row["n_params"]))].append(row)
  out = []
  for (budget, n), rows in sorted(groups.items()):
    names = sorted({key.split(".")[1] for key in rows[0]  # the tasks with a ceiling (topic)
                    if key.startswith("tasks.") and key.endswith(".ceiling") and rows[0][key]})
    mean = lambda key: sum(float(row[key]) for row in rows) / len(rows)
    out.append({"budget": budget, "n_params": n, "tokens": int(mean("tokens")), "seeds": len(rows),
                "final_eval_loss": mean("final_eval_loss"), "loss_floor": mean("loss_floor"),
                "tasks": {name: {field: mean(f"tasks.{name}.{field}") for field in FIELDS}
                          for name in names}})
  return out


FIELDS = ("shots", "choices", "accuracy", "ceiling", "gold_loss", "gold_loss_floor")


def plot(rows, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = sorted(rows[0]["tasks"], key=lambda name: rows[0]["tasks"][name]["shots"])
  budgets = sorted({row.get("budget") or 0 for row in rows})
  fig, axes = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 3.6))
  for ax, name in zip(axes, names):
    for i, budget in enumerate(budgets):
      mine = [row for row in rows if (row.get("budget") or 0) == budget]
      n = [row["n_params"] for row in mine]
      label = f"C = {budget:.1e}" if budget else f"D = {mine[0]['tokens']:.2g}"
      ax.plot(n, [row["tasks"][name]["accuracy"] for row in mine], "o-", color=f"C{i}",
              label=label)
      if name == names[-1]:
        axes[-1].plot(n, [row["tasks"][names[-1]]["accuracy"] - row["tasks"][names[0]]["accuracy"]
                          for row in mine], "o-", color=f"C{i}", label=label)
    ceiling = sum(row["tasks"][name]["ceiling"] for row in rows) / len(rows)
    ax.axhline(ceiling, color="k", ls="--", lw=1, label=f"Bayes ceiling {ceiling:.3f}")
    ax.axhline(1 / rows[0]["tasks"][name]["choices"], color="grey", lw=0.8, label="chance")
    ax.set(xscale="log", xlabel="N (non-embedding parameters)", ylabel="accuracy",
           title=f"{name}", ylim=(0, 1.05))
    ax.legend(fontsize=6)
  axes[-1].axhline(0, color="grey", lw=0.8)
  axes[-1].set(xscale="log", xlabel="N (non-embedding parameters)",
               title=f"few-shot gain: {names[-1]} - {names[0]}")
  axes[-1].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=os.path.join(ROOT, "experiments", "default_sweep.py"))
  parser.add_argument("--sizes", default="3e3,1e4,3e4,1e5")
  parser.add_argument("--tokens", type=float, default=2e6)
  parser.add_argument("--results", default="", help="a sweep's results.csv: plot it, train nothing")
  parser.add_argument("--out", required=True)
  parser.add_argument("--json", action="store_true", help="print one JSON line")
  args, overrides = parser.parse_known_args(argv)
  os.makedirs(args.out, exist_ok=True)
  rows = from_results(args.results) if args.results else []
  for size in ([] if args.results else (float(s) for s in args.sizes.split(","))):
    result = train(os.path.join(args.out, f"n_{size:g}"), args, size, overrides)
    rows.append({key: result.get(key) for key in ("n_params", "tokens", "final_eval_loss",
                                                  "loss_floor", "wall_seconds", "tasks")})
  plot(rows, os.path.join(args.out, "icl_tasks.png"))
  if args.json:
    print(json.dumps({"config": os.path.relpath(args.config, ROOT), "overrides": overrides,
                      "rows": rows}))
    return 0
  for row in rows:
    budget = f"C {row['budget']:.2e}  " if row.get("budget") else ""
    print(f"{budget}N {row['n_params']:>8,}  D {row['tokens']:,}  eval loss {row['final_eval_loss']:.3f} "
          f"(floor {row['loss_floor']:.3f})")
    for name, task in sorted(row["tasks"].items(), key=lambda item: item[1]["shots"]):
      print(f"  {name:<12} accuracy {task['accuracy']:.3f}  ceiling {task['ceiling']:.3f}  "
            f"gold loss {task['gold_loss']:.3f} (floor {task['gold_loss_floor']:.3f})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
