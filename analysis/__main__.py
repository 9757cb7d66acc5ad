"""python -m analysis --results CSV --out DIR [options]: fit a table of runs, write the reports.

Prints the fitted laws, the frontier within a decade of the data (labelling extrapolations), the
verdict ("How far to trust this fit") and the report's path; with --json, one JSON object (the
fit.json contents) as the last line. Input that cannot be fitted: one line on stderr, exit code 2.
"""
import argparse
import math
import os
import sys

from analysis import diagnostics
from analysis import isoflop
from analysis import runs as runs_lib

WANDB_MODES = ("offline", "online", "disabled")
EXAMPLES = """examples:
  python -m analysis --results sweeps/default/results.csv --out sweeps/default/analysis
  python -m analysis --results svg_extracted_data.csv --out /tmp/chin \\
      --drop-top-loss 5 --bootstrap 1000 --inference-tokens 1e13
"""
PRINTED_DECADES = 1.0  # the printed frontier stops a decade past the data (fit.json has it all)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m analysis", description=__doc__.splitlines()[0], epilog=EXAMPLES,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--results", required=True, help="CSV with one row per run")
  parser.add_argument("--out", required=True, help="directory for fit.json, reports and plots")
  parser.add_argument("--n-col", help="parameters N (default: n_params_total, n_params, "
                                      "Model Size, N, ...)")
  parser.add_argument("--kaplan-n-col", help="parameters for the Kaplan fits (default: n_params "
                                             "(non-embedding) when present, else --n-col)")
  parser.add_argument("--d-col", help="tokens D (default: tokens, D, ...; else C/(6N))")
  parser.add_argument("--c-col", help="training FLOPs C (default: flops, Training FLOP, C, ...; "
                                      "else 6ND)")
  parser.add_argument("--loss-col", help="final loss (default: final_eval_loss, loss, ...)")
  parser.add_argument("--drop-top-loss", type=int, default=0, metavar="K",
                      help="drop the K highest-loss runs before fitting")
  parser.add_argument("--bootstrap", type=int, default=0, metavar="B",
                      help="bootstrap resamples for 95%% intervals (0: none)")
  parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
  parser.add_argument("--bootstrap-unit", choices=runs_lib.BOOTSTRAP_UNITS,
                      help="what a resample draws: whole runs (default when the table names runs: "
                           "a run column, see --run-col), single points, or whole IsoFLOP budgets")
  parser.add_argument("--run-col", help="the training run each row comes from; rows sharing one "
                                        "are resampled together (default: trunk_id, trunk, run_id)")
  parser.add_argument("--isoflop-window", type=float, metavar="FACTOR",
                      help="locate each IsoFLOP minimum with the older parabola through the runs "
                           f"within this factor in N of the lowest-loss run (e.g. {isoflop.WINDOW:g}"
                           f"; 0: the whole curve) instead of the default, {isoflop.DEFAULT!r} "
                           "(analysis/isoflop.py)")
  parser.add_argument("--inference-tokens", type=float, metavar="T",
                      help="add the inference-aware frontier: the N, D minimising training 6ND "
                           "plus inference 2NT FLOPs for T inference tokens (Sardana et al. 2023)")
  parser.add_argument("--curves", help="directory of RUN_ID/metrics.jsonl training curves "
                                       "(default: runs/ beside the CSV, when present)")
  parser.add_argument("--family", help="fit only the runs of this model family")
  parser.add_argument("--budget-tol", type=float, default=runs_lib.BUDGET_TOL,
                      help="without a budget column, runs within this relative C form one "
                           "IsoFLOP group")
  env_mode = os.environ.get("WANDB_MODE", "offline")
  parser.add_argument("--wandb-mode", choices=WANDB_MODES,
                      default=env_mode if env_mode in WANDB_MODES else "offline",
                      help="W&B analysis run (default: $WANDB_MODE, else offline)")
  parser.add_argument("--wandb-project", default="scaling")
  parser.add_argument("--json", action="store_true", help="print fit.json as the last line")
  return parser.parse_args(argv)


def _num(value, spec: str) -> str:
  """A number for the summary; `n/a` where a fit gave none (null or not finite in fit.json)."""
  return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _beyond(row: dict) -> str:
  far = row.get("decades_beyond_data", 0)
  return f"  (extrapolated, {far:.1f} decades beyond the data)" if far else ""


def frontier_lines(fit: dict) -> list[str]:
  """The frontier rows within PRINTED_DECADES of the data, extrapolations labelled."""
  shown = [row for row in fit["frontier"] if row.get("decades_beyond_data", 0) <= PRINTED_DECADES]
  lines = [f"  C = {row['flops']:.2e}: N_opt = {_num(row['n_opt'], '.3g')}, D_opt = "
           f"{_num(row['d_opt'], '.3g')}, {_num(row['tokens_per_param'], '.1f')} tokens per "
           f"parameter{_beyond(row)}" for row in shown]
  if len(shown) < len(fit["frontier"]):
    lines.append(f"  ({len(fit['frontier']) - len(shown)} budgets more than {PRINTED_DECADES:g} "
                 "decade beyond the data: in fit.json and the report, not printed)")
  inference = fit.get("inference_frontier")
  if inference:
    lines.append(f"inference-aware (T = {inference['inference_tokens']:.3g} inference tokens; "
                 "same loss as the compute-optimal model at C):")
    lines += [f"  C = {row['flops']:.2e}: N = {_num(row['n_opt'], '.3g')}, D = "
              f"{_num(row['d_opt'], '.3g')}, {_num(row['tokens_per_param'], '.1f')} tokens per "
              f"parameter, {_num(100 * row['saving'], '.1f')}% less total compute{_beyond(row)}"
              for row in inference["rows"] if row.get("decades_beyond_data", 0) <= PRINTED_DECADES]
  return lines


def summary_lines(fit: dict) -> list[str]:
  a3 = fit["chinchilla_approach3"]
  unidentified = fit.get("diagnostics", {}).get("unidentified", {})
  e = (f"[E not identified: {unidentified['E']}]" if "E" in unidentified
       else _num(a3["E"], ".4f"))
  exponents = (f"a, b not identified ({unidentified['frontier']})" if "frontier" in unidentified
               else f"a = {_num(a3['a'], '.3f')}, b = {_num(a3['b'], '.3f')}")
  lines = [f"{fit['n_points']} runs fitted ({len(fit['excluded'])} not completed, excluded)",
           f"approach 3: L = {e} + {_num(a3['A'], '.4g')}/N^{_num(a3['alpha'], '.4f')} + "
           f"{_num(a3['B'], '.4g')}/D^{_num(a3['beta'], '.4f')}; {exponents}"
           + ("" if a3["converged"] else "  [NOT CONVERGED]")]
  if "frontier" not in unidentified and "frontier_exponents" in a3:
    convention = fit.get("flops_convention", {})
    lines.append(f"frontier, C in {convention.get('label', '6ND FLOPs')}: N_opt ∝ "
                 f"C^{_num(a3['frontier_exponents']['a'], '.3f')}, D_opt ∝ "
                 f"C^{_num(a3['frontier_exponents']['b'], '.3f')} (approach 3; FLOPs per token "
                 f"{_num(convention.get('k'), '.3g')} N^{_num(convention.get('gamma'), '.3f')})")
  for name in ("chinchilla_approach2", "chinchilla_approach1"):
    if name in fit:
      lines.append(f"{name.replace('chinchilla_', '').replace('approach', 'approach ')}: "
                   f"a = {_num(fit[name]['a'], '.3f')}, b = {_num(fit[name]['b'], '.3f')}")
  k = fit["kaplan"]
  lines.append(f"kaplan: alpha_N = {_num(k['alpha_N'], '.4f')}, alpha_D = "
               f"{_num(k['alpha_D'], '.4f')}, N_c = {_num(k['N_c'], '.3g')}, D_c = "
               f"{_num(k['D_c'], '.3g')}")
  lines += frontier_lines(fit)
  lines += [f"warning: {w}" for w in fit["warnings"]]
  if "diagnostics" in fit:
    lines += diagnostics.summary_lines(fit["diagnostics"])
  return lines


def _check_numbers(args):
  """One-line errors for numbers argparse accepts but the analysis cannot use."""
  if args.bootstrap < 0:
    raise runs_lib.DataError(f"--bootstrap {args.bootstrap}: give 0 (no intervals) or more")
  if not args.budget_tol > 0:
    raise runs_lib.DataError(f"--budget-tol {args.budget_tol}: give a positive relative tolerance")
  if args.isoflop_window is not None and not (args.isoflop_window == 0
                                               or args.isoflop_window >= 1):
    raise runs_lib.DataError(f"--isoflop-window {args.isoflop_window}: give a factor of 1 or more "
                             "(0: the whole curve)")
  if args.inference_tokens is not None and not 0 <= args.inference_tokens < math.inf:
    raise runs_lib.DataError(f"--inference-tokens {args.inference_tokens}: give a finite number "
                             "of tokens, 0 or more")


def main(argv=None) -> int:
  args = parse_args(argv)
  # jax and matplotlib load only now, so --help and argument errors are instant.
  from analysis import pipeline, report  # pylint: disable=g-import-not-at-top
  try:
    _check_numbers(args)
    fit = pipeline.run_analysis(
        args.results, args.out, n_col=args.n_col, d_col=args.d_col, c_col=args.c_col,
        loss_col=args.loss_col, kaplan_n_col=args.kaplan_n_col, run_col=args.run_col,
        drop_top_loss=args.drop_top_loss, n_bootstrap=args.bootstrap, seed=args.seed,
        bootstrap_unit=args.bootstrap_unit, curves=args.curves, family=args.family,
        budget_tol=args.budget_tol, isoflop_window=args.isoflop_window,
        inference_tokens=args.inference_tokens, wandb_mode=args.wandb_mode,
        wandb_project=args.wandb_project)
  except runs_lib.DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return report.print_outcome(summary_lines(fit), os.path.join(args.out, "report.md"), fit,
                              args.json)


if __name__ == "__main__":
  sys.exit(main())
