"""W&B for a run: optional and never fatal, one history across resumes, keys a researcher slices by.

metrics.jsonl is the record; W&B mirrors it. Every call into wandb goes through `Tracker`, whose
first error (a bad WANDB_MODE, no login, a server that does not answer within
`wandb.init_timeout`, a failure mid-run) becomes one warning line and turns W&B off for the rest
of the process, so training always goes on.

One history: each row is logged at its optimiser step (`step=`), and a run reopens the W&B run
whose id it keeps in the run directory (`wandb_run_id`). A resumed run logs again the rows it
kept (those up to its checkpoint): an online run skips the steps the server already holds
(`starting_step`), and an offline segment is complete on its own, since a segment killed with
SIGKILL loses what its wandb-core had not written. Its offline folders synced (or read) in order,
each step is kept once (W&B ignores a step below the one it holds). A SIGTERM marks the run
preempting and ends it with exit code 143.
"""
import os
import sys
import uuid

import jax

from core import rundir
from core.config import one_line
from model.families import OBJECTIVES

# The metrics W&B plots against tokens; eval_loss also keeps its minimum in the summary.
TOKEN_METRICS = ("train_loss", "eval_loss", "lr", "grad_norm", "tokens_per_sec", "mfu", "mfu_6n")
_off = []  # why W&B is off in this process, once it failed: later runs skip it without waiting


def turn_off(reason: str) -> None:
  if not _off:
    print(f"warning: W&B is off ({reason}); training goes on, metrics.jsonl is the record",
          file=sys.stderr, flush=True)
  _off.append(reason)


def logged_in() -> bool:
  """Whether W&B holds credentials for its server, judged without a prompt or a network call."""
  try:
    import wandb  # pylint: disable=g-import-not-at-top
    return bool(wandb.login(prompt=False, verify=False))
  except Exception:  # pylint: disable=broad-except  (a bad WANDB_MODE, an unreadable .netrc, ...)
    return False


def slicing_keys(config, plan, workdir: str, run_hash: str) -> dict:
  """Flat config keys beside the nested config: what runs are grouped and filtered by."""
  return {"N": plan.n_params, "N_total": plan.n_params_total, "D": plan.tokens,
          "C": plan.flops_per_token * plan.tokens, "C_6ND": 6 * plan.n_params * plan.tokens,
          "budget": config.wandb.budget or None, "family": config.model.family,
          "objective": OBJECTIVES[config.model.family], "lr": config.train.lr,
          "batch_size": plan.batch_size, "seed": config.seed, "steps": plan.steps,
          "run_id": os.path.basename(os.path.abspath(workdir)), "config_hash": run_hash}


class Tracker:
  """One W&B run behind the calls training makes; a no-op once anything in it failed."""

  def __init__(self, run):
    self.run = run
    # An online run resumed past its checkpoint: the server already holds the steps before this.
    self.first_step = run.starting_step
    self.logged_keys = set()

  def _call(self, action) -> None:
    """action(run), unless W&B is off; its first error turns it off."""
    if self.run is None:
      return
    try:
      action(self.run)
    except Exception as error:  # pylint: disable=broad-except  (W&B never stops training)
      self.run = None
      turn_off(one_line(error))

  def log(self, row: dict) -> None:
    self.logged_keys.update(row)
    if row["step"] >= self.first_step:
      self._call(lambda run: run.log(row, step=row["step"], commit=True))

  def summarise(self, result: dict) -> None:
    """result.json's figures in the summary, except the history's own (lr, tokens, flops stay the
    last logged values; the peak lr is the config's `lr`)."""
    figures = {k: v for k, v in result.items()
               if not isinstance(v, dict) and k not in self.logged_keys}
    self._call(lambda run: run.summary.update(figures))

  def finish(self, exit_code: int) -> None:
    if exit_code == rundir.EXIT_PREEMPTED:
      self._call(lambda run: run.mark_preempting())
    self._call(lambda run: run.finish(exit_code=exit_code))
    self.run = None


def start(config, plan, workdir: str, run_hash: str) -> Tracker | None:
  """The run's W&B run (offline by default), resumed under the id kept in `workdir`; None when
  W&B is disabled, off, or not this process's job."""
  if config.wandb.mode == "disabled" or jax.process_index() != 0 or _off:
    return None
  try:
    return Tracker(_init(config, plan, workdir, run_hash))
  except Exception as error:  # pylint: disable=broad-except  (W&B never stops training)
    turn_off(one_line(error))
    return None


def _wandb(mode: str):
  """The wandb module, ready for a run in `mode`; raises (one line) when it cannot be."""
  import wandb  # pylint: disable=g-import-not-at-top  (slow import, only when logging)
  # This process's runs get their own wandb-core: the core of a parent process that used wandb
  # (WANDB_SERVICE is inherited) would keep a SIGKILLed run open, and its rerun could not reopen
  # it ("run ID is in use").
  os.environ.pop("WANDB_SERVICE", None)
  if mode == "online" and not logged_in():  # rather than wandb's prompt, which would wait
    raise RuntimeError("wandb.mode=online without a W&B login: run `wandb login` or set "
                       "WANDB_API_KEY")
  return wandb


def _init(config, plan, workdir: str, run_hash: str):
  wandb = _wandb(config.wandb.mode)
  run_id = rundir.read_wandb_run_id(workdir)
  if run_id is None:
    run_id = f"{run_hash}-{uuid.uuid4().hex[:8]}"
    rundir.write_wandb_run_id(workdir, run_id)
  run = wandb.init(
      project=config.wandb.project, entity=config.wandb.entity or None,
      group=config.wandb.group or None, job_type="train",
      name=os.path.basename(os.path.abspath(workdir)),
      tags=[t for t in config.wandb.tags.split(",") if t], mode=config.wandb.mode, dir=workdir,
      id=run_id, resume="allow", reinit="create_new",  # one run per replica of a group
      config={**config.to_dict(), **slicing_keys(config, plan, workdir, run_hash)},
      settings=wandb.Settings(init_timeout=config.wandb.init_timeout))
  if run.id != run_id:  # a sweep agent's WANDB_RUN_ID wins over ours: keep the one W&B used
    rundir.write_wandb_run_id(workdir, run.id)
  run.define_metric("tokens")
  run.define_metric("flops")
  for metric in TOKEN_METRICS:
    run.define_metric(metric, step_metric="tokens",
                      summary="min,last" if metric == "eval_loss" else None)
  return run


def record(workdir: str, run_id: str, mode: str, job_type: str, config: dict,
           summary: dict) -> None:
  """A W&B run of a config and a summary only (a sweep agent's account of a row); never fatal."""
  if mode == "disabled" or _off:
    return
  try:
    wandb = _wandb(mode)
    run = wandb.init(id=run_id, mode=mode, dir=workdir, job_type=job_type, config=config,
                     resume="allow", reinit="create_new")
    run.summary.update(summary)
    run.finish()
  except Exception as error:  # pylint: disable=broad-except  (W&B never stops a sweep)
    turn_off(one_line(error))
