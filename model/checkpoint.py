"""Orbax checkpoints of a run: the train state plus a little JSON metadata, and loading for inference.

Saves are asynchronous (training continues while the files are written) and always awaited before
the process exits: an async save still in flight at exit is lost. A save cut short by a kill leaves
a `*.orbax-checkpoint-tmp*` directory that `latest_step()` ignores, so resuming uses the previous one.
"""
import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), enable_async_checkpointing=True,
                                         create=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options)


def save(mgr: ocp.CheckpointManager, step: int, state, meta: dict) -> None:
  """Saves the train state and `meta` (host-side counters the run needs to resume exactly)."""
  mgr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"step": step, **meta})))


def restore_latest(mgr: ocp.CheckpointManager, abstract_state):
  """(state, meta) from the newest complete checkpoint onto the given shardings, or (None, {})."""
  step = mgr.latest_step()
  if step is None:
    return None, {}
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored["state"], restored["meta"]


def discard_run(workdir: str) -> None:
  """Removes what a previous run left in `workdir` (for --force), keeping unrelated files."""
  for name in ("checkpoints", "wandb"):
    shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  for name in ("config.json", "metrics.jsonl", "result.json", "wandb_run_id"):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      os.remove(path)


def load_model(workdir: str):
  """The trained model of a run directory (newest checkpoint) and its resolved config."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from model import sizing  # pylint: disable=g-import-not-at-top
  from model.transformer import Transformer  # pylint: disable=g-import-not-at-top
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{workdir} is not a run directory: it has no config.json")
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model_cfg = sizing.model_config_from(config.model, vocab_size=config.model.vocab_size,
                                       seq_len=config.train.seq_len)
  # Shapes only: the parameters come from the checkpoint, so initialising them would be wasted.
  model = nnx.eval_shape(lambda: Transformer(model_cfg, rngs=nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  on_host = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=on_host), params)
  params = jax.tree.map(np.asarray, restore_params(workdir, abstract))
  return nnx.merge(graphdef, params, rest), config


def restore_params(workdir: str, abstract_params):
  """The parameters of a run's newest checkpoint, shaped (and sharded) like `abstract_params`."""
  mgr = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"))
  step = mgr.latest_step()
  if step is None:
    raise FileNotFoundError(f"{workdir} has no complete checkpoint to load")
  restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_params)
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(item={"params": abstract_params},
                                   restore_args={"params": restore_args}, partial_restore=True)))
  mgr.close()
  return restored["state"]["params"]
