"""Many runs: plan (an N x D grid or IsoFLOP curves) -> execute (local, slurm, wandb) -> collect -> analyse.

  python sweep.py                                  # the embedded default: experiments/default_sweep.py
  python sweep.py --config experiments/NAME.py --workdir DIR [--workers K] [--executor local|slurm|wandb|MODULE]
  python sweep.py --config ... --dry-run [--json]  # the plan, its FLOPs and a measured wall-time estimate
  python sweep.py --config ... --workdir DIR --row K   # one plan row (Slurm array tasks, W&B agents)
  python sweep.py --config ... --workdir DIR --executor slurm [--wait]   # submit, or collect what finished

A sweep is an experiment file with a `sweep` section whose `kind` names a module of sweeps/kinds/
(isoflop, grid, finetune), which documents its keys, plans its rows and analyses its results;
`--config.a.b=value` overrides apply to every run. Runs get their own train.py process and their
own directory DIR/runs/RUN_ID, so a rerun skips finished runs and resumes interrupted ones. An
isoflop sweep then predicts and trains a held-out verification run (sweep.verify_factor,
sweeps/verify.py). The machinery lives in sweeps/ (docs/design.md, "Sweeps"); this file parses
flags, plans through the kind, hands the rows to an executor, collects and maps errors to exit
codes.
"""
import argparse
import json
import os
import signal
import sys

import jax

from core import provenance, rundir
from core.config import ConfigError, load_config
from sweeps import ROOT, branches, executors, kinds, locks, rows as plan_rows
from sweeps.collect import finish
from sweeps.estimate import dry_run
from sweeps.processes import run_dir_of
from sweeps.task import run_row, run_row_with_group

DEFAULT_CONFIG = os.path.join(ROOT, "experiments", "default_sweep.py")
# The exit code of a sweep that ended while other processes still train runs of its plan: its
# results are partial and unanalysed; rerun when they are done (EX_TEMPFAIL, "try again later").
EXIT_PARTIAL = 75


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=DEFAULT_CONFIG,
                      help="experiments/NAME.py with a sweep section (default: the embedded default)")
  parser.add_argument("--workdir", help="the sweep directory (default: ./sweeps/<config name>)")
  parser.add_argument("--executor", default="local",
                      help="local, slurm, wandb, or a module defining execute(...) "
                           "(sweeps/executors.py)")
  parser.add_argument("--workers", type=int,
                      help="runs trained at once (local; default: the config's sweep.workers)")
  parser.add_argument("--dry-run", action="store_true",
                      help="write and print the plan with a measured wall-time estimate, train nothing")
  parser.add_argument("--row", type=int, help="train only this plan row (Slurm tasks, W&B agents)")
  parser.add_argument("--with-group", action="store_true",
                      help="with --row K: K's group of replicas too, as one process (Slurm tasks)")
  parser.add_argument("--wait", action="store_true",
                      help="--executor slurm: wait for the jobs, then collect (default: submit and "
                           "collect what has finished; rerun to collect the rest)")
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args, rest = parser.parse_known_args(argv)
  overrides = [arg for arg in rest if arg.startswith("--config.")]
  unknown = [arg for arg in rest if not arg.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  if args.with_group and args.row is None:
    parser.error("--with-group needs --row K")
  if args.workers is not None and args.workers < 1:
    parser.error("--workers must be at least 1")
  return args, overrides


def held_elsewhere(sweep_dir: str, rows) -> list[str]:
  """The runs of the plan (trunks aside) that are not finished and whose lock a live process
  holds: another sweep on the same directory trains them (sweeps/locks.py)."""
  return [row.run_id for row in rows if row.kind not in (plan_rows.TRUNK, plan_rows.PREDICTED)
          and rundir.read_status(run_dir_of(sweep_dir, row)) not in rundir.FINISHED
          and locks.held(run_dir_of(sweep_dir, row))]


def main(argv=None) -> int:
  args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
  # The planner only resolves configs; the runs get the accelerator.
  jax.config.update("jax_platforms", "cpu")
  config_path = os.path.abspath(args.config)
  try:
    config = load_config(config_path, overrides)
    sweep_dir = os.path.abspath(args.workdir or os.path.join("sweeps", config.name))
    if args.row is not None:
      return (run_row_with_group if args.with_group else run_row)(sweep_dir, config_path, args.row)
    kind = kinds.checked(config)
    execute = executors.get(args.executor)
    workers = args.workers or config.sweep.workers
    rows = kind.plan(config, overrides, sweep_dir, workers,
                     may_train=args.executor == "local" and not args.dry_run)
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return rundir.EXIT_BAD_INPUT
  os.makedirs(sweep_dir, exist_ok=True)
  plan_path = plan_rows.write_plan(sweep_dir, rows)
  provenance.write_sweep(sweep_dir, config, config_path, sys.argv[1:] if argv is None else argv)
  trunks = sum(row.kind == plan_rows.TRUNK for row in rows)
  print(f"sweep {config.name}: {len(rows) - trunks} runs ({config.sweep.kind})"
        + (f" branching off {trunks} trunks" if trunks else "") + f" planned in {plan_path}")
  cost = branches.write_cost(sweep_dir, rows)
  branches.print_cost(cost)
  summary, returncode = {"sweep_dir": sweep_dir, "plan": plan_path, "cost": cost}, 0
  if args.dry_run:
    summary.update(dry_run(rows, config_path, config, workers))
  else:
    try:
      trained = [row for row in rows if row.kind != plan_rows.PREDICTED]
      outcome = execute(trained, sweep_dir, config_path, config, workers, args.wait)
    except ConfigError as error:  # a scheduler refused the jobs (e.g. sweep.sbatch's options)
      print(f"error: {error}", file=sys.stderr)
      return rundir.EXIT_BAD_INPUT
    if outcome.signal:
      return 128 + outcome.signal
    summary.update(outcome.summary)
    elsewhere = held_elsewhere(sweep_dir, rows) if args.executor == "local" else []
    analyse = (lambda fitted, results: kind.analyse(sweep_dir, fitted, results, config))
    if elsewhere:  # what finished here is not the sweep: the rerun after them analyses it
      analyse = lambda fitted, results: {"partial": True, "held_elsewhere": elsewhere}
    results, analysed = finish(sweep_dir, rows, analyse)
    summary.update(results)
    returncode = 1 if outcome.failed or not analysed else 0
    if elsewhere:
      print(f"{len(elsewhere)} run{'s are' if len(elsewhere) > 1 else ' is'} still training in "
            "other processes; rerun to analyse all (partial: no analysis of this sweep yet)")
      summary.update(partial=True, held_elsewhere=elsewhere)
      returncode = returncode or EXIT_PARTIAL
    if analysed and kind.after_fit and not elsewhere:  # rows planned from the fit (sweeps/verify.py), trained alike
      more, outcome = kind.after_fit(config, overrides, sweep_dir, rows, results, lambda more_rows:
                                     execute(more_rows, sweep_dir, config_path, config, workers,
                                             args.wait))
      summary.update(more)
      if outcome and outcome.signal:
        return 128 + outcome.signal
      returncode = 1 if outcome and outcome.failed else returncode
  if args.json:
    print(json.dumps(summary))
  return returncode


if __name__ == "__main__":
  try:
    sys.exit(main())
  except KeyboardInterrupt:  # Ctrl-C outside training (planning, analysis): nothing to save
    print("interrupted", file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
