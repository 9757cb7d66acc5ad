"""python -m analysis --results CSV --out DIR [options]: fit a table of runs, write the reports.

Prints fit.json's `summary` (analysis/summary.py: the fitted laws, the frontier within a decade of
the data with extrapolations labelled, the verdict "How far to trust this fit", the figures' and
report's paths; --quiet: none); with --json, one JSON object (the fit.json contents) as the last
line. Input that cannot be fitted: one line on stderr, exit code 2.
"""
import argparse
import json
import math
import os
import sys

from analysis import isoflop
from analysis import runs as runs_lib
from core.config import WANDB_MODES

COMPILATION_CACHE = "~/.cache/scaling/jax"  # the runs' default too (train.compilation_cache)
EXAMPLES = """examples:
  python -m analysis --results sweeps/default/results.csv --out sweeps/default/analysis
  python -m analysis --results svg_extracted_data.csv --out /tmp/chin \\
      --drop-top-loss 5 --bootstrap 1000 --inference-tokens 1e13
"""


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
  parser.add_argument("--verify-budget", type=float, metavar="C",
                      help="a verification run's compute budget (sweep.verify_factor): its "
                           "frontier row is added, printed and tabulated beside the data's")
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
  parser.add_argument("--compilation-cache", default=COMPILATION_CACHE, metavar="DIR",
                      help="persistent JAX compilation cache: a later analysis of tables of "
                           "similar size skips XLA compilation (default %(default)s; '' off)")
  parser.add_argument("--dedupe", action="store_true",
                      help="keep the last row of each run id (a table holding a run twice is "
                           "refused without it); fits OUT/results_deduplicated.csv")
  parser.add_argument("--predicted", action="store_true",
                      help="fit the rows whose status is predicted (a branch sweep's curve-law "
                           "predictions, sweep.predict_branches) beside the completed ones")
  parser.add_argument("--json", action="store_true", help="print fit.json as the last line")
  parser.add_argument("--quiet", action="store_true",
                      help="print no summary (a sweep prints fit.json's summary itself)")
  return parser.parse_args(argv)


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
  if args.verify_budget is not None and not 0 < args.verify_budget < math.inf:
    raise runs_lib.DataError(f"--verify-budget {args.verify_budget}: give a positive, finite "
                             "FLOP budget")
  if args.inference_tokens is not None and not 0 <= args.inference_tokens < math.inf:
    raise runs_lib.DataError(f"--inference-tokens {args.inference_tokens}: give a finite number "
                             "of tokens, 0 or more")


def _deduplicated(args, pipeline) -> tuple[str, str | None]:
  """--dedupe: (the table written with the last row of each run id, the curves directory of the
  original table); says how many rows were dropped."""
  curves = pipeline._curves_dir(args.results, args.curves)  # pylint: disable=protected-access
  path = os.path.join(args.out, "results_deduplicated.csv")
  dropped, runs = runs_lib.write_deduplicated(args.results, path)
  print(f"--dedupe: dropped {dropped} duplicate row{'s' * (dropped != 1)} of {runs} run "
        f"id{'s' * (runs != 1)} (the last row of each kept); fitting {path}")
  return path, curves


def main(argv=None) -> int:
  args = parse_args(argv)
  # jax and matplotlib load only now, so --help and argument errors are instant.
  import jax  # pylint: disable=g-import-not-at-top
  from analysis import pipeline  # pylint: disable=g-import-not-at-top
  if args.compilation_cache:  # before anything compiles: JAX decides once per process
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(args.compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  try:
    _check_numbers(args)
    results, curves = args.results, args.curves
    if args.dedupe:
      results, curves = _deduplicated(args, pipeline)
    fit = pipeline.run_analysis(
        results, args.out, n_col=args.n_col, d_col=args.d_col, c_col=args.c_col,
        loss_col=args.loss_col, kaplan_n_col=args.kaplan_n_col, run_col=args.run_col,
        drop_top_loss=args.drop_top_loss, n_bootstrap=args.bootstrap, seed=args.seed,
        bootstrap_unit=args.bootstrap_unit, curves=curves, family=args.family,
        budget_tol=args.budget_tol, isoflop_window=args.isoflop_window,
        inference_tokens=args.inference_tokens, verify_budget=args.verify_budget,
        wandb_mode=args.wandb_mode, wandb_project=args.wandb_project,
        predicted=args.predicted)
  except runs_lib.DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not args.quiet:
    print("\n".join(fit["summary"]))
  if args.json:
    print(json.dumps(fit))
  return 0


if __name__ == "__main__":
  sys.exit(main())
