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
"""
import argparse
import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
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
                 "train.checkpoint_every", "train.keep_checkpoints", "train.compilation_cache")


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

  @property
  def tokens_per_step(self):
    return self.batch_size * self.seq_len


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
      eval_sequences=eval_sequences, eval_every=eval_every, checkpoint_every=checkpoint_every)
  return config, source, model_cfg, plan


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


def make_optimizer(config, plan):
  train = config.train
  lr_schedule = hparams.schedule(plan.lr, plan.steps, plan.warmup_steps, train.min_lr_ratio)
  # Decay matrices only: biases, norm scales and other vectors are left alone (GPT-2, nanoGPT).
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  optimizer = optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(lr_schedule, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay,
                  mask=decay_mask))
  return optimizer, lr_schedule


class Trainer:
  """Builds the jitted init, train and eval functions for one model, optimizer and mesh."""

  def __init__(self, config, model_cfg, plan, mesh):
    self.mesh, self.plan, self.grad_accum = mesh, plan, config.train.grad_accum
    self.optimizer, self.lr_schedule = make_optimizer(config, plan)
    seed = config.seed

    self.noise_key = jax.random.key(seed + 1)

    def init():
      model = objectives.build_model(model_cfg, nnx.Rngs(seed))
      params = nnx.state(model, nnx.Param)
      return {"step": jnp.zeros((), jnp.int32), "params": params,
              "opt_state": self.optimizer.init(params)}

    abstract_model = nnx.eval_shape(lambda: objectives.build_model(model_cfg, nnx.Rngs(seed)))
    self.graphdef, _, self.rest = nnx.split(abstract_model, nnx.Param, ...)
    abstract_state = jax.eval_shape(init)
    self.state_sharding = jax.tree_util.tree_map_with_path(
        lambda path, x: fsdp_sharding(mesh, x.shape, "embedding" in jax.tree_util.keystr(path)),
        abstract_state)
    self.abstract_state = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        abstract_state, self.state_sharding)
    self.batch_sharding = NamedSharding(mesh, P(("data", "fsdp"), None))
    replicated = NamedSharding(mesh, P())
    self.init = jax.jit(init, out_shardings=self.state_sharding)
    self.train_step = jax.jit(self._train_step, donate_argnums=0,
                              in_shardings=(self.state_sharding, self.batch_sharding),
                              out_shardings=(self.state_sharding, replicated))
    # Evaluation noise (for families that corrupt inputs) is fixed, so evaluations are comparable.
    self.eval_step = jax.jit(
        lambda params, batch: self._loss(params, batch, jax.random.key(0)),
        in_shardings=(self.state_sharding["params"], self.batch_sharding),
        out_shardings=replicated)

  def _loss(self, params, batch, key):
    return objectives.loss(nnx.merge(self.graphdef, params, self.rest), batch, key)

  def _train_step(self, state, batch):
    params = state["params"]
    grad_fn = jax.value_and_grad(self._loss)
    step_key = jax.random.fold_in(self.noise_key, state["step"])
    if self.grad_accum == 1:
      loss, grads = grad_fn(params, batch, step_key)
    else:
      micro_batches = batch.reshape(self.grad_accum, -1, batch.shape[-1])

      def accumulate(carry, micro):
        index, micro_batch = micro
        loss, grads = grad_fn(params, micro_batch, jax.random.fold_in(step_key, index))
        return jax.tree.map(jnp.add, carry, (loss, grads)), None

      zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
      (loss, grads), _ = jax.lax.scan(accumulate, zeros,
                                      (jnp.arange(self.grad_accum), micro_batches))
      loss, grads = jax.tree.map(lambda x: x / self.grad_accum, (loss, grads))
    updates, opt_state = self.optimizer.update(grads, state["opt_state"], params)
    metrics = {"train_loss": loss, "grad_norm": optax.tree.norm(grads),
               "lr": self.lr_schedule(state["step"])}
    new_state = {"step": state["step"] + 1, "params": optax.apply_updates(params, updates),
                 "opt_state": opt_state}
    return new_state, metrics

  def global_batch(self, source, split: str, first_sequence: int, count: int):
    """Sequences [first, first+count) of `split` as one array sharded over the mesh.

    Each process builds only its own rows, so multi-host runs never materialise the global batch.
    """
    per_process = count // jax.process_count()
    start = first_sequence + jax.process_index() * per_process
    rows = source.sequences(split, start, per_process)
    return jax.make_array_from_process_local_data(self.batch_sharding, rows,
                                                  (count, rows.shape[1]))

  def evaluate(self, state, eval_batches):
    """Mean held-out loss, left on the device so the host reads it with the step's metrics."""
    return jnp.mean(jnp.stack([self.eval_step(state["params"], batch) for batch in eval_batches]))


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
  """The device's peak FLOP/s for MFU: datasheet dense bf16 on GPUs, a measured matmul on CPUs."""
  device = device or jax.devices()[0]
  kind = device.device_kind.lower()
  for name, peak in GPU_PEAK_BF16.items():
    if name in kind:
      return peak
  if device.platform == "cpu":
    return _measured_matmul_peak()
  return float("nan")


GPU_PEAK_BF16 = {"h200": 989e12, "h100": 989e12, "a100": 312e12, "l4": 121e12, "a10": 125e12}
_MEASURED_PEAK = {}


def _measured_matmul_peak(size: int = 1024, repeats: int = 5) -> float:
  """Best float32 matmul FLOP/s of this host, measured once per process."""
  if "cpu" not in _MEASURED_PEAK:
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      matmul(a).block_until_ready()
      best = min(best, time.perf_counter() - start)
    _MEASURED_PEAK["cpu"] = 2 * size**3 / best
  return _MEASURED_PEAK["cpu"]


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


def run_training(config, source, model_cfg, plan, workdir: str) -> int:
  """Trains to the budget (or resumes), writing every file SPEC names; returns the exit code."""
  start_time = time.time()
  run_hash = config_hash(config)
  # Every process computes; only the first writes the run's files (orbax coordinates checkpoints).
  primary = jax.process_index() == 0
  if primary:
    os.makedirs(workdir, exist_ok=True)
    write_json_atomic(os.path.join(workdir, "config.json"), json.loads(config.to_json()))
    source.tokenizer.save(workdir)

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
  first_step = int(state["step"])
  wandb_run = start_wandb(config, plan, workdir, run_hash)
  log = MetricsLog(workdir if primary else None, first_step, wandb_run)

  stop_signal = []
  signal.signal(signal.SIGTERM, lambda signum, frame: stop_signal.append(signum))
  eval_batches = [trainer.global_batch(source, "eval", start, plan.batch_size)
                  for start in range(0, plan.eval_sequences, plan.batch_size)]
  # A freshly initialised model predicts about uniformly, so ln(vocab) stands for the initial loss.
  divergence_loss = config.train.divergence_factor * math.log(model_cfg.vocab_size)
  peak = peak_flops_per_second()
  progress = _progress_bar(plan, first_step)
  # Train losses are averaged between log rows; the running sum is checkpointed with the state so
  # that a run preempted between two rows logs exactly the rows of an uninterrupted run.
  status, loss_sum, loss_count = "completed", meta.get("loss_sum", 0.0), meta.get("loss_count", 0)
  interval_start, interval_steps = time.perf_counter(), 0

  def save(step, wait=False):
    checkpoint.save(manager, step, state, {"wall_seconds": time.time() - start_time + wall_before,
                                           "loss_sum": loss_sum, "loss_count": loss_count})
    if wait:
      manager.wait_until_finished()

  def finish_step(done, metrics, eval_loss):
    """Host side of a step, run while the next one computes: divergence check and logging."""
    nonlocal status, loss_sum, loss_count, interval_start, interval_steps
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    loss = metrics["train_loss"]
    if not math.isfinite(loss) or loss > divergence_loss:
      status = "diverged"
      return
    loss_sum, loss_count, interval_steps = loss_sum + loss, loss_count + 1, interval_steps + 1
    if done % config.train.log_every and eval_loss is None and done != plan.steps:
      return
    tokens_per_sec = interval_steps * plan.tokens_per_step / (time.perf_counter() - interval_start)
    row = {"step": done, "tokens": done * plan.tokens_per_step,
           "flops": done * plan.tokens_per_step * plan.flops_per_token,
           "train_loss": loss_sum / loss_count, "lr": metrics["lr"],
           "grad_norm": metrics["grad_norm"], "tokens_per_sec": tokens_per_sec,
           "mfu": tokens_per_sec * plan.flops_per_token / peak}
    if eval_loss is not None:
      row["eval_loss"] = float(eval_loss)
    log.write(row)
    progress.set_postfix(loss=f"{row['train_loss']:.3f}", tok_s=f"{tokens_per_sec:,.0f}")
    loss_sum, loss_count, interval_steps = 0.0, 0, 0
    interval_start = time.perf_counter()

  pending = None  # (steps done, metrics, eval loss): read on the host one step late
  for step in range(first_step, plan.steps):
    if stop_signal:
      break
    batch = trainer.global_batch(source, "train", step * plan.batch_size, plan.batch_size)
    state, metrics = trainer.train_step(state, batch)
    done = step + 1
    is_eval = done % plan.eval_every == 0 or done == plan.steps
    eval_loss = trainer.evaluate(state, eval_batches) if is_eval else None
    if pending is not None:
      finish_step(*pending)
    pending = (done, metrics, eval_loss)
    progress.update(1)
    if status == "diverged":
      break
    if done % plan.checkpoint_every == 0 and done < plan.steps:
      finish_step(*pending)  # a checkpoint's metrics are on disk before the checkpoint is
      pending = None
      if status == "diverged":
        break
      save(done)
  if pending is not None and status != "diverged":
    finish_step(*pending)
  progress.close()

  if stop_signal and status != "diverged":
    save(int(state["step"]), wait=True)
    _close(manager, log, wandb_run)
    print(f"SIGTERM: checkpoint saved at step {int(state['step'])}; rerun to resume", file=sys.stderr)
    return EXIT_PREEMPTED
  if status == "completed":
    save(plan.steps, wait=True)
  wall_seconds = time.time() - start_time + wall_before
  result = make_result(config, plan, source, log.last_row, status, wall_seconds, run_hash)
  if config.init_from and status == "completed":
    result.update(original_data_losses(config.init_from, trainer, state, plan))
  if primary:
    write_json_atomic(os.path.join(workdir, "result.json"), result)
  if wandb_run is not None:
    wandb_run.summary.update({k: v for k, v in result.items() if not isinstance(v, dict)})
  _close(manager, log, wandb_run)
  return 0


def original_data_losses(run_dir: str, trainer, state, plan) -> dict:
  """Loss on the data the initial weights were trained on, before and after: forgetting."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  with open(os.path.join(run_dir, "config.json")) as f:
    original_source = data.make_source(ml_collections.ConfigDict(json.load(f)))
  with open(os.path.join(run_dir, "result.json")) as f:
    before = json.load(f).get("final_eval_loss")
  batches = [trainer.global_batch(original_source, "eval", start, plan.batch_size)
             for start in range(0, plan.eval_sequences, plan.batch_size)]
  return {"init_from": run_dir, "original_data_eval_loss_before": before,
          "original_data_eval_loss": float(trainer.evaluate(state, batches))}


def _close(manager, log, wandb_run):
  manager.wait_until_finished()
  manager.close()
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
      "lr": plan.lr,
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
  result_path = os.path.join(workdir, "result.json")
  if os.path.exists(result_path):
    with open(result_path) as f:
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
    config, source, model_cfg, plan = resolve(config, jax.device_count())
    run_hash = config_hash(config)
    status = check_workdir(args.workdir, run_hash, args.force)
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
  enable_compilation_cache(config.train.compilation_cache)
  if status == "completed":
    print(f"{args.workdir} already holds a completed run of this config", file=sys.stderr)
    return 0
  if args.force and os.path.exists(args.workdir):
    checkpoint.discard_run(args.workdir)
  try:
    return run_training(config, source, model_cfg, plan, args.workdir)
  except Exception as error:  # recorded so a sweep lists the run as failed; a rerun retries it
    traceback.print_exc()
    result = {"status": "failed", "error": f"{type(error).__name__}: {error}",
              "config_hash": run_hash, "n_params": plan.n_params,
              "n_params_total": plan.n_params_total}
    if jax.process_index() == 0:
      write_json_atomic(os.path.join(args.workdir, "result.json"), result)
    return 1


if __name__ == "__main__":
  sys.exit(main())
