"""Process setup before anything compiles: XLA options, the persistent compilation cache and
joining a multi-host job (malloc on huge pages comes earlier, before JAX: training/hugepages.py)."""
import functools
import os

import jax
import jax.numpy as jnp


# XLA:CPU sends matmuls to YNNPACK by default; XLA's own (Eigen) dots ran this model's train step
# faster on the CPUs measured (benchmarks/throughput.py).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiler_options(platform: str) -> dict | None:
  """The XLA options the train and eval steps are compiled with on `platform` (None: defaults).

  The CPU option is experimental: where this XLA does not know it, the defaults are used.
  """
  return CPU_COMPILER_OPTIONS if platform == "cpu" and _xla_accepts_cpu_options() else None


@functools.cache
def _xla_accepts_cpu_options() -> bool:
  try:
    jax.jit(lambda x: x @ x, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.ones((2, 2))).compile()
    return True
  except Exception:  # pylint: disable=broad-except  (an XLA without the option)
    return False


def enable_compilation_cache(path: str) -> None:
  """Persists compiled steps on disk: a second run of the same shapes skips XLA compilation.
  Call it before anything compiles: JAX decides once per process whether the cache is used."""
  if path:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def maybe_initialize_distributed():
  """Joins a multi-host job when the environment describes one (explicit variables or SLURM)."""
  # A process that stops answering is declared dead after this long and the others exit with an
  # error, rather than waiting forever in a collective.
  heartbeat = int(os.environ.get("JAX_HEARTBEAT_TIMEOUT_SECONDS", "100"))
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]), heartbeat_timeout_seconds=heartbeat)
  elif int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat)
