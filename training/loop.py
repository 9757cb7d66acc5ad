"""The step loop of one run or group: steps, evaluations, checkpoints, divergence and logging.

The host side of step s (reading its metrics, divergence checks, metrics rows) runs while step s+1
computes, so logging never stalls the device. Evaluations and checkpoints land on logging steps,
and a checkpoint's metrics are on disk before the checkpoint is, so a resumed run logs the same
rows as an uninterrupted one.

Fault injection for tests: SCALING_FAULT="SIGKILL@37" (or SIGTERM@37, or a comma-separated list)
makes the process signal itself right after step 37's host side is done (its metrics row and, when
due, its checkpoint are on disk; nothing of step 38 is), at the last step before the final
checkpoint and result.json; "SIGKILL@37:parent" signals its parent instead (a sweep, killed at an
exact step of its run); "SIGSTOP@37" holds the process there until a SIGCONT (a test's hold at an
exact step). Unset, it costs one int comparison per step and changes nothing.
"""
import contextlib
import dataclasses
import math
import os
import signal
import sys
import time
from typing import Optional

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

import data
import data.eval_sets
import data.pool
from core import rundir
from core.config import ConfigError
from training import checkpoint, finetune, results, tracking
from training.tasks import TaskEval
from training.batches import Batches
from training.mfu import Throughput, peak_flops_per_second
from training.plan import Plan
from training.steps import Trainer, host_step

FAULT_ENV = "SCALING_FAULT"
FAULT_SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGSTOP": signal.SIGSTOP}
NO_FAULT = -1  # a step no run reaches


def faults_from_env() -> dict[int, tuple[int, bool]]:
  """{step: (signal, to the parent)} from $SCALING_FAULT ("SIGKILL@37", "SIGTERM@20,SIGKILL@37",
  "SIGKILL@37:parent"); {} when unset."""
  text = os.environ.get(FAULT_ENV, "").strip()
  faults = {}
  for item in filter(None, (part.strip() for part in text.split(","))):
    name, _, at = item.partition("@")
    step, _, target = at.partition(":")
    if (name not in FAULT_SIGNALS or not step.isdigit() or int(step) < 1
        or target not in ("", "parent")):
      raise ConfigError(f"{FAULT_ENV}={text!r}: expected SIGKILL@STEP, SIGTERM@STEP or "
                        f"SIGSTOP@STEP, each optionally :parent, comma-separated, STEP >= 1")
    faults[int(step)] = (FAULT_SIGNALS[name], target == "parent")
  return faults


@dataclasses.dataclass
class Member:
  """One model of a run as the host sees it: the run itself, or one replica of a group."""
  config: ml_collections.ConfigDict  # its resolved config (a replica's: its seed and lr, replicas=1)
  workdir: str                       # its run directory
  source: Optional[data.Source] = None          # its data (the order follows its seed); set by run
  log: Optional[tracking.MetricsLog] = None     # set once it trains (a diverged replica has none)
  diverged: bool = False
  loss_sum: float = 0.0        # train losses since its last row (checkpointed with the state)
  loss_count: int = 0


@dataclasses.dataclass
class Clock:
  """Wall time of a run across its resumed segments."""
  before: float = 0.0          # seconds spent by earlier segments (from the checkpoint)
  start: float = dataclasses.field(default_factory=time.time)

  def seconds(self) -> float:
    return time.time() - self.start + self.before


class StepLoop:
  """Trains `state` from its step to plan.steps; its fields are the loop's whole state."""
  config: ml_collections.ConfigDict
  plan: Plan
  trainer: Trainer
  batches: Batches
  members: list[Member]
  manager: ocp.CheckpointManager
  clock: Clock
  primary: bool                  # the process that writes the run's files
  divergence_loss: float         # a train loss above it (or not finite) is a divergence
  keep_steps: tuple[int, ...]    # checkpoints kept for good (a trunk's branch points)
  stop_signal: list[int]         # the SIGTERMs / SIGINTs received: the loop stops at the next step
  state: Optional[dict]          # the train state (a pytree of arrays), once run() starts
  throughput: Optional[Throughput]
  tasks: Optional[TaskEval]      # eval.tasks, scored at every evaluation (None: no tasks)
  faults: dict[int, tuple[int, bool]]  # {step: (signal, to the parent)} from $SCALING_FAULT
  next_fault: int                # the first of them, or NO_FAULT

  def __init__(self, config: ml_collections.ConfigDict, plan: Plan, trainer: Trainer,
               batches: Batches, members: list[Member], manager: ocp.CheckpointManager,
               clock: Clock, primary: bool):
    self.config, self.plan, self.trainer, self.batches = config, plan, trainer, batches
    self.members, self.manager, self.clock, self.primary = members, manager, clock, primary
    # A freshly initialised model predicts about uniformly, so ln(vocab) stands for its loss.
    self.divergence_loss = config.train.divergence_factor * math.log(trainer.model_cfg.vocab_size)
    # A group saves each replica's own checkpoint at these steps too.
    self.keep_steps = tuple(config.train.checkpoint_steps)
    self.stop_signal = []
    self.state = None
    self.throughput = None
    self.tasks = None
    self.faults = faults_from_env()
    self.next_fault = min(self.faults, default=NO_FAULT)

  def training(self) -> list[Member]:
    return [member for member in self.members if not member.diverged]

  def run(self, state) -> bool:
    """Steps to the budget or a SIGTERM / SIGINT; returns whether it stopped on one (checkpointed;
    self.stop_signal holds it)."""
    self.state = state
    plan, first_step = self.plan, host_step(state)
    self.faults = {step: fault for step, fault in self.faults.items() if step > first_step}
    self.next_fault = min(self.faults, default=NO_FAULT)
    for stop in (signal.SIGTERM, signal.SIGINT):
      signal.signal(stop, lambda signum, frame: self.stop_signal.append(signum))
    sources = [member.source for member in self.members]
    eval_batches = self.batches.eval(sources, plan.eval_sequences)
    set_batches = {name: self.batches.eval([source.eval_sets[name] for source in sources],
                                           plan.eval_sequences)
                   for name in getattr(sources[0], "eval_sets", {})}  # data.eval_sets
    self.tasks = TaskEval.make(self.config, sources[0], self.trainer)  # one language for all
    self.throughput = Throughput(plan.tokens_per_step, plan.flops_per_token, plan.n_params_total,
                                 peak_flops_per_second(), plan.replicas)
    progress = tracking.progress_bar(plan.steps, first_step)
    pending = None  # (steps done, metrics, eval loss): read on the host one step late
    train_batches = self.batches.train(sources, first_step, plan.steps)
    for step, batch in zip(range(first_step, plan.steps), train_batches):
      if self._stopping() or not self.training():
        break
      # Tracing and compiling the first step are not training throughput.
      with self.throughput.excluded() if step == first_step else contextlib.nullcontext():
        self.state, metrics = self.trainer.train_step(self.state, batch)
      done = step + 1
      is_eval = done % plan.eval_every == 0 or done == plan.steps
      eval_loss = ((self._evaluate(eval_batches), {name: self._evaluate(batches) for name, batches
                                                   in set_batches.items()}, self._score_tasks())
                   if is_eval else None)
      if pending is not None:
        self._host_side(*pending, progress)
        if pending[0] == self.next_fault:
          self._fault(pending[0])
      pending = (done, metrics, eval_loss)
      progress.update(1)
      checkpoint_due = done % plan.checkpoint_every == 0 or done in self.keep_steps
      if checkpoint_due and done < plan.steps and self.training():
        self._host_side(*pending, progress)  # the checkpoint's metrics are on disk before it is
        pending = None
        if self.training():
          with self.throughput.excluded():
            self.save(done)
        if done == self.next_fault:
          self._fault(done)
    if pending is not None and self.training():
      self._host_side(*pending, progress)
      if pending[0] == self.next_fault:
        self._fault(pending[0])
    progress.close()
    if self._stopping() and self.training():
      self.save(host_step(self.state), wait=True)
      return True
    return False

  def _stopping(self) -> bool:
    """Whether to stop here: a SIGTERM / SIGINT received by this process or, in a multi-process
    run, by any of them. Every process asks at the same points of the loop, so all stop after the
    same step and save its checkpoint together (one stopping alone would leave the others waiting
    in the next step's collectives); a process that received none takes the others' signal. A
    signal that comes after this process's gather counts at the next one, in every process."""
    if jax.process_count() == 1:
      return bool(self.stop_signal)
    received = [int(signum) for signum in multihost_utils.process_allgather(
        np.int32(self.stop_signal[0] if self.stop_signal else 0)) if signum]
    if received and not self.stop_signal:
      self.stop_signal.append(received[0])
    return bool(received)

  def _fault(self, step: int) -> None:
    """Signals this process (or its parent) as $SCALING_FAULT asks, once step's files are on disk."""
    self.manager.wait_until_finished()  # a checkpoint of this step is complete before a SIGKILL
    signum, to_parent = self.faults.pop(step)
    self.next_fault = min(self.faults, default=NO_FAULT)
    print(f"{FAULT_ENV}: {signal.Signals(signum).name} to {'the parent' if to_parent else 'self'} "
          f"at step {step}", file=sys.stderr, flush=True)
    os.kill(os.getppid() if to_parent else os.getpid(), signum)

  def _evaluate(self, eval_batches):
    """The eval loss, its time (the step before it is awaited first) left out of the throughput."""
    jax.block_until_ready(self.state)
    with self.throughput.excluded():
      return jax.block_until_ready(self.trainer.evaluate(self.state, eval_batches))

  def _score_tasks(self):
    """The task rows' summed log-likelihoods (None: no tasks), timed as _evaluate is."""
    if self.tasks is None:
      return None
    with self.throughput.excluded():
      return jax.block_until_ready(self.tasks.start(self.state))

  def save(self, step: int, wait: bool = False) -> None:
    checkpoint.save(self.manager, step, self.state, self._meta(self.members))
    if len(self.members) > 1 and step in self.keep_steps:
      for i, member in enumerate(self.members):
        if not member.diverged:
          self._save_own(member, step, self.trainer.replica_state(self.state, i))
    if wait:
      self.manager.wait_until_finished()

  def _meta(self, members) -> dict:
    return {"wall_seconds": self.clock.seconds(),
            "loss_sum": [member.loss_sum for member in members],
            "loss_count": [member.loss_count for member in members]}

  def _save_own(self, member: Member, step: int, member_state) -> None:
    """A replica's own checkpoint in its run directory, as its single run would have saved it."""
    with checkpoint.manager(member.workdir, 1, self.keep_steps) as member_manager:
      checkpoint.save(member_manager, step, member_state, self._meta([member]))

  def _host_side(self, done: int, metrics, eval_loss, progress) -> None:
    """Divergence checks and metrics rows of step `done`, read while the next step runs."""
    metrics = {k: np.atleast_1d(v) for k, v in jax.device_get(metrics).items()}
    eval_loss, set_losses, task_sums = eval_loss or (None, {}, None)  # the eval split's, each
    # eval set's, and the task rows' summed log-likelihoods
    eval_losses = None if eval_loss is None else np.atleast_1d(jax.device_get(eval_loss))
    set_losses = {name: np.atleast_1d(jax.device_get(v)) for name, v in set_losses.items()}
    task_sums = None if task_sums is None else jax.device_get(task_sums)
    self.throughput.step()
    log_row = (done % self.config.train.log_every == 0 or eval_loss is not None
               or done == self.plan.steps)
    speed = self.throughput.read() if log_row else None
    for i, member in enumerate(self.members):
      if member.diverged:
        continue
      loss = float(metrics["train_loss"][i])
      if not math.isfinite(loss) or loss > self.divergence_loss:
        member.diverged = True
        self.finish_member(member, rundir.DIVERGED)
        continue
      member.loss_sum, member.loss_count = member.loss_sum + loss, member.loss_count + 1
      if not log_row:
        continue
      row = {"step": done, "tokens": done * self.plan.tokens_per_step,
             "flops": done * self.plan.tokens_per_step * self.plan.flops_per_token,
             "train_loss": member.loss_sum / member.loss_count, "lr": float(metrics["lr"][i]),
             "grad_norm": float(metrics["grad_norm"][i]), **speed}
      if getattr(member.source, "pool_tokens", None):  # a finite pool: how often it was read
        row.update(data.pool.figures(member.source, row["tokens"]))
      if eval_losses is not None:
        row["eval_loss"] = float(eval_losses[i])
        row.update(data.eval_sets.figures(member.source, row["eval_loss"], {
            name: float(values[i]) for name, values in set_losses.items()}))
      if task_sums is not None:
        row["tasks"] = self.tasks.row_figures(task_sums, i)
      member.log.write(row)
      member.loss_sum, member.loss_count = 0.0, 0
    if log_row and self.training():
      first = self.training()[0]
      progress.set_postfix(loss=f"{first.log.last_row.get('train_loss', math.nan):.3f}",
                           tok_s=f"{speed['tokens_per_sec']:,.0f}")

  def finish_member(self, member: Member, status: str, member_state=None) -> None:
    """Writes a member's result.json (and, for a completed replica, its own final checkpoint)."""
    if member_state is not None:
      self._save_own(member, self.plan.steps, member_state)
    result = results.make_result(member.config, self.plan, member.source, member.log.last_row,
                                 status, self.clock.seconds())
    result.update(finetune.run_figures(self.trainer, member.workdir))
    branch = rundir.read_branch(member.workdir)
    if branch:  # a branch of a WSD trunk: which trunk, and where it left it
      result.update(trunk=os.path.basename(branch["trunk"]), branch_step=branch["step"])
    if self.tasks is not None and "tasks" in member.log.last_row:  # at its last evaluation
      result["tasks"] = self.tasks.result(member.log.last_row["tasks"])
    if self.config.init_from and status == rundir.COMPLETED:
      result.update(finetune.forgetting_figures(member.config, self.trainer, self.batches,
                                                self.state, self.plan, member.source,
                                                self.members.index(member)))
    if self.primary:
      rundir.write_result(member.workdir, result)
    member.log.summarise(result)
    member.log.close()
