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
import sys

import jax

import data
from core import rundir
from core.config import ConfigError
from training import checkpoint, finetune, tracking
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


def train(config, source, model_cfg, plan, workdir: str, replica_dirs=()) -> int:
  """Trains to the budget (or resumes), writing every file of the run directory; returns the
  exit code (0, or rundir.EXIT_PREEMPTED after a SIGTERM saved a checkpoint)."""
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
    manager = stack.enter_context(checkpoint.manager(workdir, config.train.keep_checkpoints))
    state, meta = checkpoint.restore_latest(manager, trainer.abstract_state)
    if state is None:
      state = trainer.init()
      if config.init_from:  # fresh optimizer and schedule, the other run's final weights
        state = finetune.start_from(config.init_from, trainer, state)
    clock.before = meta.get("wall_seconds", 0.0)
    first_step = host_step(state)
    for i, member in enumerate(members):
      member.loss_sum = meta.get("loss_sum", [0.0] * len(members))[i]
      member.loss_count = meta.get("loss_count", [0] * len(members))[i]
      member.diverged = grouped and rundir.read_status(member.workdir) == rundir.DIVERGED
      if not member.diverged:
        wandb_run = tracking.start_wandb(member.config, plan, member.workdir,
                                         config_hash(member.config))
        member.log = tracking.MetricsLog(member.workdir if primary else None, first_step, wandb_run)
        stack.callback(member.log.close)

    loop = StepLoop(config, plan, trainer, batches, members, manager, clock, primary)
    if loop.run(state):
      print(f"SIGTERM: checkpoint saved at step {host_step(loop.state)}; rerun to resume",
            file=sys.stderr)
      return rundir.EXIT_PREEMPTED
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
