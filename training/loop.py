"""The step loop of one run or group: steps, evaluations, checkpoints, divergence and logging.

The host side of step s (reading its metrics, divergence checks, metrics rows) runs while step s+1
computes, so logging never stalls the device. Evaluations and checkpoints land on logging steps,
and a checkpoint's metrics are on disk before the checkpoint is, so a resumed run logs the same
rows as an uninterrupted one.
"""
import contextlib
import dataclasses
import math
import os
import signal
import time

import jax
import numpy as np

from core import rundir
from training import checkpoint, finetune, results, tracking
from training.mfu import Throughput, peak_flops_per_second
from training.steps import host_step


@dataclasses.dataclass
class Member:
  """One model of a run as the host sees it: the run itself, or one replica of a group."""
  config: object               # its resolved config (a replica's: its own seed and lr, replicas=1)
  workdir: str                 # its run directory
  source: object = None        # its data (the order follows its seed)
  log: tracking.MetricsLog = None
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

  def __init__(self, config, plan, trainer, batches, members, manager, clock, primary: bool):
    self.config, self.plan, self.trainer, self.batches = config, plan, trainer, batches
    self.members, self.manager, self.clock, self.primary = members, manager, clock, primary
    # A freshly initialised model predicts about uniformly, so ln(vocab) stands for its loss.
    self.divergence_loss = config.train.divergence_factor * math.log(trainer.model_cfg.vocab_size)
    # Checkpoints kept for good (a trunk's branch points); a group saves each replica's own too.
    self.keep_steps = tuple(config.train.checkpoint_steps)
    self.stop_signal = []
    self.state = None
    self.throughput = None

  def training(self) -> list[Member]:
    return [member for member in self.members if not member.diverged]

  def run(self, state) -> bool:
    """Steps to the budget or a SIGTERM / SIGINT; returns whether it stopped on one (checkpointed;
    self.stop_signal holds it)."""
    self.state = state
    plan, first_step = self.plan, host_step(state)
    for stop in (signal.SIGTERM, signal.SIGINT):
      signal.signal(stop, lambda signum, frame: self.stop_signal.append(signum))
    sources = [member.source for member in self.members]
    eval_batches = self.batches.eval(sources, plan.eval_sequences)
    self.throughput = Throughput(plan.tokens_per_step, plan.flops_per_token, plan.n_params_total,
                                 peak_flops_per_second(), plan.replicas)
    progress = tracking.progress_bar(plan.steps, first_step)
    pending = None  # (steps done, metrics, eval loss): read on the host one step late
    train_batches = self.batches.train(sources, first_step, plan.steps)
    for step, batch in zip(range(first_step, plan.steps), train_batches):
      if self.stop_signal or not self.training():
        break
      # Tracing and compiling the first step are not training throughput.
      with self.throughput.excluded() if step == first_step else contextlib.nullcontext():
        self.state, metrics = self.trainer.train_step(self.state, batch)
      done = step + 1
      is_eval = done % plan.eval_every == 0 or done == plan.steps
      eval_loss = self._evaluate(eval_batches) if is_eval else None
      if pending is not None:
        self._host_side(*pending, progress)
      pending = (done, metrics, eval_loss)
      progress.update(1)
      checkpoint_due = done % plan.checkpoint_every == 0 or done in self.keep_steps
      if checkpoint_due and done < plan.steps and self.training():
        self._host_side(*pending, progress)  # the checkpoint's metrics are on disk before it is
        pending = None
        if self.training():
          with self.throughput.excluded():
            self.save(done)
    if pending is not None and self.training():
      self._host_side(*pending, progress)
    progress.close()
    if self.stop_signal and self.training():
      self.save(host_step(self.state), wait=True)
      return True
    return False

  def _evaluate(self, eval_batches):
    """The eval loss, its time (the step before it is awaited first) left out of the throughput."""
    jax.block_until_ready(self.state)
    with self.throughput.excluded():
      return jax.block_until_ready(self.trainer.evaluate(self.state, eval_batches))

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
    eval_losses = None if eval_loss is None else np.atleast_1d(jax.device_get(eval_loss))
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
      if eval_losses is not None:
        row["eval_loss"] = float(eval_losses[i])
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
    if self.config.init_from and status == rundir.COMPLETED:
      result.update(finetune.forgetting_figures(member.config, self.trainer, self.batches,
                                                self.state, self.plan, member.source,
                                                self.members.index(member)))
    if self.primary:
      rundir.write_result(member.workdir, result)
    member.log.summarise(result)
    member.log.close()
