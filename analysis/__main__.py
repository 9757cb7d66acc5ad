"""python -m analysis --results CSV --out DIR [options]: fit a table of runs, write the reports.

Prints the fitted laws, the frontier and the report's path; with --json, one JSON object (the
fit.json contents) as the last line. Input that cannot be fitted: one line on stderr, exit code 2.
"""
import argparse
import json
import os
import sys

from analysis import runs as runs_lib

WANDB_MODES = ("offline", "online", "disabled")
EXAMPLES = """examples:
  python -m analysis --results sweeps/default/results.csv --out sweeps/default/analysis
  python -m analysis --results svg_extracted_data.csv --out /tmp/chin \\
      --drop-top-loss 5 --bootstrap 1000
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


def summary_lines(fit: dict) -> list[str]:
  a3 = fit["chinchilla_approach3"]
  lines = [f"{fit['n_points']} runs fitted ({len(fit['excluded'])} not completed, excluded)",
           f"approach 3: L = {a3['E']:.4f} + {a3['A']:.4g}/N^{a3['alpha']:.4f} + "
           f"{a3['B']:.4g}/D^{a3['beta']:.4f}; a = {a3['a']:.3f}, b = {a3['b']:.3f}"
           + ("" if a3["converged"] else "  [NOT CONVERGED]")]
  for name in ("chinchilla_approach2", "chinchilla_approach1"):
    if name in fit:
      lines.append(f"{name.replace('chinchilla_', '').replace('approach', 'approach ')}: "
                   f"a = {fit[name]['a']:.3f}, b = {fit[name]['b']:.3f}")
  k = fit["kaplan"]
  lines.append(f"kaplan: alpha_N = {k['alpha_N']:.4f}, alpha_D = {k['alpha_D']:.4f}, "
               f"N_c = {k['N_c']:.3g}, D_c = {k['D_c']:.3g}")
  for row in fit["frontier"]:
    lines.append(f"  C = {row['flops']:.2e}: N_opt = {row['n_opt']:.3g}, D_opt = "
                 f"{row['d_opt']:.3g}, {row['tokens_per_param']:.1f} tokens per parameter")
  lines += [f"warning: {w}" for w in fit["warnings"]]
  return lines


def main(argv=None) -> int:
  args = parse_args(argv)
  # jax and matplotlib load only now, so --help and argument errors are instant.
  from analysis import pipeline  # pylint: disable=g-import-not-at-top
  try:
    fit = pipeline.run_analysis(
        args.results, args.out, n_col=args.n_col, d_col=args.d_col, c_col=args.c_col,
        loss_col=args.loss_col, kaplan_n_col=args.kaplan_n_col, drop_top_loss=args.drop_top_loss,
        n_bootstrap=args.bootstrap, seed=args.seed, curves=args.curves, family=args.family,
        budget_tol=args.budget_tol, wandb_mode=args.wandb_mode, wandb_project=args.wandb_project)
  except runs_lib.DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for line in summary_lines(fit):
    print(line)
  print(f"report: {os.path.join(args.out, 'report.md')}")
  if args.json:
    print(json.dumps(fit))
  return 0


if __name__ == "__main__":
  sys.exit(main())
