"""The sweep's end, the same for every kind: results.csv rebuilt from the run directories, the
runs that did not complete listed, then the kind's analysis (`finish`); and the pre-training kinds'
analysis, `python -m analysis` and its frontier and verdict (`fit_laws`)."""
import json
import os
import shlex
import subprocess
import sys

from analysis.summary import shown_rows
from core import rundir
from sweeps import ROOT, tables
from sweeps.processes import run_dir_of
from sweeps.rows import PREDICTED, TRUNK


def collect(sweep_dir: str, rows) -> list[dict]:
  """Rebuilds DIR/results.csv from the run directories of the plan's rows; returns its rows."""
  results = []
  for row in rows:
    result = rundir.read_result(run_dir_of(sweep_dir, row))
    if result is not None:
      results.append({"run_id": row.run_id, "budget": row.budget, "n_planned": row.n_params,
                      "tokens_planned": row.tokens, **tables.flatten(result)})
  tables.write_results(sweep_dir, tables.RESULTS, results)
  return results


def best_lr_only(results) -> list[dict]:
  """The completed (and predicted) runs of an lr sweep, keeping each (N, D, seed)'s lowest final
  eval loss: the scaling laws are those of tuned models, not of every lr tried."""
  best = {}
  for result in results:
    if result.get("status") not in (rundir.COMPLETED, rundir.PREDICTED):
      continue
    key = (result["n_params"], result["tokens"], result.get("seed"))
    if key not in best or result["final_eval_loss"] < best[key]["final_eval_loss"]:
      best[key] = result
  return list(best.values())


def analyse(sweep_dir: str, wandb_mode: str, results_name: str = tables.RESULTS,
            inference_tokens: float = 0.0, flops: str = "counted",
            verify_budget: float | None = None, bootstrap: int = 0, predicted: bool = False):
  """Runs `python -m analysis` on DIR/results_name into DIR/analysis; returns fit.json or None.

  The analysis reads the `budget` column for the IsoFLOP groups, C in the budgets' convention
  (`flops`: counted; `flops_6nd` for a sweep planned as 6ND), and the runs' metrics.jsonl under
  DIR/runs for Approach 1; it fits completed runs only. With
  inference_tokens > 0 (sweep.inference_tokens) it adds the inference-aware frontier; with a
  verification budget (sweeps/verify.py) its frontier row, and `bootstrap` resamples; with
  `predicted`, the rows whose status is predicted are fitted as well."""
  out = os.path.join(sweep_dir, "analysis")
  command = [sys.executable, "-m", "analysis", "--results", os.path.join(sweep_dir, results_name),
             "--out", out, "--wandb-mode", wandb_mode, "--quiet"]  # print_frontier prints it
  if inference_tokens:
    command += ["--inference-tokens", repr(float(inference_tokens))]
  if flops == "6nd":  # C as the budgets were planned
    command += ["--c-col", "flops_6nd"]
  if verify_budget:
    command += ["--verify-budget", repr(float(verify_budget))]
  if bootstrap:
    command += ["--bootstrap", str(bootstrap)]
  if predicted:  # the predicted branches' rows (sweeps/predict.py) are fitted too
    command += ["--predicted"]
  print(f"analysis: {shlex.join(command)}", flush=True)
  returncode = subprocess.run(command, cwd=ROOT).returncode
  fit_path = os.path.join(out, "fit.json")
  if returncode != 0 or not os.path.exists(fit_path):
    print(f"analysis failed (exit {returncode}); results are in {sweep_dir}/{tables.RESULTS}",
          file=sys.stderr)
    return None
  with open(fit_path) as f:
    return json.load(f)


def task_laws(sweep_dir: str, results_name: str, results) -> None:
  """`python -m analysis.tasks` on the sweep's own table (its task of the most shots, the largest
  budget held out, 20 resamples) into DIR/analysis/tasks.json, when its runs scored eval.tasks
  and it has 3 budgets or more; its one line, or a warning line when it fails."""
  shots = {key.split(".")[1]: value for result in results for key, value in result.items()
           if key.startswith("tasks.") and key.endswith(".shots")}
  if not shots or len({result.get("budget") for result in results}) < 3:
    return
  task = max(shots, key=lambda name: float(shots[name]))
  command = [sys.executable, "-m", "analysis.tasks", "--results",
             os.path.join(sweep_dir, results_name), "--task-col", f"tasks.{task}.accuracy",
             "--task-loss-col", f"tasks.{task}.gold_loss", "--bootstrap", "20",
             "--runs", os.path.join(sweep_dir, "runs"), "--out", os.path.join(sweep_dir, "analysis"),
             "--quiet"]
  if subprocess.run(command, cwd=ROOT).returncode != 0:
    print(f"warning: the task laws failed ({shlex.join(command)})", file=sys.stderr)


def print_frontier(fit: dict, report: str) -> dict:
  """The sweep's last words: the analysis's own summary (fit.json["summary"]: the frontier where
  the data support it, the verdict, the report), printed once; returns the summary's part of
  them, its frontier the rows the summary shows (analysis.summary.shown_rows: inside the data's
  range of C, in the table's own FLOP convention, and a verification budget's)."""
  approach3, approach2 = fit["chinchilla_approach3"], fit.get("chinchilla_approach2")
  diagnostics = fit.get("diagnostics", {})
  frontier = shown_rows(fit["frontier"])
  for line in fit.get("summary", []):
    print(line)
  a3 = approach3.get("frontier_exponents", approach3)
  summary = {"a": a3["a"], "b": a3["b"], "E": approach3["E"], "frontier": frontier,
             "report": report}
  if approach2:
    summary["approach2"] = {"a": approach2["a"], "b": approach2["b"]}
  inference = fit.get("inference_frontier")
  if inference:
    summary["inference_frontier"] = shown_rows(inference["rows"])
  if isinstance(fit.get("loss_floor"), (int, float)):
    summary["loss_floor"] = fit["loss_floor"]
  if diagnostics:
    summary["verdict"] = {k: diagnostics[k] for k in ("verdict", "problems", "unidentified")}
  if "isoflop" in fit.get("plots", {}):
    summary["isoflop_plot"] = os.path.join(os.path.dirname(report), fit["plots"]["isoflop"])
  return summary


def list_unfitted(by_status: dict, summary: dict) -> None:
  """Prints the runs that ended otherwise than completed (diverged, failed) and adds their ids to
  `summary` under their status."""
  for status in sorted(set(by_status) - {rundir.COMPLETED}, key=str):
    summary[status] = [r["run_id"] for r in by_status[status]]
    print(f"{len(by_status[status])} {status} (listed, not fitted):")
    for r in by_status[status]:
      why = r.get("error") or f"final train loss {r.get('final_train_loss')}"
      print(f"  {r['run_id']}: {why}")


def finish(sweep_dir: str, rows, analyse) -> tuple[dict, bool]:
  """Collects results.csv, lists the runs that did not complete, and hands the completed ones to
  the kind's `analyse(rows, results) -> summary or None` (None: it failed); returns (summary,
  analysis ok). Rows that only serve others (a branch sweep's trunks) are neither collected nor
  analysed."""
  rows = [row for row in rows if row.kind != TRUNK]
  results = collect(sweep_dir, [row for row in rows if row.kind != PREDICTED])
  by_status = {}
  for result in results:
    by_status.setdefault(result.get("status"), []).append(result)
  completed = by_status.get(rundir.COMPLETED, [])
  predicted = sum(row.kind == PREDICTED for row in rows)
  summary = {"results": os.path.join(sweep_dir, tables.RESULTS), "runs": len(rows),
             rundir.COMPLETED: len(completed),
             "not_finished": len(rows) - predicted - len(results)}
  print(f"results: {summary['results']} ({len(completed)} completed of {len(rows)} runs"
        + (f"; {predicted} to be predicted" if predicted else "") + ")")
  list_unfitted(by_status, summary)
  if summary["not_finished"]:
    print(f"{summary['not_finished']} runs have no result yet (running elsewhere, interrupted or "
          "not started); rerun this command to finish them")
  if not completed:
    return summary, True
  analysed = analyse(rows, results)
  if analysed is None:
    return summary, False
  summary.update(analysed)
  return summary, True


def fit_laws(sweep_dir: str, rows, results, wandb_mode: str, inference_tokens: float = 0.0,
             flops: str = "counted", verify_budget: float | None = None,
             bootstrap: int = 0, predicted: bool = False) -> dict | None:
  """The pre-training kinds' analysis: `python -m analysis` on the completed runs (an lr sweep's
  best lr of each point only), then the frontier and verdict; returns their summary or None."""
  del rows  # the frontier's budgets come from the analysis, in the table's own C
  completed = [result for result in results
               if result.get("status") in (rundir.COMPLETED, rundir.PREDICTED)]
  results_name = tables.RESULTS
  fitted = best_lr_only(results)
  if len(fitted) < len(completed):  # an lr sweep: fit each point's best lr
    results_name = tables.RESULTS_BEST_LR
    path = tables.write_results(sweep_dir, results_name, fitted)
    print(f"{len(fitted)} of {len(completed)} completed runs have the best lr of their N, D "
          f"and seed: fitting those ({path})")
  fit = analyse(sweep_dir, wandb_mode, results_name, inference_tokens, flops, verify_budget,
                bootstrap, predicted)
  if fit is None:
    return None
  task_laws(sweep_dir, results_name, fitted)
  report = os.path.join(sweep_dir, "analysis", "report.md")
  return print_frontier(fit, report)
