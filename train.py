"""One training run: config -> trained model, metrics.jsonl, checkpoints and result.json.

  python train.py --config experiments/tiny.py --workdir /tmp/tiny [--config.train.lr=1e-3 ...]

Running the same command again resumes from the newest checkpoint (batches are a pure function of
(seed, step), so a resumed run is the uninterrupted run); a workdir holding a completed result exits
at once. SIGTERM (preemption) saves a checkpoint and exits with code 143; bad input exits with code 2
and one line on stderr before anything is compiled or written.

The train step is one `jax.jit` function of (state, batch) with donated state and explicit shardings
over a (data, fsdp) mesh: the model is split into a graph and a parameter pytree (`nnx.split`) and
merged back inside the step, so the same code runs on one device, eight CPU devices or many hosts.
Metrics of step s are read on the host while step s+1 runs, so logging never stalls the device.
A run's seed, peak lr and budget are inputs of the compiled programs, not constants in them, so all
runs of one shape share them and the persistent compilation cache serves them across a sweep.

  python train.py --config ... --config.train.replicas=4 --config.train.replica_lrs="(1e-3,2e-3,4e-3,8e-3)" \\
      --workdir GROUP [--replica-workdirs DIR0 DIR1 DIR2 DIR3]

trains a group: K models of one shape, differing in seed (train.replica_seeds, default seed + i)
and/or peak lr, in one jitted step (vmap over parameters and optimizer state). Each replica gets a
complete run directory (GROUP/replica_i by default) equal to the one its single run would write;
GROUP holds the stacked checkpoints and group.json. See `run_training`.
"""
import os
import sys


def reexec_with_huge_pages() -> None:
  """Restarts this command (same pid and arguments) with malloc on transparent huge pages.

  XLA:CPU allocates a step's temporaries afresh on every call, and in 4 KiB pages that is a page
  fault per 4 KiB touched: 110k faults, a quarter of the step's CPU time at d_model 128 (measured).
  glibc reads its tunables only at startup, hence the re-execution, done before heavy imports; a
  no-op where THP is off or glibc < 2.35. GLIBC_TUNABLES=glibc.malloc.hugetlb=0 opts out.
  """
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if sys.platform == "linux" and "glibc.malloc.hugetlb" not in tunables:
    os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, [tunables, "glibc.malloc.hugetlb=1"]))
    os.execv(sys.executable, sys.orig_argv)


if __name__ == "__main__":
  reexec_with_huge_pages()

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses
import functools
import hashlib
import json
import math
import signal
import time
import traceback
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from experiments.base import ConfigError, load_config
from model import checkpoint, hparams, objectives, sizing
import data

EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 128 + signal.SIGTERM
# Keys that change how a run is watched, not what it computes: they may differ on resume.
UNHASHED_KEYS = ("name", "wandb", "sweep", "train.log_every", "train.eval_every",
                 "train.checkpoint_every", "train.keep_checkpoints", "train.compilation_cache",
                 "train.replica_batch")


@dataclasses.dataclass(frozen=True)
class Plan:
  """The numbers a run is resolved to before anything is compiled."""
  n_params: int              # non-embedding (Kaplan)
  n_params_total: int        # everything (Chinchilla)
  flops_per_token: float     # counted training FLOPs per token (Chinchilla Appendix F)
  batch_size: int            # sequences per optimiser step
  seq_len: int
  steps: int
  tokens: int                # steps * batch_size * seq_len: the budget D rounded to whole batches
  lr: float
  warmup_steps: int
  eval_sequences: int
  eval_every: int
  checkpoint_every: int
  # A group of replicas (train.replicas > 1): each one's seed and peak lr; empty for one model.
  replica_seeds: tuple = ()
  replica_lrs: tuple = ()

  @property
  def tokens_per_step(self):
    return self.batch_size * self.seq_len

  @property
  def replicas(self):
    return max(1, len(self.replica_seeds))


def config_hash(config) -> str:
  flat = json.loads(config.to_json())
  for key in UNHASHED_KEYS:
    *parents, leaf = key.split(".")
    node = flat
    for part in parents:
      node = node.get(part, {})
    node.pop(leaf, None)
  return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


def resolve(config, n_devices: int):
  """Validates `config` and fills every derived value in; returns (config, source, model_cfg, plan).

  Writes nothing. Raises ConfigError with a one-line message for anything that cannot run.
  """
  config = config.copy_and_resolve_references()
  train = config.train
  if train.tokens <= 0:
    raise ConfigError(f"train.tokens must be positive, got {train.tokens}")
  if train.lr < 0:
    raise ConfigError(f"train.lr must be positive (0 derives it from N), got {train.lr}")
  if train.seq_len <= 0 or train.grad_accum <= 0:
    raise ConfigError("train.seq_len and train.grad_accum must be positive")
  if config.wandb.mode not in ("offline", "online", "disabled"):
    raise ConfigError(f"wandb.mode must be offline, online or disabled, got {config.wandb.mode!r}")
  source = data.make_source(config)
  model_cfg = sizing.model_config_from(config.model, vocab_size=source.vocab_size,
                                       seq_len=train.seq_len)
  n_params, n_params_total = sizing.count_params(model_cfg)
  mesh_devices = mesh_shape(config, n_devices)
  multiple_of = math.prod(mesh_devices) * train.grad_accum
  if train.batch_size == 0:
    train.batch_size = hparams.batch_size(n_params, train.tokens, train.seq_len, multiple_of)
  if train.batch_size % multiple_of:
    raise ConfigError(f"train.batch_size={train.batch_size} must be a multiple of devices x "
                      f"grad_accum = {multiple_of}")
  tokens_per_step = train.batch_size * train.seq_len
  steps = round(train.tokens / tokens_per_step)
  if steps < 1:
    raise ConfigError(f"train.tokens={train.tokens} is below one batch ({tokens_per_step} tokens); "
                      "raise the budget or lower train.batch_size")
  if train.lr == 0:
    train.lr = hparams.learning_rate(n_params)
  replica_seeds, replica_lrs = replica_settings(config)
  if train.warmup_tokens == 0:
    train.warmup_tokens = hparams.warmup_tokens(n_params, steps * tokens_per_step)
  # Whole evaluation batches, so the sequences scored are exactly those the loss floor is taken on.
  eval_sequences = _round_up(max(1, train.eval_tokens // train.seq_len), train.batch_size)
  # Evaluations and checkpoints land on logging steps so resumed runs log the same rows.
  log_every = max(1, train.log_every)
  eval_every = train.eval_every or _round_up(max(1, steps // 10), log_every)
  checkpoint_every = train.checkpoint_every or _round_up(max(1, steps // 10), log_every)
  # The resolved config holds the explicit shape, so it rebuilds the same model on its own.
  for key, value in dataclasses.asdict(model_cfg).items():
    # dtype stays "auto" so a run's hash does not depend on the machine that planned it.
    if key in config.model and key != "dtype":
      config.model[key] = value
  config.model.target_params = 0.0
  if config.init_from:
    check_init_from(config.init_from, model_cfg)
  plan = Plan(
      n_params=n_params, n_params_total=n_params_total,
      flops_per_token=sizing.flops_per_token(model_cfg, train.seq_len),
      batch_size=train.batch_size, seq_len=train.seq_len, steps=steps,
      tokens=steps * tokens_per_step, lr=train.lr,
      warmup_steps=round(train.warmup_tokens / tokens_per_step),
      eval_sequences=eval_sequences, eval_every=eval_every, checkpoint_every=checkpoint_every,
      replica_seeds=replica_seeds, replica_lrs=replica_lrs)
  return config, source, model_cfg, plan


def replica_settings(config) -> tuple[tuple, tuple]:
  """(seeds, peak lrs) of a group of train.replicas models, or ((), ()) for one model."""
  train = config.train
  replicas, seeds, lrs = train.replicas, tuple(train.replica_seeds), tuple(train.replica_lrs)
  if replicas < 1 or train.replica_batch < 0:
    raise ConfigError(f"train.replicas must be >= 1 and train.replica_batch >= 0, got "
                      f"{replicas} and {train.replica_batch}")
  if replicas == 1:
    if seeds or lrs:
      raise ConfigError("train.replica_seeds and train.replica_lrs need train.replicas > 1; "
                        "for one model set seed and train.lr")
    return (), ()
  for name, values in (("replica_seeds", seeds), ("replica_lrs", lrs)):
    if values and len(values) != replicas:
      raise ConfigError(f"train.{name} has {len(values)} values for train.replicas={replicas}; "
                        "give one per replica or none")
  if any(not isinstance(lr, (int, float)) or lr <= 0 for lr in lrs):
    raise ConfigError(f"train.replica_lrs must be positive numbers, got {lrs}")
  if config.init_from:
    raise ConfigError("init_from trains one model; set train.replicas=1")
  seeds = tuple(int(seed) for seed in seeds) or tuple(config.seed + i for i in range(replicas))
  return seeds, tuple(float(lr) for lr in lrs) or (train.lr,) * replicas


def replica_config(config, plan, index: int):
  """The config of replica `index` of a group: the single run it trains, with its own seed and lr.

  It hashes like that run's own config, so a replica directory is interchangeable with the
  directory `train.py` would have written for it alone.
  """
  single = config.copy_and_resolve_references()
  single.seed = plan.replica_seeds[index]
  single.train.lr = plan.replica_lrs[index]
  single.train.replicas, single.train.replica_seeds, single.train.replica_lrs = 1, (), ()
  return single


def check_init_from(run_dir: str, model_cfg) -> None:
  """Continued pre-training needs a finished run of exactly this model shape."""
  config_path = os.path.join(run_dir, "config.json")
  if not os.path.exists(config_path):
    raise ConfigError(f"init_from={run_dir!r} is not a run directory (no config.json)")
  with open(config_path) as f:
    source_model = json.load(f)["model"]
  ours = dataclasses.asdict(model_cfg)
  differing = [f"{key} {source_model[key]} vs {ours[key]}" for key in
               ("family", "vocab_size", "n_layer", "d_model", "n_heads", "d_ff", "mlp", "pos",
                "tie_embeddings") if source_model.get(key) != ours[key]]
  if differing:
    raise ConfigError(f"init_from={run_dir!r} has another model shape ({', '.join(differing)}); "
                      "continued pre-training needs the same shape and vocabulary")


def _round_up(value, multiple):
  return -(-value // multiple) * multiple


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
  instead of the batch's (GPT-2 small on 8 devices, vocabulary 50257: 48.5 GiB per device instead
  of 19.7, measured with model/memory.py).
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


def make_optimizer(train, lr):
  """AdamW after global-norm clipping. `lr` is the step's learning rate (an array inside the
  step); the optimizer state's structure does not depend on it."""
  # Decay matrices only: biases, norm scales and other vectors are left alone (GPT-2, nanoGPT).
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(lr, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay, mask=decay_mask))


ROWS_PER_CHUNK = 256  # train sequences made per call to a source (see Trainer.train_batches)


class Trainer:
  """Builds the jitted init, train and eval functions for one model (or a group), optimizer and mesh.

  A run's own numbers (seed, peak lr, warmup and total steps) live in the state as arrays, not as
  constants of the compiled programs, so every run of a shape shares one compiled init, step and
  eval, and the persistent compilation cache serves them to every process of a sweep.

  A group (plan.replicas = K > 1) trains K models of one shape at once: every leaf of the state
  gains a leading replica axis, batches are [K, batch, seq_len + 1] (each replica's own data
  order), and the step maps the one-model step over them (`jax.vmap`, or `jax.lax.map` of vmapped
  chunks of train.replica_batch replicas), so the models never interact.
  """

  def __init__(self, config, model_cfg, plan, mesh):
    self.mesh, self.plan, self.train = mesh, plan, config.train
    self.replicas = plan.replicas
    grouped = self.replicas > 1
    # Replicas vmapped together; groups of them run one after another inside the step. On a CPU
    # one at a time is fastest (4-8 models of 3K parameters: 1.34-1.42x the tokens/s of separate
    # steps, all vmapped 1.26-1.34x; benchmarks/throughput.py); accelerators want them batched.
    vmapped = self.train.replica_batch or (1 if mesh.devices.flat[0].platform == "cpu"
                                           else self.replicas)

    def per_replica(fn):
      if not grouped:
        return fn
      if vmapped >= self.replicas:
        return jax.vmap(fn)
      return lambda *args: jax.lax.map(lambda xs: fn(*xs), args,
                                       batch_size=vmapped if vmapped > 1 else None)
    run = {"seed": np.asarray(plan.replica_seeds or (config.seed,), np.int32),
           "peak_lr": np.asarray(plan.replica_lrs or (plan.lr,), np.float32),
           "warmup_steps": np.full(self.replicas, plan.warmup_steps, np.int32),
           "total_steps": np.full(self.replicas, plan.steps, np.int32)}
    self.run = run if grouped else {key: value[0] for key, value in run.items()}

    def init(run):
      model = objectives.build_model(model_cfg, nnx.Rngs(jax.random.key(run["seed"])))
      params = nnx.state(model, nnx.Param)
      return {"step": jnp.zeros((), jnp.int32), "params": params,
              "opt_state": make_optimizer(self.train, 0.0).init(params), "run": run}

    abstract_model = nnx.eval_shape(lambda: objectives.build_model(model_cfg, nnx.Rngs(0)))
    self.graphdef, _, self.rest = nnx.split(abstract_model, nnx.Param, ...)
    # One model's shardings; a group adds an unsharded replica axis in front.
    self.state_sharding = jax.tree_util.tree_map_with_path(
        lambda path, x: self._sharding(fsdp_sharding(
            mesh, x.shape, "embedding" in jax.tree_util.keystr(path)).spec),
        jax.eval_shape(init, {key: value[0] for key, value in run.items()}))
    self.abstract_state = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        jax.eval_shape(per_replica(init), self.run), self.state_sharding)
    self.batch_sharding = self._sharding(P(("data", "fsdp"), None))
    replicated = NamedSharding(mesh, P())
    options = compiler_options(mesh.devices.flat[0].platform)
    self._init = jax.jit(per_replica(init), out_shardings=self.state_sharding)
    self.train_step = jax.jit(per_replica(self._train_step), donate_argnums=0,
                              in_shardings=(self.state_sharding, self.batch_sharding),
                              out_shardings=(self.state_sharding, replicated),
                              compiler_options=options)
    # Evaluation noise (for families that corrupt inputs) is fixed, so evaluations are comparable.
    self.eval_step = jax.jit(
        per_replica(lambda params, batch: self._loss(params, batch, jax.random.key(0))),
        in_shardings=(self.state_sharding["params"], self.batch_sharding),
        out_shardings=replicated, compiler_options=options)

  def _sharding(self, spec) -> NamedSharding:
    return NamedSharding(self.mesh, P(None, *spec) if self.replicas > 1 else spec)

  def init(self):
    return self._init(self.run)

  def replica_state(self, state, index: int):
    """Replica `index`'s own state out of a group's, shaped and sharded as a single run's."""
    if not hasattr(self, "_take_replica"):
      single = jax.tree.map(lambda s: NamedSharding(self.mesh, P(*s.spec[1:])), self.state_sharding)
      self._take_replica = jax.jit(lambda state, i: jax.tree.map(lambda x: x[i], state),
                                   out_shardings=single)
    return self._take_replica(state, np.int32(index))

  def _loss(self, params, batch, key):
    return objectives.loss(nnx.merge(self.graphdef, params, self.rest), batch, key)

  def _train_step(self, state, batch):
    """One model's step; a group maps it over its replicas (see `per_replica`)."""
    params, run, step = state["params"], state["run"], state["step"]
    grad_fn = jax.value_and_grad(self._loss)
    step_key = jax.random.fold_in(jax.random.key(run["seed"] + 1), step)
    grad_accum = self.train.grad_accum
    if grad_accum == 1:
      loss, grads = grad_fn(params, batch, step_key)
    else:
      micro_batches = batch.reshape(grad_accum, -1, batch.shape[-1])

      def accumulate(carry, micro):
        index, micro_batch = micro
        loss, grads = grad_fn(params, micro_batch, jax.random.fold_in(step_key, index))
        return jax.tree.map(jnp.add, carry, (loss, grads)), None

      zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
      (loss, grads), _ = jax.lax.scan(accumulate, zeros, (jnp.arange(grad_accum), micro_batches))
      loss, grads = jax.tree.map(lambda x: x / grad_accum, (loss, grads))
    lr = hparams.scheduled_lr(step, run["peak_lr"], run["warmup_steps"], run["total_steps"],
                              self.train.min_lr_ratio)
    updates, opt_state = make_optimizer(self.train, lr).update(grads, state["opt_state"], params)
    metrics = {"train_loss": loss, "grad_norm": optax.tree.norm(grads), "lr": lr}
    new_state = {"step": step + 1, "params": optax.apply_updates(params, updates),
                 "opt_state": opt_state, "run": run}
    return new_state, metrics

  def global_batch(self, sources, split: str, first_sequence: int, count: int):
    """Sequences [first, first+count) of `split` from each replica's source, sharded over the mesh.

    [count, seq_len + 1] for one model, [K, count, seq_len + 1] for a group. Each process builds
    only its own rows, so multi-host runs never materialise the global batch.
    """
    per_process = count // jax.process_count()
    start = first_sequence + jax.process_index() * per_process
    return self._device_batch(
        np.stack([source.sequences(split, start, per_process) for source in sources]), count)

  def _device_batch(self, rows, count: int):
    """[K, rows, seq_len + 1] of this process -> the global batch of `count` rows."""
    rows = rows[0] if self.replicas == 1 else rows
    return jax.make_array_from_process_local_data(
        self.batch_sharding, rows, rows.shape[:-2] + (count, rows.shape[-1]))

  def train_batches(self, sources, first_step: int, steps: int):
    """The train batches of steps first_step..steps-1 (batch s: sequences s*B..(s+1)*B - 1).

    On one process the rows of several steps are made in one call: the synthetic source makes
    ~256 rows at a time 3x faster per row than 8, which counts for the smallest models.
    """
    batch = self.plan.batch_size
    chunk = max(1, ROWS_PER_CHUNK // batch) if jax.process_count() == 1 else 1
    for first in range(first_step, steps, chunk):
      if chunk == 1:
        yield self.global_batch(sources, "train", first * batch, batch)
        continue
      count = min(chunk, steps - first) * batch
      rows = np.stack([source.sequences("train", first * batch, count) for source in sources])
      for offset in range(0, count, batch):
        yield self._device_batch(rows[:, offset:offset + batch], batch)

  def evaluate(self, state, eval_batches):
    """Mean held-out loss (one per replica in a group), left on the device so the host reads it
    with the step's metrics."""
    return jnp.mean(jnp.stack([self.eval_step(state["params"], batch) for batch in eval_batches]),
                    axis=0)


# XLA:CPU sends matmuls to YNNPACK by default; its kernels ran this model's train step 10-15%
# slower than XLA's own (Eigen) dots on a 2-core x86 machine (benchmarks/throughput.py).
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
  """Persists compiled steps on disk: a second run of the same shapes skips XLA compilation."""
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


# Dense bf16 datasheet figures; the first name found in the device kind wins (PCIe before SXM).
GPU_PEAK_BF16 = {"h100 pcie": 756e12, "h200": 989e12, "h100": 989e12, "a100": 312e12,
                 "l4": 121e12, "a10": 125e12}
_MEASURED_PEAK = {}


def measure_matmul_peak(size: int = 1024, repeats: int = 10) -> float:
  """Best-of-`repeats` FLOP/s of a float32 [size, size] matmul on the default device.

  It runs as the model's matmuls do (XLA's CPU dot kernel, all intra-op threads), so MFU on a CPU
  is a fraction of what this host delivers, in the same conditions, to a large dense matmul. 1024
  is past the size where the figure stops growing (2048 measures the same) and takes ~25 ms.
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


def write_atomic(path: str, text: str) -> None:
  """Writes under a temporary name, then renames: a crash or a full disk never leaves half a file,
  and the previous version stays intact until the new one is complete."""
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json_atomic(path: str, obj) -> None:
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def write_jsonl_atomic(path: str, rows: list[dict]) -> None:
  write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_jsonl(path: str) -> list[dict]:
  """Rows of a .jsonl file; a line cut short by a crash is skipped with a warning."""
  rows = []
  if not os.path.exists(path):
    return rows
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        print(f"warning: skipping unreadable line {number} of {path}", file=sys.stderr)
  return rows


class MetricsLog:
  """metrics.jsonl, the authoritative record, mirrored to W&B when enabled."""

  def __init__(self, workdir: str | None, resumed_step: int, wandb_run):
    """workdir None: a process that is not the primary keeps the last row but writes nothing."""
    self.last_row, self.file, self.wandb_run = {}, None, wandb_run
    if workdir is None:
      return
    path = os.path.join(workdir, "metrics.jsonl")
    # Rows past the checkpoint we resume from (and any line cut short by a crash) are dropped and
    # rewritten by the resumed run.
    kept = [row for row in read_jsonl(path) if row.get("step", 0) <= resumed_step]
    write_jsonl_atomic(path, kept)
    self.last_row = kept[-1] if kept else {}
    self.file = open(path, "a")

  def write(self, row: dict) -> None:
    self.last_row = row
    if self.file is not None:
      self.file.write(json.dumps(row) + "\n")
      self.file.flush()
    if self.wandb_run is not None:
      self.wandb_run.log(row)

  def close(self):
    if self.file is not None:
      self.file.close()


def start_wandb(config, plan, workdir: str, run_hash: str):
  """An offline (default) or online W&B run whose id is kept in the workdir across resumes."""
  if config.wandb.mode == "disabled" or jax.process_index() != 0:
    return None
  import wandb  # pylint: disable=g-import-not-at-top
  id_path = os.path.join(workdir, "wandb_run_id")
  if os.path.exists(id_path):
    with open(id_path) as f:
      run_id = f.read().strip()
  else:
    run_id = f"{run_hash}-{uuid.uuid4().hex[:8]}"
    with open(id_path, "w") as f:
      f.write(run_id)
  summary = {"N": plan.n_params, "N_total": plan.n_params_total, "D": plan.tokens,
             "C": plan.flops_per_token * plan.tokens, "C_6ND": 6 * plan.n_params * plan.tokens,
             "steps": plan.steps, "config_hash": run_hash}
  run = wandb.init(
      project=config.wandb.project, entity=config.wandb.entity or None,
      group=config.wandb.group or None, name=os.path.basename(os.path.abspath(workdir)),
      tags=[t for t in config.wandb.tags.split(",") if t], mode=config.wandb.mode,
      dir=workdir, id=run_id, resume="allow", config={**config.to_dict(), "scaling": summary})
  run.define_metric("tokens")
  run.define_metric("flops")
  for metric in ("train_loss", "eval_loss", "lr", "grad_norm", "tokens_per_sec", "mfu"):
    run.define_metric(metric, step_metric="tokens")
  return run


@dataclasses.dataclass
class Member:
  """One model of a run as the host sees it: the run itself, or one replica of a group."""
  config: object               # its resolved config (a replica's: its own seed and lr, replicas=1)
  workdir: str                 # its run directory
  source: object = None        # its data (the order follows its seed)
  log: MetricsLog = None
  wandb_run: object = None
  diverged: bool = False
  loss_sum: float = 0.0        # train losses since its last row (checkpointed with the state)
  loss_count: int = 0


def group_members(config, plan, workdir: str, replica_dirs=()) -> list:
  """The run's models: [the run itself] or one Member per replica of a group."""
  if plan.replicas == 1:
    return [Member(config, workdir)]
  replica_dirs = replica_dirs or [os.path.join(workdir, f"replica_{i}") for i in range(plan.replicas)]
  if len(replica_dirs) != plan.replicas:
    raise ConfigError(f"--replica-workdirs names {len(replica_dirs)} directories for "
                      f"train.replicas={plan.replicas}; give one per replica")
  return [Member(replica_config(config, plan, i), replica_dirs[i]) for i in range(plan.replicas)]


def run_training(config, source, model_cfg, plan, workdir: str, replica_dirs=()) -> int:
  """Trains to the budget (or resumes), writing every file SPEC names; returns the exit code.

  A group (train.replicas = K > 1) writes one complete run directory per replica (`replica_dirs`,
  by default WORKDIR/replica_I): its own config.json (its seed and lr, hashing like the single run
  it stands for), metrics.jsonl, result.json, W&B run and, once completed, its final checkpoint.
  WORKDIR holds the group's config.json, the stacked checkpoints it resumes from and group.json.
  A replica that diverges is written off at once (result.json says so and it logs no more rows)
  while the others train on.
  """
  start_time = time.time()
  run_hash = config_hash(config)
  grouped = plan.replicas > 1
  # Every process computes; only the first writes the run's files (orbax coordinates checkpoints).
  primary = jax.process_index() == 0
  members = group_members(config, plan, workdir, replica_dirs)
  for member in members:
    member.source = data.make_source(member.config) if grouped else source
  if primary:
    os.makedirs(workdir, exist_ok=True)
    write_json_atomic(os.path.join(workdir, "config.json"), json.loads(config.to_json()))
    for member in members:
      os.makedirs(member.workdir, exist_ok=True)
      if grouped:
        write_json_atomic(os.path.join(member.workdir, "config.json"),
                          json.loads(member.config.to_json()))
      member.source.tokenizer.save(member.workdir)
    if grouped:
      write_group(workdir, run_hash, members, "running")

  mesh = make_mesh(config)
  trainer = Trainer(config, model_cfg, plan, mesh)
  manager = checkpoint.manager(workdir, config.train.keep_checkpoints)
  state, meta = checkpoint.restore_latest(manager, trainer.abstract_state)
  if state is None:
    state = trainer.init()
    if config.init_from:  # fresh optimizer and schedule, the other run's final weights
      state["params"] = checkpoint.restore_params(config.init_from,
                                                  trainer.abstract_state["params"])
  wall_before = meta.get("wall_seconds", 0.0)
  first_step = _host_step(state)
  for i, member in enumerate(members):
    member.loss_sum = meta.get("loss_sum", [0.0] * len(members))[i]
    member.loss_count = meta.get("loss_count", [0] * len(members))[i]
    member.diverged = grouped and recorded_status(member.workdir) == "diverged"
    if not member.diverged:
      member.wandb_run = start_wandb(member.config, plan, member.workdir, config_hash(member.config))
      member.log = MetricsLog(member.workdir if primary else None, first_step, member.wandb_run)

  stop_signal = []
  signal.signal(signal.SIGTERM, lambda signum, frame: stop_signal.append(signum))
  sources = [member.source for member in members]
  eval_batches = [trainer.global_batch(sources, "eval", start, plan.batch_size)
                  for start in range(0, plan.eval_sequences, plan.batch_size)]
  # A freshly initialised model predicts about uniformly, so ln(vocab) stands for the initial loss.
  divergence_loss = config.train.divergence_factor * math.log(model_cfg.vocab_size)
  peak = peak_flops_per_second()
  progress = _progress_bar(plan, first_step)
  interval_start, interval_steps = time.perf_counter(), 0
  training = lambda: [member for member in members if not member.diverged]

  def save(step, wait=False):
    checkpoint.save(manager, step, state, {
        "wall_seconds": time.time() - start_time + wall_before,
        "loss_sum": [member.loss_sum for member in members],
        "loss_count": [member.loss_count for member in members]})
    if wait:
      manager.wait_until_finished()

  def finish_member(member, status, member_state=None):
    """Writes a member's result.json (and, for a completed replica, its own final checkpoint)."""
    if member_state is not None:
      member_manager = checkpoint.manager(member.workdir, 1)
      checkpoint.save(member_manager, plan.steps, member_state,
                      {"wall_seconds": time.time() - start_time + wall_before})
      _close(member_manager, None, None)
    result = make_result(member.config, plan, member.source, member.log.last_row, status,
                         time.time() - start_time + wall_before, config_hash(member.config))
    if config.init_from and status == "completed":
      result.update(original_data_losses(config.init_from, trainer, state, plan))
    if primary:
      write_json_atomic(os.path.join(member.workdir, "result.json"), result)
    if member.wandb_run is not None:
      member.wandb_run.summary.update({k: v for k, v in result.items() if not isinstance(v, dict)})
    _close(None, member.log, member.wandb_run)

  def finish_step(done, metrics, eval_loss):
    """Host side of a step, run while the next one computes: divergence checks and logging."""
    nonlocal interval_start, interval_steps
    metrics = {k: np.atleast_1d(v) for k, v in jax.device_get(metrics).items()}
    losses = metrics["train_loss"]
    eval_losses = None if eval_loss is None else np.atleast_1d(jax.device_get(eval_loss))
    interval_steps += 1
    if done % config.train.log_every and eval_loss is None and done != plan.steps:
      log_row = False
    else:
      log_row = True
      tokens_per_sec = interval_steps * plan.tokens_per_step / (time.perf_counter() - interval_start)
      interval_start, interval_steps = time.perf_counter(), 0
    for i, member in enumerate(members):
      if member.diverged:
        continue
      loss = float(losses[i])
      if not math.isfinite(loss) or loss > divergence_loss:
        member.diverged = True
        finish_member(member, "diverged")
        continue
      member.loss_sum, member.loss_count = member.loss_sum + loss, member.loss_count + 1
      if not log_row:
        continue
      row = {"step": done, "tokens": done * plan.tokens_per_step,
             "flops": done * plan.tokens_per_step * plan.flops_per_token,
             "train_loss": member.loss_sum / member.loss_count, "lr": float(metrics["lr"][i]),
             "grad_norm": float(metrics["grad_norm"][i]), "tokens_per_sec": tokens_per_sec,
             "mfu": tokens_per_sec * plan.flops_per_token / peak}
      if eval_losses is not None:
        row["eval_loss"] = float(eval_losses[i])
      member.log.write(row)
      member.loss_sum, member.loss_count = 0.0, 0
    if log_row and training():
      progress.set_postfix(loss=f"{training()[0].log.last_row.get('train_loss', math.nan):.3f}",
                           tok_s=f"{len(training()) * tokens_per_sec:,.0f}")

  pending = None  # (steps done, metrics, eval loss): read on the host one step late
  batches = trainer.train_batches(sources, first_step, plan.steps)
  for step, batch in zip(range(first_step, plan.steps), batches):
    if stop_signal or not training():
      break
    state, metrics = trainer.train_step(state, batch)
    done = step + 1
    is_eval = done % plan.eval_every == 0 or done == plan.steps
    eval_loss = trainer.evaluate(state, eval_batches) if is_eval else None
    if pending is not None:
      finish_step(*pending)
    pending = (done, metrics, eval_loss)
    progress.update(1)
    if done % plan.checkpoint_every == 0 and done < plan.steps and training():
      finish_step(*pending)  # a checkpoint's metrics are on disk before the checkpoint is
      pending = None
      if training():
        save(done)
  if pending is not None and training():
    finish_step(*pending)
  progress.close()

  if stop_signal and training():
    save(_host_step(state), wait=True)
    for member in training():
      _close(None, member.log, member.wandb_run)
    _close(manager, None, None)
    print(f"SIGTERM: checkpoint saved at step {_host_step(state)}; rerun to resume", file=sys.stderr)
    return EXIT_PREEMPTED
  if training():
    save(plan.steps, wait=True)
  for i, member in enumerate(members):
    if not member.diverged:
      finish_member(member, "completed", trainer.replica_state(state, i) if grouped else None)
  if primary and grouped:
    write_group(workdir, run_hash, members, "completed" if training() else "diverged")
  _close(manager, None, None)
  return 0


def _host_step(state) -> int:
  return int(np.max(jax.device_get(state["step"])))


def write_group(workdir: str, run_hash: str, members, status: str) -> None:
  """WORKDIR/group.json: where a group's replicas are and, once it has finished, how each ended."""
  write_json_atomic(os.path.join(workdir, "group.json"), {
      "status": status, "config_hash": run_hash, "replicas": [
          {"workdir": os.path.abspath(member.workdir), "seed": member.config.seed,
           "lr": member.config.train.lr, "config_hash": config_hash(member.config),
           "status": "diverged" if member.diverged else status}
          for member in members]})


def original_data_losses(run_dir: str, trainer, state, plan) -> dict:
  """Loss on the data the initial weights were trained on, before and after: forgetting."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  with open(os.path.join(run_dir, "config.json")) as f:
    original_source = data.make_source(ml_collections.ConfigDict(json.load(f)))
  with open(os.path.join(run_dir, "result.json")) as f:
    before = json.load(f).get("final_eval_loss")
  batches = [trainer.global_batch([original_source], "eval", start, plan.batch_size)
             for start in range(0, plan.eval_sequences, plan.batch_size)]
  return {"init_from": run_dir, "original_data_eval_loss_before": before,
          "original_data_eval_loss": float(trainer.evaluate(state, batches))}


def _close(manager, log, wandb_run):
  if manager is not None:
    manager.wait_until_finished()
    manager.close()
  if log is not None:
    log.close()
  if wandb_run is not None:
    wandb_run.finish()


def _progress_bar(plan, first_step):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=plan.steps, initial=first_step, unit="step", mininterval=1.0,
              disable=jax.process_index() != 0, dynamic_ncols=True)


def make_result(config, plan, source, last_row, status, wall_seconds, run_hash) -> dict:
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
      # The source's floor is for next-token prediction: it bounds the decoder's loss only.
      "loss_floor": (source.loss_floor(plan.eval_sequences) if config.model.family == "decoder"
                     else None),
      "wall_seconds": wall_seconds,
      "config_hash": run_hash,
      "family": config.model.family,
      "objective": objectives.OBJECTIVES[config.model.family],
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
  }


def check_workdir(workdir: str, run_hash: str, force: bool):
  """Returns 'completed' for a finished run of this config; refuses another config's directory."""
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path) or force:
    return None
  with open(config_path) as f:
    existing_hash = config_hash(_config_from_json(json.load(f)))
  if existing_hash != run_hash:
    raise ConfigError(f"{workdir} holds a run of a different config (hash {existing_hash}, this one "
                      f"{run_hash}); use another --workdir, or --force to overwrite it")
  return recorded_status(workdir)


def recorded_status(workdir: str):
  """The status a run (result.json) or a group of replicas (group.json) in workdir recorded."""
  for name in ("result.json", "group.json"):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f).get("status")
  return None


def _config_from_json(obj):
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(obj)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True, help="experiments/NAME.py")
  parser.add_argument("--workdir", required=True, help="the run directory")
  parser.add_argument("--force", action="store_true",
                      help="train into a workdir that holds another config's run, discarding it")
  parser.add_argument("--replica-workdirs", nargs="+", default=[], metavar="DIR",
                      help="with train.replicas=K: the K replicas' run directories "
                           "(default WORKDIR/replica_0 .. replica_K-1)")
  args, rest = parser.parse_known_args(argv)
  overrides = [arg for arg in rest if arg.startswith("--config.")]
  unknown = [arg for arg in rest if not arg.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  return args, overrides


def main(argv=None) -> int:
  args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
  maybe_initialize_distributed()
  try:
    config = load_config(args.config, overrides)
    # Before anything compiles: JAX decides once per process whether the persistent cache is used.
    enable_compilation_cache(config.train.compilation_cache)
    config, source, model_cfg, plan = resolve(config, jax.device_count())
    run_hash = config_hash(config)
    status = check_workdir(args.workdir, run_hash, args.force)
    if plan.replicas == 1 and args.replica_workdirs:
      raise ConfigError("--replica-workdirs needs train.replicas > 1")
    members = group_members(config, plan, args.workdir, args.replica_workdirs)
    if plan.replicas > 1:  # never train a replica over another config's run
      for member in members:
        check_workdir(member.workdir, config_hash(member.config), args.force)
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
  if status == "completed":
    print(f"{args.workdir} already holds a completed run of this config", file=sys.stderr)
    return 0
  if args.force:
    for path in {args.workdir, *(member.workdir for member in members)}:
      if os.path.exists(path):
        checkpoint.discard_run(path)
    if os.path.exists(os.path.join(args.workdir, "group.json")):
      os.remove(os.path.join(args.workdir, "group.json"))
  try:
    return run_training(config, source, model_cfg, plan, args.workdir, args.replica_workdirs)
  except Exception as error:  # recorded so a sweep lists the run as failed; a rerun retries it
    traceback.print_exc()
    result = {"status": "failed", "error": f"{type(error).__name__}: {error}",
              "config_hash": run_hash, "n_params": plan.n_params,
              "n_params_total": plan.n_params_total}
    if jax.process_index() == 0:
      os.makedirs(args.workdir, exist_ok=True)
      write_json_atomic(os.path.join(
          args.workdir, "group.json" if plan.replicas > 1 else "result.json"), result)
    return 1


if __name__ == "__main__":
  sys.exit(main())
