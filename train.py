"""One training run: config -> trained model, metrics.jsonl, checkpoints and result.json.

  python train.py --config experiments/tiny.py --workdir /tmp/tiny [--config.train.lr=1e-3 ...]
  python train.py --config ... --config.train.replicas=4 --config.train.replica_lrs="(1e-3,2e-3,4e-3,8e-3)" \\
      --workdir GROUP [--replica-workdirs DIR0 DIR1 DIR2 DIR3]

Running the same command again resumes from the newest checkpoint; a workdir holding a completed
result exits 0 at once. Exit codes: 0 done, 2 bad input (one line on stderr, before anything is
compiled or written), 143 SIGTERM and 130 SIGINT (Ctrl-C; a checkpoint was saved: rerun to
resume), 1 an error (recorded in result.json as failed). The machinery lives in training/
(docs/design.md); this file parses flags and maps errors to exit codes.
"""
import os
import sys

from training import hugepages  # imports nothing heavy: the re-exec comes before JAX's import

if __name__ == "__main__":
  hugepages.reexec_with_huge_pages()

# pylint: disable=wrong-import-position
import argparse
import traceback

import jax

from core import files, rundir
from core.config import ConfigError, load_config
from training import limits
from training import plan as plan_lib
from training import process, results, tracking
from training.loop import faults_from_env
from training.run import group_members, train


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True, help="experiments/NAME.py")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--force", action="store_true",
                      help="train into a workdir that holds another config's run, discarding it")
  parser.add_argument("--replica-workdirs", nargs="+", default=[], metavar="DIR",
                      help="with train.replicas=K: the K replicas' run directories "
                           "(default WORKDIR/replica_0 .. replica_K-1)")
  args, rest = parser.parse_known_args(argv)
  overrides = [arg for arg in rest if arg.startswith("--config.")]
  unknown = [arg for arg in rest if not arg.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  return args, overrides


def prepare(args, overrides):
  """The resolved run and the status its workdir recorded; raises ConfigError on bad input."""
  config = load_config(args.config, overrides)
  faults_from_env()  # a bad $SCALING_FAULT (a test's hook) is refused before anything is written
  process.enable_compilation_cache(config.train.compilation_cache)
  config, source, model_cfg, plan = plan_lib.resolve(config, jax.device_count())
  limits.check_memory(config, model_cfg, plan, jax.device_count())
  status = plan_lib.check_workdir(args.workdir, config, args.force)
  if plan.replicas == 1 and args.replica_workdirs:
    raise ConfigError("--replica-workdirs needs train.replicas > 1")
  members = group_members(config, plan, args.workdir, args.replica_workdirs)
  if plan.replicas > 1:  # never train a replica over another config's run
    for member in members:
      plan_lib.check_workdir(member.workdir, member.config, args.force)
  return config, source, model_cfg, plan, members, status


def main(argv=None) -> int:
  args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
  process.maybe_initialize_distributed()
  try:
    config, source, model_cfg, plan, members, status = prepare(args, overrides)
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return rundir.EXIT_BAD_INPUT
  if status == rundir.COMPLETED:
    print(f"{args.workdir} already holds a completed run of this config", file=sys.stderr)
    return 0
  if args.force:
    for path in {args.workdir, *(member.workdir for member in members)}:
      rundir.discard(path)
  try:
    return train(config, source, model_cfg, plan, args.workdir, args.replica_workdirs)
  except Exception as error:  # recorded so a sweep lists the run as failed; a rerun retries it
    tracking.close_progress_bars()
    no_space, filename = files.out_of_space(error)
    if no_space:  # one line, not the traceback of every writer that found the disk full
      print(f"error: {files.no_space_message(filename, args.workdir)}", file=sys.stderr)
    else:
      traceback.print_exc()
    if jax.process_index() == 0:
      name = rundir.GROUP if plan.replicas > 1 else rundir.RESULT
      try:
        os.makedirs(args.workdir, exist_ok=True)
        files.write_json_atomic(rundir.path(args.workdir, name),
                                results.failed_result(error, plan_lib.config_hash(config), plan))
      except OSError:
        if not no_space:
          raise
    return 1


if __name__ == "__main__":
  try:
    sys.exit(main())
  except KeyboardInterrupt:  # Ctrl-C before the first step (the step loop saves after it)
    print("interrupted before training started: nothing to save; rerun to start",
          file=sys.stderr)
    sys.exit(rundir.EXIT_INTERRUPTED)
