"""Tracking a run: metrics.jsonl (the authoritative record) mirrored to W&B, and the progress bar
(tokens/s and MFU are training/mfu.py's)."""
import json
import os
import uuid

import jax

from core import files, rundir


class MetricsLog:
  """One model's metrics.jsonl, mirrored to its W&B run when there is one."""

  def __init__(self, workdir: str | None, resumed_step: int, wandb_run):
    """workdir None: a process that is not the primary keeps the last row but writes nothing."""
    self.last_row, self.file, self.wandb_run = {}, None, wandb_run
    if workdir is None:
      return
    path = rundir.path(workdir, rundir.METRICS)
    # Rows past the checkpoint we resume from (and any line cut short by a crash) are dropped and
    # rewritten by the resumed run.
    kept = [row for row in rundir.read_metrics(workdir) if row.get("step", 0) <= resumed_step]
    files.write_jsonl_atomic(path, kept)
    self.last_row = kept[-1] if kept else {}
    self.file = open(path, "a")

  def write(self, row: dict) -> None:
    self.last_row = row
    if self.file is not None:
      self.file.write(json.dumps(row) + "\n")
      self.file.flush()
    if self.wandb_run is not None:
      self.wandb_run.log(row)

  def summarise(self, result: dict) -> None:
    """The run's final figures (result.json's scalars) in the W&B run's summary."""
    if self.wandb_run is not None:
      self.wandb_run.summary.update({k: v for k, v in result.items() if not isinstance(v, dict)})

  def close(self):
    if self.file is not None:
      self.file.close()
      self.file = None
    if self.wandb_run is not None:
      self.wandb_run.finish()
      self.wandb_run = None


def start_wandb(config, plan, workdir: str, run_hash: str):
  """An offline (default) or online W&B run whose id is kept in the workdir across resumes."""
  if config.wandb.mode == "disabled" or jax.process_index() != 0:
    return None
  import wandb  # pylint: disable=g-import-not-at-top
  run_id = rundir.read_wandb_run_id(workdir)
  if run_id is None:
    run_id = f"{run_hash}-{uuid.uuid4().hex[:8]}"
    rundir.write_wandb_run_id(workdir, run_id)
  summary = {"N": plan.n_params, "N_total": plan.n_params_total, "D": plan.tokens,
             "C": plan.flops_per_token * plan.tokens, "C_6ND": 6 * plan.n_params * plan.tokens,
             "steps": plan.steps, "config_hash": run_hash}
  run = wandb.init(
      project=config.wandb.project, entity=config.wandb.entity or None,
      group=config.wandb.group or None, name=os.path.basename(os.path.abspath(workdir)),
      tags=[t for t in config.wandb.tags.split(",") if t], mode=config.wandb.mode,
      dir=workdir, id=run_id, resume="allow", config={**config.to_dict(), "scaling": summary})
  run.define_metric("tokens")
  run.define_metric("flops")
  for metric in ("train_loss", "eval_loss", "lr", "grad_norm", "tokens_per_sec", "mfu"):
    run.define_metric(metric, step_metric="tokens")
  return run


def progress_bar(total_steps: int, first_step: int):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total_steps, initial=first_step, unit="step", mininterval=1.0,
              disable=jax.process_index() != 0, dynamic_ncols=True)
