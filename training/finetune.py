"""Fine-tuning a trained run (init_from): its starting state, and what result.json reports of it.

A fine-tuning run starts from init_from's final weights: in "params" (method full: every weight
trains, with a fresh optimizer and schedule) or in "frozen" (method lora: only the adapters train,
starting at B = 0, so the adapted model starts exactly as the base). Every replica of a group
starts from the same weights. At the end it reports, besides the fine-tuning data's eval loss and
floor: the original data's eval loss before and after (forgetting) and the fine-tuning data's
loss before, each measured in this run on the same eval sequences, with the original data's floor.

Every run (pre-training too) reports its trainable parameters, its optimizer state in bytes
(per model, counted from the state's arrays) and its median tokens/s over the logged rows.
"""
import numpy as np

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P

import data
from core import rundir
from model import loading, lora


def weights_key(state) -> str:
  """Where a run's starting weights go: the frozen base (LoRA) or the trained parameters."""
  return "frozen" if "frozen" in state else "params"


def restored_weights(init_from: str, trainer, key: str):
  """init_from's final weights shaped and sharded as state[key] (every replica the same)."""
  abstract = trainer.abstract_state[key]
  if trainer.replicas == 1:
    return loading.restore_params(init_from, abstract)
  one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape[1:], x.dtype, sharding=NamedSharding(trainer.mesh, P(*x.sharding.spec[1:]))),
                     abstract)
  weights = loading.restore_params(init_from, one)
  stack = jax.jit(lambda tree: jax.tree.map(
      lambda x: jnp.broadcast_to(x, (trainer.replicas,) + x.shape), tree),
                  out_shardings=trainer.state_sharding[key])
  return stack(weights)


def start_from(init_from: str, trainer, state):
  """A freshly initialised state with init_from's weights where this method starts from them."""
  key = weights_key(state)
  return {**state, key: restored_weights(init_from, trainer, key)}


def initial_state(init_from: str, trainer, state):
  """`state` with the weights it started from: zero adapters (LoRA) or init_from's (full)."""
  if weights_key(state) == "frozen":
    return {**state, "params": jax.tree.map(jnp.zeros_like, state["params"])}
  return {**state, "params": restored_weights(init_from, trainer, "params")}


def per_model(trainer, leaves_of: str, measure) -> int:
  """The sum of `measure` over one model's leaves of state[leaves_of] (a group's divided out)."""
  total = sum(measure(x) for x in jax.tree.leaves(trainer.abstract_state[leaves_of]))
  return int(total // trainer.replicas)


def median_tokens_per_sec(workdir: str) -> float | None:
  """The median of the run's logged tokens/s, the first row (which holds compilation) left out."""
  speeds = [row["tokens_per_sec"] for row in rundir.read_metrics(workdir)
            if row.get("tokens_per_sec")]
  speeds = speeds[1:] or speeds
  return float(np.median(speeds)) if speeds else None


def run_figures(trainer, workdir: str) -> dict:
  """What every run reports of its training cost: trainable parameters, optimizer bytes, speed."""
  return {
      "trainable_params": per_model(trainer, "params", lambda x: x.size),
      "optimizer_state_bytes": per_model(trainer, "opt_state",
                                         lambda x: x.size * np.dtype(x.dtype).itemsize),
      "median_tokens_per_sec": median_tokens_per_sec(workdir),
  }


def method_of(config) -> dict:
  """result.json's `finetune`: the method, and the adapters' settings for LoRA."""
  settings = lora.settings_of(config)
  if settings is None:
    return {"method": "full"}
  return {"method": "lora", "lora_rank": settings.rank, "lora_alpha": settings.alpha,
          "lora_targets": ",".join(settings.targets)}


def forgetting_figures(config, trainer, batches, state, plan, source, index: int) -> dict:
  """Losses before and after on the original data (forgetting) and the fine-tuning data's
  before, for replica `index` (0 for one model), on the eval sequences of this run."""
  original_config = rundir.read_config(config.init_from)
  original_config.train.seq_len = plan.seq_len
  original = data.make_source(original_config)
  start = initial_state(config.init_from, trainer, state)
  group = [original] * trainer.replicas
  original_batches = batches.eval(group, plan.eval_sequences)
  own_batches = batches.eval([source] * trainer.replicas, plan.eval_sequences)
  loss = lambda s, b: float(np.atleast_1d(jax.device_get(trainer.evaluate(s, b)))[index])
  before, after = loss(start, original_batches), loss(state, original_batches)
  floor = (original.loss_floor(plan.eval_sequences) if config.model.family == "decoder"
           else None)
  return {"init_from": config.init_from, "finetune": method_of(config),
          "original_data_eval_loss_before": before, "original_data_eval_loss": after,
          "forgetting": after - before, "original_data_loss_floor": floor,
          "finetune_eval_loss_before": loss(start, own_batches)}
