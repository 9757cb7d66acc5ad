"""Throughput and model FLOPs utilisation (MFU): the device's peak FLOP/s and each row's tokens/s.

Two MFU figures per row, both against the same peak: `mfu` with the counted training FLOPs per
token (Chinchilla Appendix F: embeddings, the full T x T attention, logits; model/sizing.py), and
`mfu_6n` with 6 N per token, N every parameter (PaLM's 6N, without its 12 L H Q T attention term),
the figure most published MFUs use; counted FLOPs exceed 6N at small N and long contexts, so
`mfu_6n` is the conservative one. A group of K replicas trains K models' tokens in each step: its
rows report the group's tokens/s and MFU (what the device does), and say `replicas: K`.
"""
import argparse
import contextlib
import fcntl
import json
import os
import platform
import socket
import sys
import time

import jax
import jax.numpy as jnp

from core import files

# Dense bf16 datasheet figures; the first name found in the device kind wins (PCIe before SXM).
GPU_PEAK_BF16 = {"h100 pcie": 756e12, "h200": 989e12, "h100": 989e12, "a100": 312e12,
                 "l4": 121e12, "a10": 125e12}
# A CPU's peak is measured once per machine and kept here: measured again in every process, it
# follows the machine's load (docs/results/2026-11-27-throughput-and-mfu.md).
# A first measurement under load is low: `python -m training.mfu --measure` on a quiet machine
# (or benchmarks/throughput.py) raises it.
PEAK_CACHE = os.path.join("~", ".cache", "scaling", "cpu_peak_flops.json")
_PEAKS = {}


def peak_flops_per_second(device=None) -> float:
  """The device's peak FLOP/s for MFU: datasheet dense bf16 on GPUs, on CPUs the machine's
  measured matmul peak (cpu_peak)."""
  device = device or jax.devices()[0]
  kind = device.device_kind.lower()
  for name, peak in GPU_PEAK_BF16.items():
    if name in kind:
      return peak
  if device.platform == "cpu":
    if "cpu" not in _PEAKS:
      _PEAKS["cpu"] = cpu_peak()
    return _PEAKS["cpu"]
  return float("nan")


def machine_key() -> str:
  """What the CPU peak depends on: the host, its processor, its cores and the JAX that runs it."""
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                   model)
  except OSError:
    pass
  return f"{socket.gethostname()} | {model} | {os.cpu_count()} cpus | jax {jax.__version__}"


def cpu_peak(cache_path: str = PEAK_CACHE) -> float:
  """This machine's CPU peak from `cache_path`, measured (best of many repeats) and written there
  the first time; processes that start together wait for one measurement instead of each taking
  one under the others' load. A figure that cannot be cached is measured for this process."""
  path, key = os.path.expanduser(cache_path), machine_key()
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      peaks = _read_peaks(path)
      if key not in peaks:
        peaks[key] = measure_matmul_peak(repeats=30)
        files.write_json_atomic(path, peaks)
      return peaks[key]
  except OSError:
    return measure_matmul_peak(repeats=30)


def remember_higher_cpu_peak(peak: float, cache_path: str = PEAK_CACHE) -> None:
  """Raises this machine's cached CPU peak to `peak` if that is higher (a benchmark measured it)."""
  path, key = os.path.expanduser(cache_path), machine_key()
  with contextlib.suppress(OSError):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      peaks = _read_peaks(path)
      if peak > peaks.get(key, 0.0):
        peaks[key] = peak
        files.write_json_atomic(path, peaks)


def _read_peaks(path: str) -> dict:
  try:
    with open(path) as f:
      peaks = json.load(f)
    return peaks if isinstance(peaks, dict) else {}
  except (OSError, ValueError):
    return {}


def measure_matmul_peak(size: int = 1024, repeats: int = 10) -> float:
  """Best-of-`repeats` FLOP/s of a float32 [size, size] matmul on the default device.

  It runs as the model's matmuls do (XLA's CPU dot kernel, all intra-op threads), so MFU on a CPU
  is a fraction of what this host delivers to a large dense matmul.
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


class Throughput:
  """Tokens/s, MFU and 6N MFU over the training time since the last logged row. Time spent in
  `excluded()` blocks (evaluations, checkpoint saves, compiling the first step) is left out, so a
  row measures training steps only."""

  def __init__(self, tokens_per_step: int, flops_per_token: float, params: int,
               peak_flops_per_second: float, replicas: int = 1, clock=time.perf_counter):
    """tokens_per_step: one model's; a group of `replicas` models trains that many times more."""
    self.tokens_per_step = tokens_per_step * replicas
    self.flops_per_token, self.flops_6n_per_token = flops_per_token, 6 * params
    self.peak, self.replicas, self.clock = peak_flops_per_second, replicas, clock
    self.start, self.steps, self.left_out = clock(), 0, 0.0

  def step(self) -> None:
    self.steps += 1

  @contextlib.contextmanager
  def excluded(self):
    start = self.clock()
    try:
      yield
    finally:
      self.left_out += self.clock() - start

  def read(self) -> dict:
    """{tokens_per_sec, mfu, mfu_6n (, replicas)} since the last read; starts the next interval."""
    now = self.clock()
    seconds = max(now - self.start - self.left_out, 1e-9)
    tokens_per_sec = self.steps * self.tokens_per_step / seconds
    self.start, self.steps, self.left_out = now, 0, 0.0
    speed = {"tokens_per_sec": tokens_per_sec,
             "mfu": tokens_per_sec * self.flops_per_token / self.peak,
             "mfu_6n": tokens_per_sec * self.flops_6n_per_token / self.peak}
    if self.replicas > 1:
      speed["replicas"] = self.replicas
    return speed


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m training.mfu",
                                   description="This machine's peak FLOP/s, as MFU uses it.")
  parser.add_argument("--measure", action="store_true",
                      help="measure the CPU peak again (best of 100) and keep it if higher")
  args = parser.parse_args(argv)
  device = jax.devices()[0]
  if args.measure and device.platform == "cpu":
    remember_higher_cpu_peak(measure_matmul_peak(repeats=100))
  print(f"{device.device_kind} ({machine_key()}): peak {peak_flops_per_second(device) / 1e9:,.1f} "
        "GFLOP/s" + (f", cached in {PEAK_CACHE}" if device.platform == "cpu" else " (datasheet)"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
