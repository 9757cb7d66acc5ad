"""The device mesh (data x fsdp) and the rule for which axis of an array fsdp splits."""
import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from core.config import ConfigError


def mesh_shape(config, n_devices: int) -> tuple[int, int]:
  fsdp = config.mesh.fsdp
  data_axis = n_devices // fsdp if config.mesh.data == -1 else config.mesh.data
  if fsdp <= 0 or data_axis <= 0 or data_axis * fsdp != n_devices:
    raise ConfigError(f"mesh data={config.mesh.data} x fsdp={fsdp} does not cover the "
                      f"{n_devices} devices; set mesh.data=-1 or sizes whose product is {n_devices}")
  return data_axis, fsdp


def make_mesh(config):
  shape = mesh_shape(config, jax.device_count())
  return jax.make_mesh(shape, ("data", "fsdp"), axis_types=(AxisType.Auto, AxisType.Auto))


def fsdp_axis(shape, fsdp: int, is_embedding: bool = False) -> int | None:
  """The axis an array is split along over the fsdp mesh axis (ZeRO-3 style), or None.

  The largest axis the fsdp size divides. An embedding table is split along its rows (vocabulary,
  positions) or not at all: split along d_model, XLA propagates that split to the activations
  instead of the batch's, and memory per device grows 2.5x (docs/results/2026-11-23-memory-planner.md).
  """
  if fsdp <= 1:
    return None
  axes = range(min(1, len(shape))) if is_embedding else range(len(shape))
  divisible = [axis for axis in axes if shape[axis] % fsdp == 0]
  return max(divisible, key=lambda axis: shape[axis]) if divisible else None


def fsdp_sharding(mesh, shape, is_embedding: bool = False) -> NamedSharding:
  spec = [None] * len(shape)
  axis = fsdp_axis(shape, mesh.shape["fsdp"], is_embedding)
  if axis is not None:
    spec[axis] = "fsdp"
  return NamedSharding(mesh, P(*spec))
