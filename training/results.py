"""What a run reports when it ends: result.json's figures and a group's replica records
(training/finetune.py adds what a fine-tuning run reports)."""
import os

from core import rundir
from data import pool
from model.families import OBJECTIVES
from training.plan import config_hash


def make_result(config, plan, source, last_row, status, wall_seconds) -> dict:
  """result.json of a run (or one replica) from its plan and its last metrics row."""
  tokens = last_row.get("tokens", 0)
  return {
      "status": status,
      "n_params": plan.n_params,
      "n_params_total": plan.n_params_total,
      "tokens": tokens,
      "flops": tokens * plan.flops_per_token,
      "flops_6nd": 6 * plan.n_params * tokens,
      "flops_per_token": plan.flops_per_token,
      "final_train_loss": last_row.get("train_loss"),
      "final_eval_loss": last_row.get("eval_loss"),
      "final_eval_bpb": last_row.get("eval_bpb"),  # text sources: bits per byte of the eval text
      **({"eval_sets": last_row["eval_sets"]} if "eval_sets" in last_row else {}),
      # The source's floor is for next-token prediction: it bounds the decoder's loss only.
      "loss_floor": (source.loss_floor(plan.eval_sequences) if config.model.family == "decoder"
                     else None),
      "wall_seconds": wall_seconds,
      "config_hash": config_hash(config),
      "family": config.model.family,
      "objective": OBJECTIVES[config.model.family],
      "steps": last_row.get("step", 0),
      "batch_size": plan.batch_size,
      "seq_len": plan.seq_len,
      "lr": config.train.lr,
      "n_layer": config.model.n_layer,
      "d_model": config.model.d_model,
      "n_heads": config.model.n_heads,
      "d_ff": config.model.d_ff,
      "seed": config.seed,
      "data": source.describe(),
      **pool.figures(source, tokens),  # unique_tokens and epochs (data/pool.py)
  }


def failed_result(error: BaseException, run_hash: str, plan) -> dict:
  """result.json (or group.json) of a run that stopped on an error; a rerun retries it."""
  return {"status": rundir.FAILED, "error": f"{type(error).__name__}: {error}",
          "config_hash": run_hash, "n_params": plan.n_params,
          "n_params_total": plan.n_params_total}


def replica_record(member, status: str) -> dict:
  """One replica's entry in group.json."""
  return {"workdir": os.path.abspath(member.workdir), "seed": member.config.seed, "lr": member.config.train.lr,
          "config_hash": config_hash(member.config),
          "status": rundir.DIVERGED if member.diverged else status}

