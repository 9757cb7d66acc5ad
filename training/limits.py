"""What a run may ask for: the counters and sizes a plan must fit, and this machine's memory.

`check` (called by plan.resolve, so train.py, sweeps and the memory planner all refuse the same
plans) holds the machine-independent bounds: the step counter and the seeds are int32 arrays of
the train state (training/steps.py) and the model is at most sizing.MAX_PARAMS. `check_memory`
(called by train.py where the run trains: a plan may be made on another machine than the one that
trains it) refuses a run whose memory planner estimate (training/memory.py) exceeds what this
machine holds: the accelerator's allocator limit, or on a CPU MEMORY_MARGIN of the host's
available memory, shared by its CPU devices. Each refusal is one ConfigError line, before
anything is compiled or written.
"""
import os

import jax

from core.config import ConfigError
from model import lora, sizing
from training import sharding

INT32_MAX = 2 ** 31 - 1
# Of the host's available memory, the share a CPU run's estimate may take: the rest is the
# process's own (Python, XLA's compiler, the data) and the other processes'.
MEMORY_MARGIN = 0.9
GIB = 2 ** 30


def check(config, model_cfg, plan) -> None:
  """Raises ConfigError when the plan's counts do not fit the counters that hold them."""
  if plan.steps > INT32_MAX:
    raise ConfigError(
        f"train.tokens={config.train.tokens:g} is {plan.steps:.3g} steps of {plan.tokens_per_step:,} "
        f"tokens, past the step counter's {INT32_MAX:,} (int32); lower train.tokens or raise "
        "train.batch_size")
  for seed in (config.seed, *plan.replica_seeds):
    if not -INT32_MAX - 1 <= seed <= INT32_MAX:
      raise ConfigError(f"seed {seed} does not fit the train state's int32 seed; give a seed "
                        f"between 0 and {INT32_MAX:,}")
  if plan.n_params_total > sizing.MAX_PARAMS:
    raise ConfigError(
        f"the model ({model_cfg.n_layer} layers, d_model {model_cfg.d_model}) has "
        f"{plan.n_params_total:.3g} parameters, past the {sizing.MAX_PARAMS:.0e} this code sizes "
        "and counts; lower model.target_params or the shape")


def host_available_bytes() -> int | None:
  """The host memory available to a new allocation now (MemAvailable), or None where unknown."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError):
    return None


def memory_here() -> tuple[float | None, str]:
  """(bytes one device of this process may use, what they are) for the memory check."""
  from training import memory  # pylint: disable=g-import-not-at-top  (it imports training.plan)
  limit = memory.device_memory_limit()
  if limit is not None:
    return limit, f"the {jax.default_backend()} device's {limit / GIB:.2f} GiB"
  available = host_available_bytes()
  if available is None:
    return None, "unknown"
  devices = jax.local_device_count()
  share = MEMORY_MARGIN * available / devices
  return share, (f"{MEMORY_MARGIN:.0%} of the host's {available / GIB:.2f} GiB available"
                 + (f", shared by {devices} CPU devices" if devices > 1 else ""))


def check_memory(config, model_cfg, plan, n_devices: int) -> None:
  """Raises ConfigError when the run's estimated memory per device exceeds this machine's.

  The weights alone (4 B per parameter, over the fsdp axis at best) are checked first, so a model
  far too large is refused without tracing it; a run within `upper_bound` of the memory fits
  without the planner's full estimate (which traces the model); the others get that estimate.
  """
  from training import memory  # pylint: disable=g-import-not-at-top
  limit, what = memory_here()
  if limit is None:
    return
  # A group of replicas holds one model's weights, optimizer state and activations per replica.
  limit, what = limit / plan.replicas, what + (f", for {plan.replicas} replicas"
                                               if plan.replicas > 1 else "")
  check_weights(config, plan, limit, what)
  if lora.settings_of(config) is None and upper_bound(config, model_cfg, plan, n_devices) <= limit:
    return
  try:
    memory.check_fits(config, limit, n_devices)
  except ConfigError as error:
    raise ConfigError(f"{error} ({what})") from None


def check_weights(config, plan, limit: float | None, what: str) -> None:
  """Raises ConfigError when the weights alone (4 B per parameter, over the fsdp axis at best)
  exceed `limit` bytes per device: a closed form, so a model far too large is refused without
  tracing it (sweeps/plan.py checks every planned run so, against the memory where it trains)."""
  weights = 4 * plan.n_params_total / config.mesh.fsdp
  if limit is not None and weights > limit:
    raise ConfigError(
        f"{config.name}: its {plan.n_params_total:.3g} parameters alone need ~{weights / GIB:.1f} "
        f"GiB per device, more than {what}; lower model.target_params or shard with mesh.fsdp")


def upper_bound(config, model_cfg, plan, n_devices: int) -> float:
  """Bytes per device at least memory.estimate's for any precision, from the counts alone: 20 B
  per parameter (stored as float32, master copy, gradients, AdamW), as if fsdp sharded nothing,
  4 B more (the weight copies), 4 B for an accumulator, and float32 activations with the whole
  attention kept."""
  from training import memory  # pylint: disable=g-import-not-at-top
  data_axis, fsdp = sharding.mesh_shape(config, n_devices)
  batch = plan.batch_size // (data_axis * fsdp)
  micro = batch // config.train.grad_accum
  per_layer, outside = memory.activation_bytes(model_cfg, micro, 4, flash_attention=False)
  per_parameter = 20 + 4 + (4 if config.train.grad_accum > 1 else 0)
  return (per_parameter * plan.n_params_total
          + model_cfg.n_layer * per_layer + outside + 4 * batch * (plan.seq_len + 1))
