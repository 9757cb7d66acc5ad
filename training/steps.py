"""The jitted train state and steps: init, train step and eval step of one model or a group.

The model is split into a graph and a parameter pytree (`nnx.split`) and merged back inside each
step; the steps are `jax.jit` functions with donated state and explicit shardings over the
(data, fsdp) mesh, so the same code runs on one device, eight CPU devices or many hosts.

A run's own numbers (seed, peak lr and its schedule's numbers: warmup, length, cooldowns) live in
the state as arrays, not as constants of the compiled programs, so every run of a shape shares one compiled init, step and
eval, and the persistent compilation cache serves them to every process of a sweep.

A group (plan.replicas = K > 1) trains K models of one shape at once: every leaf of the state
gains a leading replica axis, batches are [K, batch, seq_len + 1] (each replica's own data order),
and the step maps the one-model step over them (`jax.vmap`, or `jax.lax.map` of vmapped chunks of
train.replica_batch replicas), so the models never interact.

LoRA fine-tuning (config.finetune.method=lora, model/lora.py) trains the adapters only: the state's
"params" are the adapters, which the optimizer state covers, and "frozen" holds the base weights,
carried through each step unchanged (donated in, aliased out) and never differentiated, so no
weight gradient of a frozen matrix is computed.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from model import lora, objectives
from training import optimizer, schedules
from training.process import compiler_options
from training.sharding import fsdp_sharding


def replica_mapper(replicas: int, vmapped: int):
  """Turns a one-model function into one over a group's leading replica axis (identity for one)."""
  def per_replica(fn):
    if replicas == 1:
      return fn
    if vmapped >= replicas:
      return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda xs: fn(*xs), args,
                                     batch_size=vmapped if vmapped > 1 else None)
  return per_replica


def replicated_number(value, replicas: int) -> np.ndarray:
  """A schedule number (an int or float, or a tuple of them) as every replica's copy of it:
  int32 or float32, with a leading replica axis."""
  value = np.asarray(value)
  value = value.astype(np.int32 if value.dtype.kind in "iub" else np.float32)
  return np.broadcast_to(value, (replicas, *value.shape)).copy()


class Trainer:
  """The jitted init, train and eval functions of one model (or a group) on a mesh."""

  def __init__(self, config, model_cfg, plan, mesh):
    self.mesh, self.plan, self.train, self.model_cfg = mesh, plan, config.train, model_cfg
    self.replicas = plan.replicas
    self.lora = lora.settings_of(config)
    filters = lora.param_filters(self.lora)
    platform = mesh.devices.flat[0].platform
    # Replicas vmapped together; groups of them run one after another inside the step. On a CPU
    # one at a time measured fastest (benchmarks/throughput.py); accelerators want them batched.
    vmapped = self.train.replica_batch or (1 if platform == "cpu" else self.replicas)
    per_replica = replica_mapper(self.replicas, vmapped)
    self.schedule = schedules.get(plan.schedule)
    run = {"seed": np.asarray(plan.replica_seeds or (config.seed,), np.int32),
           "peak_lr": np.asarray(plan.replica_lrs or (plan.lr,), np.float32),
           **{key: replicated_number(value, self.replicas)
              for key, value in plan.schedule_numbers.items()}}
    self.run = run if self.replicas > 1 else {key: value[0] for key, value in run.items()}

    def init(run):
      model = objectives.build_model(model_cfg, nnx.Rngs(jax.random.key(run["seed"])), self.lora)
      _, params, *frozen, _ = nnx.split(model, *filters, ...)
      opt_state = optimizer.make_optimizer(self.train, 0.0, model_cfg).init(params)
      return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": opt_state,
              "run": run, **({"frozen": frozen[0]} if frozen else {})}

    abstract_model = nnx.eval_shape(
        lambda: objectives.build_model(model_cfg, nnx.Rngs(0), self.lora))
    self.graphdef, *_, self.rest = nnx.split(abstract_model, *filters, ...)
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
    options = compiler_options(platform)
    self._init = jax.jit(per_replica(init), out_shardings=self.state_sharding)
    self.train_step = jax.jit(per_replica(self._train_step), donate_argnums=0,
                              in_shardings=(self.state_sharding, self.batch_sharding),
                              out_shardings=(self.state_sharding, replicated),
                              compiler_options=options)
    # Evaluation noise (for families that corrupt inputs) is fixed, so evaluations are comparable.
    # eval_step(params, batch) or, with LoRA, eval_step(params, batch, frozen).
    frozen = tuple(self.state_sharding[key] for key in ("frozen",) if key in self.state_sharding)
    self.eval_step = jax.jit(
        per_replica(lambda params, batch, *frozen: self._loss(params, batch, jax.random.key(0),
                                                              *frozen)),
        in_shardings=(self.state_sharding["params"], self.batch_sharding, *frozen),
        out_shardings=replicated, compiler_options=options)
    self._take_replica = None
    self._stack_replicas = None

  def _sharding(self, spec) -> NamedSharding:
    return NamedSharding(self.mesh, P(None, *spec) if self.replicas > 1 else spec)

  def init(self):
    return self._init(self.run)

  def with_own_run(self, state):
    """`state` with this run's own numbers (seed, lr and its schedule's), e.g. a checkpoint
    of a trunk that a branch continues, or of a shorter trunk being extended."""
    return {**state, "run": jax.device_put(self.run, self.state_sharding["run"])}

  def replica_sharding(self):
    """One replica's shardings: a single run's (the group's without its replica axis)."""
    return jax.tree.map(lambda s: NamedSharding(self.mesh, P(*s.spec[1:])), self.state_sharding)

  def replica_abstract_state(self):
    """One replica's abstract state, as a single run of this shape restores it."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, sharding=s),
                        self.abstract_state, self.replica_sharding())

  def replica_state(self, state, index: int):
    """Replica `index`'s own state out of a group's, shaped and sharded as a single run's."""
    if self._take_replica is None:
      self._take_replica = jax.jit(lambda state, i: jax.tree.map(lambda x: x[i], state),
                                   out_shardings=self.replica_sharding())
    return self._take_replica(state, np.int32(index))

  def stack_replicas(self, states):
    """A group's state from its replicas' own states (the inverse of `replica_state`)."""
    if self._stack_replicas is None:
      self._stack_replicas = jax.jit(lambda states: jax.tree.map(lambda *xs: jnp.stack(xs), *states),
                                     out_shardings=self.state_sharding)
    return self._stack_replicas(states)

  def merged(self, params, frozen=None):
    """The model of `params` (and a LoRA run's frozen base weights), inside a jitted function."""
    weights = (params,) if frozen is None else (params, frozen)
    return nnx.merge(self.graphdef, *weights, self.rest)

  def _loss(self, params, batch, key, frozen=None):
    return objectives.loss(self.merged(params, frozen), batch, key)

  def _train_step(self, state, batch):
    """One model's step; a group maps it over its replicas (see `replica_mapper`)."""
    params, run, step = state["params"], state["run"], state["step"]
    grad_fn = functools.partial(jax.value_and_grad(self._loss), frozen=state.get("frozen"))
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
    lr = self.schedule.lr(step, run, self.train)
    updates, opt_state = optimizer.make_optimizer(self.train, lr, self.model_cfg).update(
        grads, state["opt_state"], params)
    metrics = {"train_loss": loss, "grad_norm": optax.tree.norm(grads), "lr": lr}
    new_state = {**state, "step": step + 1, "params": optax.apply_updates(params, updates),
                 "opt_state": opt_state}
    return new_state, metrics

  def evaluate(self, state, eval_batches):
    """Mean held-out loss (one per replica in a group), left on the device so the host reads it
    with the step's metrics."""
    frozen = [state["frozen"]] if "frozen" in state else []
    return jnp.mean(jnp.stack([self.eval_step(state["params"], batch, *frozen)
                               for batch in eval_batches]), axis=0)


def host_step(state) -> int:
  """The state's step count, read on the host (a group's replicas all share it)."""
  return int(np.max(jax.device_get(state["step"])))
