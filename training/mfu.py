"""The device's peak FLOP/s and model FLOPs utilisation (MFU)."""
import time

import jax
import jax.numpy as jnp

# Dense bf16 datasheet figures; the first name found in the device kind wins (PCIe before SXM).
GPU_PEAK_BF16 = {"h100 pcie": 756e12, "h200": 989e12, "h100": 989e12, "a100": 312e12,
                 "l4": 121e12, "a10": 125e12}
_MEASURED_PEAK = {}


def peak_flops_per_second(device=None) -> float:
  """The device's peak FLOP/s for MFU: datasheet dense bf16 on GPUs, a measured matmul on CPUs
  (once per process; benchmarks/throughput.py measures it again between its repeats)."""
  device = device or jax.devices()[0]
  kind = device.device_kind.lower()
  for name, peak in GPU_PEAK_BF16.items():
    if name in kind:
      return peak
  if device.platform == "cpu":
    if "cpu" not in _MEASURED_PEAK:
      _MEASURED_PEAK["cpu"] = measure_matmul_peak()
    return _MEASURED_PEAK["cpu"]
  return float("nan")


def measure_matmul_peak(size: int = 1024, repeats: int = 10) -> float:
  """Best-of-`repeats` FLOP/s of a float32 [size, size] matmul on the default device.

  It runs as the model's matmuls do (XLA's CPU dot kernel, all intra-op threads), so MFU on a CPU
  is a fraction of what this host delivers, in the same conditions, to a large dense matmul.
  """
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best
