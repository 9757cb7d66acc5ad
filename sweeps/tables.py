"""The sweep's results tables (results.csv, results_best_lr.csv) and the printed plan; plan.csv is
sweeps/rows.py's."""
import json
import os

from core import files

RESULTS = "results.csv"
RESULTS_BEST_LR = "results_best_lr.csv"  # an lr sweep: each (N, D, seed)'s best lr only
RESULT_COLUMNS = ("run_id", "status", "budget", "n_planned", "tokens_planned", "n_params",
                  "n_params_total", "tokens", "flops", "flops_6nd", "final_train_loss",
                  "final_eval_loss")


def write_results(sweep_dir: str, name: str, results: list[dict]) -> str:
  """DIR/name (results.csv or results_best_lr.csv), rebuilt whole; returns its path."""
  path = os.path.join(sweep_dir, name)
  files.write_csv_atomic(path, results, result_columns(results))
  return path


def result_columns(results) -> tuple:
  return RESULT_COLUMNS + tuple(sorted({key for result in results for key in result}
                                       - set(RESULT_COLUMNS)))


def flatten(result: dict, prefix: str = "") -> dict:
  """A result.json as one table row: nested keys joined with dots, lists as JSON."""
  flat = {}
  for key, value in result.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = json.dumps(value) if isinstance(value, list) else value
  return flat


def print_plan(rows, estimates=None) -> None:
  print(f"{'row':>4} {'budget C':>9} {'N':>9} {'N_total':>9} {'D':>9} {'D/N':>7} {'batch':>5} "
        f"{'steps':>6} {'C counted':>9} {'6ND':>9}{' est. s':>8}  run_id")
  for i, row in enumerate(rows):
    budget = f"{row.budget:.2e}" if row.budget else "-"
    estimate = f"{estimates[i]:8.0f}" if estimates else ""
    print(f"{row.row:>4} {budget:>9} {row.n_params:>9.3g} {row.n_params_total:>9.3g} "
          f"{row.tokens:>9.3g} {row.tokens_per_param:>7.1f} {row.batch_size:>5} "
          f"{row.steps:>6} {row.flops:>9.2e} {row.flops_6nd:>9.2e}{estimate}  {row.run_id}")
