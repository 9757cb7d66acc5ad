"""The analysis report's opening block (analysis/report.py): the sweep's configuration and
provenance, or the table's source, and the analysis's own commit, machine and date."""
import csv
import os

from core import provenance


def provenance_block(fit: dict) -> list:
  """The report's opening: what the runs are and where they came from. For a sweep's results.csv,
  its configuration (the plan.csv beside it: budgets, sizes, seeds, lrs) and provenance (the
  provenance.json sweep.py writes: config, command, recipe, data source, commit, machine, date);
  for any other table, where it was read. Then when and with what commit this analysis ran.
  Paths are relative to the sweep directory (the results table's), so the report reads the same
  wherever the directory is copied."""
  from analysis.report import fmt  # pylint: disable=g-import-not-at-top (report imports this)
  sweep_dir = os.path.dirname(os.path.abspath(fit["source"]))
  sweep = provenance.read_sweep(sweep_dir) or {}
  plan_path = os.path.join(sweep_dir, "plan.csv")
  plan = []
  if os.path.exists(plan_path):
    with open(plan_path, newline="") as f:
      plan = [row for row in csv.DictReader(f) if row.get("kind") != "trunk"]
  distinct = lambda key: sorted({float(row[key]) for row in plan if row.get(key) not in ("", None)})
  listed = lambda values: ", ".join(fmt(v) for v in values) if values else "–"
  rows = []
  if sweep:
    kind = sweep["sweep"].get("kind", "–")
    rows += [["config", f"{sweep['config']} ({sweep['name']}, {kind})"],
             ["command", " ".join(sweep["command"])]]
  if plan:
    budgets, sizes, lrs = distinct("budget"), distinct("n_params"), distinct("lr")
    rows += [["runs planned", str(len(plan))],
             ["budgets C", f"{len(budgets)}: {listed(budgets)}" if budgets else "none (a grid)"],
             ["sizes N (non-embedding)", f"{len(sizes)}: {fmt(sizes[0])} .. {fmt(sizes[-1])}"],
             ["seeds", listed([int(v) for v in distinct("seed")])],
             ["peak lrs", listed(lrs) if not sweep or sweep["sweep"].get("lrs") or len(lrs) < 2
                          else f"the recipe's lr(N): {fmt(lrs[0])} .. {fmt(lrs[-1])}"]]
  if sweep:
    rows += [["recipe", sweep["recipe"]], ["data source", sweep["data"]],
             ["planned", f"{sweep['date']} on {sweep['host']} ({sweep['machine']})"],
             ["commit (planned)", sweep["commit"]]]
  now = provenance.record()
  rows += [["results", os.path.basename(fit["source"]) if sweep or plan else fit["source"]],
           ["analysed", f"{now['date']} on {now['host']} ({now['machine']})"],
           ["commit (analysed)", now["commit"]]]
  what = "Sweep" if sweep or plan else "Source"
  return [("h2", what), ("p", "Paths are relative to the sweep directory (the one holding the "
                              "results table)." if sweep or plan else
                              "A table no sweep of this project wrote (no plan.csv beside it)."),
          ("table", ["", ""], rows)]
