"""A trained model out of a run directory: the parameters of its newest checkpoint, for
generation, quantization, export and fine-tuning (init_from). A LoRA run's adapters are merged
into its base weights on the way out (model/lora.py), so every reader gets a plain model."""
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from core import rundir
from model import lora, objectives, sizing


def _manager(workdir: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(os.path.abspath(rundir.path(workdir, rundir.CHECKPOINTS)))


def latest_step(workdir: str) -> int:
  mgr = _manager(workdir)
  step = mgr.latest_step()
  mgr.close()
  if step is None:
    raise FileNotFoundError(f"{workdir} has no complete checkpoint to load")
  return step


def _restore(workdir: str, abstract: dict) -> dict:
  """The entries of `abstract` ({"params": ..., "frozen": ...}) from the newest checkpoint's
  train state, shaped (and sharded) like them."""
  step = latest_step(workdir)
  mgr = _manager(workdir)
  restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args,
                                   partial_restore=True)))
  mgr.close()
  return restored["state"]


def load_model(workdir: str, merged: bool = True):
  """The trained model of a run directory (newest checkpoint) and its resolved config; a LoRA
  run's adapters merged into the base weights unless merged=False."""
  config = rundir.read_config(workdir)
  model_cfg = sizing.model_config_from(config.model, vocab_size=config.model.vocab_size,
                                       seq_len=config.train.seq_len)
  settings = lora.settings_of(config)
  # Shapes only: the parameters come from the checkpoint, so initialising them would be wasted.
  model = nnx.eval_shape(lambda: objectives.build_model(model_cfg, nnx.Rngs(0), settings))
  graphdef, *weights, rest = nnx.split(model, *lora.param_filters(settings), ...)
  on_host = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = {key: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=on_host),
                                state) for key, state in zip(("params", "frozen"), weights)}
  restored = jax.tree.map(np.asarray, _restore(workdir, abstract))
  model = nnx.merge(graphdef, *(restored[key] for key in abstract), rest)
  return (lora.merge(model) if settings is not None and merged else model), config


def restore_params(workdir: str, abstract_params):
  """The parameters of a run's newest checkpoint, shaped (and sharded) like `abstract_params`;
  a LoRA run's are its merged weights."""
  if lora.settings_of(rundir.read_config(workdir)) is None:
    return _restore(workdir, {"params": abstract_params})["params"]
  merged = nnx.state(load_model(workdir)[0], nnx.Param)
  return jax.tree.map(lambda x, a: jax.device_put(np.asarray(x), a.sharding), merged,
                      abstract_params)


def save_params(workdir: str, step: int, params) -> None:
  """A checkpoint of plain parameters as a train state's "params" (what restore_params reads)."""
  mgr = ocp.CheckpointManager(os.path.abspath(rundir.path(workdir, rundir.CHECKPOINTS)),
                              options=ocp.CheckpointManagerOptions(create=True))
  mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": params})))
  mgr.wait_until_finished()
  mgr.close()
