"""Weights & Biases: an analysis run with the fit and frontier tables and the figures, and a Report.

The analysis run (job type `analysis`, in the sweep's group) is offline by default, written under
OUT/wandb/ (sync it later with `wandb sync`); W&B never stops the analysis (a failure is one
warning line). The Report is built with wandb-workspaces from a small JSON spec of its blocks:
loss against FLOPs of the training runs grouped by N, one IsoFLOP panel per budget, and the
analysis run's figures. Saving a Report needs the W&B server, so the spec is always written to
OUT/wandb_report.json with the command that publishes it (`python -m analysis.wandb_report
OUT/wandb_report.json`), and it is saved at once when the mode is online.

The Report reads what train.py logs (training/wandb_run.py): history `flops`, `train_loss`,
`eval_loss`; the flat config keys `N` (non-embedding), `budget` (the sweep's IsoFLOP budget) and
`C` (counted FLOPs); summary `final_eval_loss`; and selects runs by job type and by the sweep's
group. Flat keys, because W&B stores a nested config key a.b as a.value.b, which a filter
Config('a.b') does not reach (wandb-workspaces inserts the `.value` into group-by keys and panel
axes, not into filters). An IsoFLOP panel selects the runs whose planned budget (or, for a table without one, whose C) lies
within BUDGET_WINDOW of the budget.
"""
import argparse
import json
import math
import os
import shlex
import sys

from analysis import summary
from core import files, rundir
from core.config import one_line

BUDGET_WINDOW = 0.1
N_KEY = "N"
FIGURE_KEYS = ("frontier", "isoflop", "contours", "loss_vs_flops", "kaplan_loss_vs_n",
               "extrapolation")


def _fit_table_rows(fit: dict) -> list:
  rows = []
  sections = ["chinchilla_approach3", "chinchilla_approach2", "chinchilla_approach1"] + [
      law["section"] for law in summary.laws_of(fit) if law["section"] != "chinchilla_approach3"]
  for approach in dict.fromkeys(sections):  # every approach and every law form
    section = fit.get(approach) or {}
    for name, value in section.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = ((section.get("ci95") or {}).get(name) or (None, None))
        rows.append([approach, name, value, low, high])
  return rows


def _frontier_table_rows(fit: dict) -> list:
  rows = []
  for row in fit["frontier"]:
    rows.append([row["flops"], "approach3", row["n_opt"], row["d_opt"], row["tokens_per_param"]])
    names = (["approach2", "approach1"] + [law["name"] for law in summary.laws_of(fit)]
             + ["rule_20x"])
    for name in dict.fromkeys(names):
      if name == "approach3":
        continue
      if name in row:
        point = row[name]
        rows.append([row["flops"], name, point["n_opt"], point["d_opt"],
                     point["tokens_per_param"]])
  return rows


def sweep_group(results_csv: str | None) -> str | None:
  """The W&B group of the runs beside a sweep's table (DIR/runs/*/config.json, `wandb.group`:
  the sweep's name) when they share one; None for a table from elsewhere."""
  runs_dir = os.path.join(os.path.dirname(os.path.abspath(results_csv or ".")), "runs")
  if not results_csv or not os.path.isdir(runs_dir):
    return None
  groups = set()
  for name in os.listdir(runs_dir):
    try:
      config = rundir.read_config(os.path.join(runs_dir, name))
    except FileNotFoundError:
      continue
    groups.add((config.get("wandb") or {}).get("group") or "")
  return (groups.pop() or None) if len(groups) == 1 else None


def log_run(fit: dict, out: str, mode: str, project: str, entity=None, group=None) -> str:
  """Logs the analysis run (under $WANDB_DIR when set, else OUT); returns its URL (online) or its
  directory (offline)."""
  import wandb  # pylint: disable=g-import-not-at-top  (slow import, only when logging)
  if mode == "online" and not wandb.login(prompt=False, verify=False):
    raise RuntimeError("--wandb-mode online without a W&B login: run `wandb login` or set "
                       "WANDB_API_KEY")
  run = wandb.init(project=project, entity=entity, mode=mode,
                   dir=os.environ.get("WANDB_DIR") or out, job_type="analysis",
                   group=group, reinit="create_new",
                   name="analysis", config={"source": fit["source"], "columns": fit["columns"],
                                            "n_points": fit["n_points"],
                                            "bootstrap": fit["bootstrap"]},
                   settings=wandb.Settings(silent=True, x_disable_stats=True))
  run.log({
      "fit": wandb.Table(columns=["approach", "parameter", "value", "ci_low", "ci_high"],
                         data=_fit_table_rows(fit)),
      "frontier_table": wandb.Table(
          columns=["flops", "approach", "n_opt", "d_opt", "tokens_per_param"],
          data=_frontier_table_rows(fit)),
      **{name: wandb.Image(os.path.join(out, file)) for name, file in fit["plots"].items()}})
  a3 = fit["chinchilla_approach3"]
  run.summary.update({f"approach3/{k}": a3[k] for k in ("E", "A", "B", "alpha", "beta", "a", "b")})
  run.summary.update({f"frontier/tokens_per_param@{row['flops']:.0e}": row["tokens_per_param"]
                      for row in fit["frontier"]})
  where = run.url if mode == "online" else os.path.dirname(run.dir)
  run.finish()
  return where


def _number(value, spec: str) -> str:
  """A number for the report's text; a degenerate fit (β -> 0 gives no frontier) shows as n/a."""
  return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def report_spec(fit: dict, project: str, entity=None, group=None) -> dict:
  """The W&B Report as plain JSON: title, description and blocks (see `build`); with `group`,
  its panels show that sweep's runs only."""
  a3 = {key: _number(value, ".4g") for key, value in fit["chinchilla_approach3"].items()
        if not isinstance(value, dict)}
  tokens = "; ".join(f"{_number(row['tokens_per_param'], '.1f')} tokens/param at "
                     f"{row['flops']:.0e}" for row in fit["frontier"][:3])
  in_group = f" and Metric('Group') == {group!r}" if group else ""
  training = f"Metric('JobType') == 'train'{in_group}"
  analysis = f"Metric('JobType') == 'analysis'{in_group}"
  # The analysis groups runs by the table's planned budgets when it has them, else by C.
  budget_key = "budget" if "budget" in (fit.get("columns") or {}) else "C"
  blocks = [
      {"type": "h1", "text": "Scaling laws"},
      {"type": "p", "text": f"{fit['n_points']} runs. Approach 3: L = {a3['E']} + "
                            f"{a3['A']}/N^{a3['alpha']} + {a3['B']}/D^{a3['beta']}; "
                            f"N_opt ∝ C^{a3['a']}, D_opt ∝ C^{a3['b']}; {tokens}."},
      {"type": "h2", "text": "Training loss against FLOPs, grouped by N"},
      {"type": "panel_grid", "filters": training, "groupby": [f"config.{N_KEY}"], "panels": [
          {"type": "line", "title": "train loss vs FLOPs", "x": "flops", "y": ["train_loss"],
           "log_x": True, "log_y": True},
          {"type": "line", "title": "eval loss vs FLOPs", "x": "flops", "y": ["eval_loss"],
           "log_x": True, "log_y": True}]},
      {"type": "h2", "text": "IsoFLOP profiles"}]
  for budget in (fit.get("chinchilla_approach2") or {}).get("budgets", []):
    low, high = budget * (1 - BUDGET_WINDOW), budget * (1 + BUDGET_WINDOW)
    blocks.append({
        "type": "panel_grid",
        "filters": f"{training} and Config('{budget_key}') >= {low:.6g} and "
                   f"Config('{budget_key}') <= {high:.6g}",
        "groupby": [],
        "panels": [{"type": "scatter", "title": f"IsoFLOP C = {budget:.3g}",
                    "x": f"config:{N_KEY}", "y": "summary:final_eval_loss", "log_x": True,
                    "log_y": False}]})
  blocks += [
      {"type": "h2", "text": "Fits and the compute-optimal frontier"},
      {"type": "panel_grid", "filters": analysis, "groupby": [],
       "panels": [{"type": "media", "title": "analysis figures",
                   "media_keys": [k for k in FIGURE_KEYS if k in fit["plots"]]}]},
      {"type": "markdown", "text": "\n".join(
          ["| C | N_opt | D_opt | tokens/param |", "|---|---|---|---|"] +
          [f"| {r['flops']:.3g} | {_number(r['n_opt'], '.3g')} | {_number(r['d_opt'], '.3g')} | "
           f"{_number(r['tokens_per_param'], '.1f')} |" for r in fit["frontier"]])}]
  return {"entity": entity, "project": project, "title": f"Scaling laws: {project}",
          "description": "Kaplan and Chinchilla fits of a sweep (python -m analysis)",
          "blocks": blocks}


def _metric(name: str):
  import wandb_workspaces.reports.v2 as wr  # pylint: disable=g-import-not-at-top
  section, key = name.split(":", 1)
  return wr.Config(key) if section == "config" else wr.SummaryMetric(key)


def _panel(spec: dict):
  import wandb_workspaces.reports.v2 as wr  # pylint: disable=g-import-not-at-top
  if spec["type"] == "line":
    return wr.LinePlot(title=spec["title"], x=spec["x"], y=spec["y"], log_x=spec["log_x"],
                       log_y=spec["log_y"])
  if spec["type"] == "scatter":
    return wr.ScatterPlot(title=spec["title"], x=_metric(spec["x"]), y=_metric(spec["y"]),
                          log_x=spec["log_x"], log_y=spec["log_y"])
  if spec["type"] == "media":
    return wr.MediaBrowser(title=spec["title"], media_keys=spec["media_keys"])
  raise ValueError(f"unknown panel type {spec['type']!r} in the report spec")


def build(spec: dict, entity: str):
  """The wandb-workspaces Report of a spec under `entity` (no server needed until it is saved;
  without an entity wandb-workspaces would ask the server for one)."""
  import wandb_workspaces.reports.v2 as wr  # pylint: disable=g-import-not-at-top
  if not entity:
    raise ValueError("a W&B Report needs an entity")
  text_blocks = {"h1": wr.H1, "h2": wr.H2, "p": wr.P, "markdown": wr.MarkdownBlock}
  blocks = []
  for block in spec["blocks"]:
    if block["type"] in text_blocks:
      blocks.append(text_blocks[block["type"]](text=block["text"]))
    elif block["type"] == "panel_grid":
      runset = wr.Runset(entity=entity, project=spec["project"], filters=block["filters"],
                         groupby=block["groupby"])
      blocks.append(wr.PanelGrid(runsets=[runset], panels=[_panel(p) for p in block["panels"]]))
    else:
      raise ValueError(f"unknown block type {block['type']!r} in the report spec")
  return wr.Report(project=spec["project"], entity=entity, title=spec["title"],
                   description=spec["description"], blocks=blocks)


def publish(fit: dict, out: str, mode: str = "offline", project: str = "scaling",
            entity=None) -> dict:
  """Logs the analysis run (unless disabled), writes the Report spec, saves it when online; W&B
  failures are warnings (info["warnings"]), never errors."""
  entity = entity or os.environ.get("WANDB_ENTITY") or None
  group = sweep_group(fit.get("source"))
  info = {"mode": mode, "run": None, "group": group, "warnings": []}

  def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
    info["warnings"].append(message)

  if mode != "disabled":
    try:
      info["run"] = log_run(fit, out, mode, project, entity, group)
    except Exception as e:  # pylint: disable=broad-except  (W&B never stops the analysis)
      warn(f"no W&B analysis run ({one_line(e)}); fit.json and the reports are the record")
  spec = report_spec(fit, project, entity, group)
  path = os.path.join(out, "wandb_report.json")
  files.write_atomic(path, json.dumps(spec, indent=1))
  info["report_spec"] = path
  info["publish_command"] = f"python -m analysis.wandb_report {shlex.quote(path)}"
  if mode == "online":
    try:
      info["report_url"] = build(spec, resolve_entity(None, spec)).save().url
    except Exception as e:  # pylint: disable=broad-except  (any server failure: keep the spec)
      warn(f"W&B report not saved ({one_line(e)}); publish it later with: "
           f"{info['publish_command']}")
  return info


def resolve_entity(entity, spec: dict) -> str:
  """--entity, else the spec's, else $WANDB_ENTITY, else the logged-in user's default entity;
  ValueError (one line) when none is known."""
  entity = entity or spec.get("entity") or os.environ.get("WANDB_ENTITY")
  if entity:
    return entity
  import wandb  # pylint: disable=g-import-not-at-top
  if not wandb.login(prompt=False, verify=False):
    raise ValueError("no W&B entity: pass --entity NAME or set WANDB_ENTITY (or run `wandb login` "
                     "to publish under your default entity)")
  try:
    return wandb.Api(timeout=20).default_entity
  except Exception as e:  # pylint: disable=broad-except  (no server: say so in one line)
    raise ValueError(f"no W&B entity: the server did not give your default one ({one_line(e)}); "
                     "pass --entity NAME") from None


def main(argv=None) -> int:
  """Publishes a spec: prints the Report's URL, or one line saying why not (exit 2: no entity or a
  bad spec; exit 1: the server did not take it)."""
  parser = argparse.ArgumentParser(description="Publish a W&B Report spec written by the analysis.")
  parser.add_argument("spec", help="wandb_report.json written by python -m analysis")
  parser.add_argument("--entity", default=None,
                      help="W&B entity (default: the spec's, $WANDB_ENTITY, else your default)")
  args = parser.parse_args(argv)
  try:
    with open(args.spec) as f:
      spec = json.load(f)
    report = build(spec, resolve_entity(args.entity, spec))  # no server asked yet
  except (OSError, ValueError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  try:
    url = report.save().url
  except Exception as e:  # pylint: disable=broad-except  (not logged in, no server, refused)
    print(f"error: the Report was not saved ({one_line(e)})", file=sys.stderr)
    return 1
  print(url)
  return 0


if __name__ == "__main__":
  sys.exit(main())
