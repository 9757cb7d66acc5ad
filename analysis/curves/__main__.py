"""python -m analysis.curves: fit the curve laws on some runs' loss curves, predict other runs.

  python -m analysis.curves (--runs DIR ... | --table CSV) --fit RUN ... [--predict RUN ...] --out DIR

Writes DIR/curves.json (`forms`: each fitted form's parameters and fit errors; `predictions`: per
predicted run and form `run, form, predicted_final_loss, measured_final_loss, curve_error_mean,
curve_error_max`; `best_form`: the lowest held-out error) and DIR/curves.png (measured against
predicted curves). --predict defaults to every run not fitted. Bad input (a table without a
column, a step that does not increase, an lr below 0, a run that does not exist): one line on
stderr, exit 2, nothing written.
"""
import argparse
import json
import os
import sys

from analysis.runs import DataError

JSON_NAME = "curves.json"
PLOT_NAME = "curves.png"


def parse_args(argv=None):
  parser = argparse.ArgumentParser(prog="python -m analysis.curves", description=__doc__.split(
      "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--runs", nargs="+", metavar="DIR",
                      help="run directories, or directories holding them (a sweep)")
  source.add_argument("--table", metavar="CSV", help="a table: run, n, step, tokens, lr, loss")
  parser.add_argument("--fit", nargs="+", required=True, metavar="RUN", help="runs to fit on")
  parser.add_argument("--predict", nargs="+", metavar="RUN",
                      help="runs to predict (default: every run not fitted)")
  parser.add_argument("--out", required=True, metavar="DIR")
  parser.add_argument("--loss", choices=("train_loss", "eval_loss"), default="train_loss",
                      help="run directories: the metrics.jsonl loss fitted (default %(default)s)")
  parser.add_argument("--forms", nargs="+", metavar="FORM",
                      help="curve forms to fit (default: every one registered)")
  parser.add_argument("--json", action="store_true", help="print curves.json as the last line")
  return parser.parse_args(argv)


def load(args) -> tuple[list, list, list]:
  """(curves, fit runs, predicted runs), every name checked; raises DataError."""
  from analysis.curves import data  # pylint: disable=g-import-not-at-top (JAX)
  curves = data.from_table(args.table) if args.table else data.from_runs(args.runs, args.loss)
  names = [c.run for c in curves]
  for flag, asked in (("--fit", args.fit), ("--predict", args.predict or ())):
    unknown = [r for r in asked if r not in names]
    if unknown:
      shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
      raise DataError(f"{flag} {unknown[0]}: no such run (runs: {shown})")
  predict = args.predict or [r for r in names if r not in args.fit]
  both = [r for r in predict if r in args.fit]
  if both:
    raise DataError(f"run {both[0]} is both fitted and predicted; predictions are of held-out runs")
  by_name = {c.run: c for c in curves}
  unmeasured = [r for r in args.fit if not by_name[r].measured]
  if unmeasured:
    raise DataError(f"--fit {unmeasured[0]}: the run has no measured loss to fit")
  return curves, list(args.fit), predict


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    from analysis import forms  # pylint: disable=g-import-not-at-top (JAX)
    known = [f.name for f in forms.registered(forms.CURVES)]
    bad = [f for f in args.forms or () if f not in known]
    if bad:
      raise DataError(f"--forms {bad[0]}: not a curve form (forms: {', '.join(known)})")
    curves, fit_runs, predict_runs = load(args)
    from analysis.curves import fit  # pylint: disable=g-import-not-at-top
    record = fit.run(curves, fit_runs, predict_runs, args.forms)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  from analysis.curves import plot  # pylint: disable=g-import-not-at-top
  from core import files  # pylint: disable=g-import-not-at-top
  os.makedirs(args.out, exist_ok=True)
  predictions = record.pop("_predictions")
  record["plot"] = PLOT_NAME
  record["source"] = args.table or list(args.runs)
  try:
    plot.curves_figure(os.path.join(args.out, PLOT_NAME), curves, predictions, fit_runs)
  except Exception as e:  # pylint: disable=broad-except (a plot never stops the record)
    record["plot"] = None
    record.setdefault("warnings", []).append(f"plot failed: {e}")
  files.write_json_atomic(os.path.join(args.out, JSON_NAME), record)
  for p in record["predictions"]:
    measured = ("not measured" if p["measured_final_loss"] is None else
                f"measured {p['measured_final_loss']:.4f}, curve error mean "
                f"{100 * p['curve_error_mean']:.2f}% max {100 * p['curve_error_max']:.2f}%")
    print(f"{p['run']} {p['form']}: predicted final {p['predicted_final_loss']:.4f} ({measured})")
  print(f"best form: {record['best_form']}; {os.path.join(args.out, JSON_NAME)}")
  if args.json:
    print(json.dumps(record))
  return 0


if __name__ == "__main__":
  sys.exit(main())
