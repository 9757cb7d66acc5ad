"""One run (or group of replicas) end to end: its files, restore or init, the step loop, results.

A group (train.replicas = K > 1) writes one complete run directory per replica (`replica_dirs`,
by default WORKDIR/replica_I): its own config.json (its seed and lr, hashing like the single run it
stands for), metrics.jsonl, result.json, W&B run and, once completed, its final checkpoint.
WORKDIR holds the group's config.json, the stacked checkpoints it resumes from and group.json.
A replica that diverges is written off at once (result.json says so and it logs no more rows)
while the others train on.
"""
import contextlib
import os
import signal
import sys

import jax

import data
from core import rundir
from core.config import ConfigError
from training import checkpoint, finetune, tracking, wandb_run
from training.batches import Batches
from training.loop import Clock, Member, StepLoop
from training.plan import config_hash, replica_config
from training.results import replica_record
from training.sharding import make_mesh
from training.steps import Trainer, host_step


def group_members(config, plan, workdir: str, replica_dirs=()) -> list[Member]:
  """The run's models: [the run itself] or one Member per replica of a group."""
  if plan.replicas == 1:
    return [Member(config, workdir)]
  replica_dirs = replica_dirs or [os.path.join(workdir, f"replica_{i}") for i in range(plan.replicas)]
  if len(replica_dirs) != plan.replicas:
    raise ConfigError(f"--replica-workdirs names {len(replica_dirs)} directories for "
                      f"train.replicas={plan.replicas}; give one per replica")
  return [Member(replica_config(config, plan, i), replica_dirs[i]) for i in range(plan.replicas)]


def write_group(workdir: str, config, members, status: str) -> None:
  rundir.write_group(workdir, status, config_hash(config),
                     [replica_record(member, status) for member in members])


def _write_run_files(config, workdir: str, members) -> None:
  """config.json of the run and of each replica, the tokenizers, and a group's group.json."""
  grouped = len(members) > 1
  os.makedirs(workdir, exist_ok=True)
  rundir.write_config(workdir, config)
  for member in members:
    os.makedirs(member.workdir, exist_ok=True)
    if grouped:
      rundir.write_config(member.workdir, member.config)
    member.source.tokenizer.save(member.workdir)
  if grouped:
    write_group(workdir, config, members, rundir.RUNNING)


def restore_or_init(config, trainer, manager, members):
  """(state, meta) to start from: the newest checkpoint of the run (a group's stacked one, else its
  replicas' own, e.g. branches seeded one by one from a trunk group), or a fresh initialisation.
  A restored state takes this run's own numbers: a seeded branch keeps its trunk's weights and
  optimizer state but follows its own schedule."""
  state, meta = checkpoint.restore_latest(manager, trainer.abstract_state)
  if state is None and len(members) > 1:
    state, meta = _restore_replicas(config, trainer, members)
  if state is not None:
    return trainer.with_own_run(state), meta
  state = trainer.init()
  if config.init_from:  # fresh optimizer and schedule, the other run's final weights
    state = finetune.start_from(config.init_from, trainer, state)
  return state, {}


def _restore_replicas(config, trainer, members):
  """A group's state stacked from its replicas' own newest checkpoints, when all are at one step."""
  states, metas = [], []
  for member in members:
    if not rundir.checkpoint_steps(member.workdir):
      return None, {}
    with checkpoint.manager(member.workdir, 1, config.train.checkpoint_steps) as member_manager:
      state, meta = checkpoint.restore_latest(member_manager, trainer.replica_abstract_state())
    states.append(state)
    metas.append(meta)
  if len({meta["step"] for meta in metas}) > 1:
    print(f"warning: the replicas' own checkpoints are at different steps "
          f"({', '.join(str(meta['step']) for meta in metas)}); starting the group afresh",
          file=sys.stderr)
    return None, {}
  return trainer.stack_replicas(states), {
      "wall_seconds": max(meta.get("wall_seconds", 0.0) for meta in metas),
      "loss_sum": [meta.get("loss_sum", [0.0])[0] for meta in metas],
      "loss_count": [meta.get("loss_count", [0])[0] for meta in metas]}


def train(config, source, model_cfg, plan, workdir: str, replica_dirs=()) -> int:
  """Trains to the budget (or resumes), writing every file of the run directory; returns the
  exit code (0, or rundir.EXIT_PREEMPTED / EXIT_INTERRUPTED after a SIGTERM / SIGINT saved a
  checkpoint)."""
  clock = Clock()
  grouped = plan.replicas > 1
  # Every process computes; only the first writes the run's files (orbax coordinates checkpoints).
  primary = jax.process_index() == 0
  members = group_members(config, plan, workdir, replica_dirs)
  for member in members:
    member.source = data.make_source(member.config) if grouped else source
  if primary:
    _write_run_files(config, workdir, members)

  trainer = Trainer(config, model_cfg, plan, make_mesh(config))
  batches = Batches(trainer.batch_sharding, plan.batch_size, plan.replicas)
  with contextlib.ExitStack() as stack:
    # The loop's SIGTERM / SIGINT handlers stay until the run's files are closed, then go.
    for stop in (signal.SIGTERM, signal.SIGINT):
      stack.callback(signal.signal, stop, signal.getsignal(stop))
    manager = stack.enter_context(checkpoint.manager(
        workdir, config.train.keep_checkpoints, config.train.checkpoint_steps))
    state, meta = restore_or_init(config, trainer, manager, members)
    clock.before = meta.get("wall_seconds", 0.0)
    first_step = host_step(state)
    for i, member in enumerate(members):
      member.loss_sum = meta.get("loss_sum", [0.0] * len(members))[i]
      member.loss_count = meta.get("loss_count", [0] * len(members))[i]
      member.diverged = grouped and rundir.read_status(member.workdir) == rundir.DIVERGED
      if not member.diverged:
        tracker = wandb_run.start(member.config, plan, member.workdir, config_hash(member.config))
        member.log = stack.enter_context(
            tracking.MetricsLog(member.workdir if primary else None, first_step, tracker))

    loop = StepLoop(config, plan, trainer, batches, members, manager, clock, primary)
    if loop.run(state):
      interrupted = loop.stop_signal[0] == signal.SIGINT
      code = rundir.EXIT_INTERRUPTED if interrupted else rundir.EXIT_PREEMPTED
      for member in loop.training():
        member.log.close(code)
      print(f"{'interrupted' if interrupted else 'SIGTERM'}: checkpoint saved at step "
            f"{host_step(loop.state)}; rerun to resume", file=sys.stderr)
      return code
    if loop.training():
      loop.save(plan.steps, wait=True)
    for i, member in enumerate(members):
      if not member.diverged:
        loop.finish_member(member, rundir.COMPLETED,
                           trainer.replica_state(loop.state, i) if grouped else None)
    if primary and grouped:
      write_group(workdir, config, members,
                  rundir.COMPLETED if loop.training() else rundir.DIVERGED)
  return 0
