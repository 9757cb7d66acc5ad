"""A trained model out of a run directory: the parameters of its newest checkpoint, for
generation, quantization and continued pre-training."""
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from core import rundir
from model import sizing
from model.transformer import Transformer


def load_model(workdir: str):
  """The trained model of a run directory (newest checkpoint) and its resolved config."""
  config = rundir.read_config(workdir)
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
  mgr = ocp.CheckpointManager(os.path.abspath(rundir.path(workdir, rundir.CHECKPOINTS)))
  step = mgr.latest_step()
  if step is None:
    raise FileNotFoundError(f"{workdir} has no complete checkpoint to load")
  restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_params)
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(item={"params": abstract_params},
                                   restore_args={"params": restore_args}, partial_restore=True)))
  mgr.close()
  return restored["state"]["params"]
