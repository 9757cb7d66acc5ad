"""Training memory per device: an estimate from the shapes, checked against XLA's compiled step.

  python -m training.memory --config experiments/gpt2_small.py --vocab 50257 [--config.key=value ...]
      [--devices N] [--backend cpu|gpu|tpu] [--device-memory-gb G] [--no-xla] [--json]

The estimate (`estimate`: the model's shapes in, bytes out) adds, per device, for a mesh data x fsdp
whose fsdp axis shards arrays as training/sharding.py's fsdp_axis does:
  weights          parameters as stored: float32, 4 B each (bf16 mixed precision too: these are its
                   master weights), or int8, 1 B + one float32 scale per output channel
                   (model/quantize.py's format); divided over fsdp.
  master weights   int8 only: the float32 copy AdamW updates (4 B). AdamW moves a weight by about lr
                   per step (1e-4 to 1e-3), at or below an int8 step (max|w| / 127, ~6e-4 for
                   GPT-2-scale weights), so int8 weights alone would round the updates away: int8
                   buys memory for inference (the weights alone), not for training.
  gradients        float32, 4 B per trained parameter (the parameters are float32 in every
                   scheme), plus a float32 accumulator when train.grad_accum > 1.
  optimizer        AdamW's two float32 moments, 8 B per trained parameter.
  LoRA             (finetune.method=lora) the adapters are the trained parameters: gradients and
                   optimizer count them alone, weights count base and adapters; activations add
                   each adapter's x A (a * b t r per adapted matrix).
  weight copies    16-bit compute (the bf16 and int8 columns) casts or dequantises every matrix to
                   bfloat16 and keeps the copies for the backward pass (2 B per matrix parameter,
                   unsharded: they are gathered); fp32 with fsdp > 1 gathers one layer and the
                   output matrix at a time (4 B each).
  activations      what the backward pass needs, for a micro-batch of b sequences of t tokens
                   (b = batch_size / (data * fsdp) / grad_accum); a = bytes of the compute dtype:
    per layer      a * 10 b t d       block input, attention norm output, q, the fused key/value
                                      output (2), rotated q and k, attention output, the residual
                                      after attention, MLP norm output
                   + a * 3 b t d_ff   up projection, tanh and GELU output (SwiGLU 5: gate, up,
                                      sigmoid, SiLU, their product)
                   + (8 + a) b h t^2  XLA attention: masked logits and their exponent in float32,
                                      the probabilities in the compute dtype; x (n + 1) / 2n
                                      for causal attention on CPUs, which runs in n blocks of
                                      queries against the keys up to each block's end;
                     or 4 b h t       with cuDNN flash attention (16-bit on a GPU, where
                                      model.attention.attend picks it): the logsumexp only
    outside        a * 2 b t d        embedding output, final norm output
                   + 4 * 2 b t V      logits and their exponent, float32 (the loss's)
    remat          L a b t d (each block's input) + one block's activations (the block being
                   recomputed in the backward pass) + outside.
  batch            int32 tokens: 4 B x (t + 1) x the sequences per device per step.
The total adds everything, as if all were live at once: in a real step gradients replace
activations as the backward pass runs while XLA adds its own transients, and the two nearly cancel.
`xla_memory` compiles the real train step from abstract shapes (no memory needed) for comparison;
on a CPU, whose compiler realises neither remat nor 16-bit activations, it is compared with the
float32, no-remat estimate. docs/results/2026-11-23-memory-planner.md gives the measured agreement.
sweeps/ refuses runs that will not fit with `check_fits(config, device_memory_limit(), n_devices)`.
"""
import argparse
import dataclasses
import functools
import json
import math
import sys

import jax
import jax.numpy as jnp
from flax import nnx

from core.config import ConfigError, load_config
from model import attention, lora, objectives, quantize
from model.transformer import ModelConfig
from training import plan as plan_lib
from training import sharding
from training.steps import Trainer

GIB = 2 ** 30
PRECISIONS = ("fp32", "bf16", "int8")
# Bytes per weight of a float32 master copy besides the stored weights, per activation element.
MASTER_BYTES = {"fp32": 0, "bf16": 0, "int8": 4}
ACTIVATION_BYTES = {"fp32": 4, "bf16": 2, "int8": 2}
GRADIENT_BYTES = 4
ADAM_BYTES = 8
RESIDUAL_STREAM_TENSORS = 10
MLP_TENSORS = {"gelu": 3, "swiglu": 5}
SOFTMAX_FLOAT32_TENSORS = 2
OUTSIDE_LAYER_TENSORS = 2
LOGITS_FLOAT32_TENSORS = 2


@functools.lru_cache(maxsize=16)
def parameter_shapes(cfg: ModelConfig, lora_settings=None) -> dict[str, tuple[int, ...]]:
  """Every parameter of the model by path ("blocks/0/attn/query/kernel"; LoRA adapters under
  ".../lora/lora_a"), read off its abstract initialisation (no memory is allocated)."""
  model = nnx.eval_shape(lambda: objectives.build_model(cfg, nnx.Rngs(0), lora_settings))
  flat = quantize.flatten(nnx.state(model, nnx.Param))
  return {path: tuple(x.shape) for path, x in flat.items()}


def is_trained(path: str, lora_settings) -> bool:
  """Whether the optimizer trains a parameter: every one, or with LoRA the adapters only."""
  return lora_settings is None or "/lora/" in path


def shard_fraction(path: str, shape: tuple[int, ...], fsdp: int) -> float:
  """The share of an array one device holds under sharding.fsdp_sharding."""
  return 1.0 if sharding.fsdp_axis(shape, fsdp, "embedding" in path) is None else 1 / fsdp


def stored_bytes(path: str, shape: tuple[int, ...], precision: str) -> int:
  """Bytes of one parameter as stored: float32, or int8 matrices with float32 per-channel scales."""
  size = math.prod(shape)
  if precision != "int8" or len(shape) < 2:
    return 4 * size
  return size + 4 * quantize.channels(path, shape)


def activation_bytes(cfg: ModelConfig, micro_batch: int, act_bytes: int,
                     flash_attention: bool, causal_blocks: int = 1) -> tuple[float, float]:
  """(per layer, outside the layers) bytes the backward pass keeps; see the module docstring."""
  b, t, d, h, v = micro_batch, cfg.max_len, cfg.d_model, cfg.n_heads, cfg.vocab_size
  if flash_attention:
    attention = 4 * b * h * t
  else:
    kept = (causal_blocks + 1) / (2 * causal_blocks) if causal_blocks > 1 else 1.0
    attention = (4 * SOFTMAX_FLOAT32_TENSORS + act_bytes) * b * h * t * t * kept
  per_layer = act_bytes * (RESIDUAL_STREAM_TENSORS * b * t * d
                           + MLP_TENSORS[cfg.mlp] * b * t * cfg.d_ff) + attention
  outside = act_bytes * OUTSIDE_LAYER_TENSORS * b * t * d + 4 * LOGITS_FLOAT32_TENSORS * b * t * v
  return per_layer, outside


def estimate(cfg: ModelConfig, batch_per_device: int, *, precision: str = "fp32",
             grad_accum: int = 1, fsdp: int = 1, flash_attention: bool = False,
             causal_blocks: int = 1, lora_settings=None) -> dict:
  """Training memory per device in bytes, by component (see the module docstring).

  cfg.max_len is the sequence length; batch_per_device the sequences one device takes per step
  (batch_size / (data * fsdp)), split into grad_accum micro-batches. Returns the components, the
  totals without and with remat, and the weights-alone ratios.
  """
  if precision not in PRECISIONS:
    raise ConfigError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
  if batch_per_device % grad_accum:
    raise ConfigError(f"batch per device {batch_per_device} is not a multiple of "
                      f"grad_accum {grad_accum}")
  shapes = parameter_shapes(cfg, lora_settings)
  sharded = {path: shard_fraction(path, shape, fsdp) for path, shape in shapes.items()}
  n_trained = sum(math.prod(shape) * sharded[path] for path, shape in shapes.items()
                  if is_trained(path, lora_settings))
  weights = sum(stored_bytes(path, shape, precision) * sharded[path]
                for path, shape in shapes.items())
  act = ACTIVATION_BYTES[precision]
  matrices = {path: math.prod(shape) for path, shape in shapes.items() if len(shape) == 2}
  if act < 4:
    weight_copies = act * sum(matrices.values())
  elif fsdp > 1:
    layer = sum(n for path, n in matrices.items() if path.startswith("blocks/0/"))
    embeddings = [n for path, n in matrices.items() if not path.startswith("blocks/")]
    weight_copies = 4 * (layer + max(embeddings))
  else:
    weight_copies = 0
  per_layer, outside = activation_bytes(cfg, batch_per_device // grad_accum, act, flash_attention,
                                        causal_blocks)
  if lora_settings is not None:  # each adapter's x A, [b t, r]
    adapters = sum(path.endswith("lora_a") for path in shapes) / cfg.n_layer
    per_layer += act * adapters * (batch_per_device // grad_accum) * cfg.max_len * lora_settings.rank
  activations = cfg.n_layer * per_layer + outside
  block_inputs = cfg.n_layer * act * (batch_per_device // grad_accum) * cfg.max_len * cfg.d_model
  activations_remat = block_inputs + per_layer + outside
  parts = {
      "weights": weights,
      "master_weights": MASTER_BYTES[precision] * n_trained,  # what the optimizer updates
      "gradients": GRADIENT_BYTES * n_trained * (2 if grad_accum > 1 else 1),
      "optimizer": ADAM_BYTES * n_trained,
      "weight_copies": weight_copies,
      "batch": 4 * batch_per_device * (cfg.max_len + 1),
  }
  fixed = sum(parts.values())
  total, total_remat = fixed + activations, fixed + activations_remat
  return {**parts, "activations": activations, "activations_remat": activations_remat,
          "activations_per_layer": per_layer, "activations_outside_layers": outside,
          "total": total, "total_remat": total_remat,
          "total_over_weights": total / weights, "total_remat_over_weights": total_remat / weights}


def uses_flash_attention(cfg: ModelConfig, precision: str, backend: str) -> bool:
  """Whether model.attention.attend runs cuDNN flash attention for this training step."""
  return (backend == "gpu" and ACTIVATION_BYTES[precision] == 2 and cfg.head_dim % 8 == 0
          and cfg.head_dim <= 128)


def precision_of(cfg: ModelConfig) -> str:
  return {"float32": "fp32", "bfloat16": "bf16"}[cfg.dtype]


def resolve(config, n_devices: int | None = None, vocab_size: int | None = None):
  """plan.resolve for planning: (config, model_cfg, plan, (data, fsdp)) of a run on n_devices.

  With vocab_size the config's data is never opened: the memory of a step depends on the data only
  through its vocabulary, so a one-topic synthetic language of that vocabulary stands in for it.
  """
  n_devices = n_devices or jax.device_count()
  if vocab_size is not None:
    if vocab_size < 2:
      raise ConfigError(f"--vocab must be at least 2, got {vocab_size}")
    config = config.copy_and_resolve_references()
    config.data.source = "synthetic"
    config.data.synthetic.vocab_size = vocab_size
    config.data.synthetic.n_topics = 1
    config.data.synthetic.branching = min(config.data.synthetic.branching, vocab_size)
  config, _, model_cfg, run_plan = plan_lib.resolve(config, n_devices)
  return config, model_cfg, run_plan, sharding.mesh_shape(config, n_devices)


def plan(config, n_devices: int | None = None, vocab_size: int | None = None,
         backend: str | None = None) -> dict:
  """The estimate of every precision for a config, and the config's own precision and remat."""
  backend = backend or jax.default_backend()
  config, model_cfg, run_plan, (data_axis, fsdp) = resolve(config, n_devices, vocab_size)
  batch_per_device = run_plan.batch_size // (data_axis * fsdp)
  flash = {precision: uses_flash_attention(model_cfg, precision, backend)
           for precision in PRECISIONS}
  # model.attention.attend splits causal attention into blocks of queries on CPUs only.
  blocks = (attention.causal_blocks(model_cfg.max_len)
            if backend == "cpu" and model_cfg.family != "encoder" else 1)
  estimates = {precision: estimate(model_cfg, batch_per_device, precision=precision,
                                   grad_accum=config.train.grad_accum, fsdp=fsdp,
                                   flash_attention=flash[precision], causal_blocks=blocks,
                                   lora_settings=lora.settings_of(config))
               for precision in PRECISIONS}
  return {"name": config.name, "config": config, "model_cfg": model_cfg, "plan": run_plan,
          "mesh": {"data": data_axis, "fsdp": fsdp}, "batch_per_device": batch_per_device,
          "micro_batch_per_device": batch_per_device // config.train.grad_accum,
          "backend": backend, "flash_attention": flash, "precision": precision_of(model_cfg),
          "remat": model_cfg.remat, "estimates": estimates}


def required_bytes(memory_plan: dict) -> float:
  """The estimated total of the config's own precision and remat setting."""
  own = memory_plan["estimates"][memory_plan["precision"]]
  return own["total_remat"] if memory_plan["remat"] else own["total"]


def device_memory_limit(device=None) -> int | None:
  """What JAX's allocator may use on the device (bytes_limit), or None where unknown (CPU)."""
  stats = (device or jax.local_devices()[0]).memory_stats()
  return stats.get("bytes_limit") if stats else None


def check_fits(config, device_memory_bytes: float, n_devices: int | None = None,
               vocab_size: int | None = None) -> dict:
  """Raises ConfigError, with the figures, when the run's estimate exceeds device_memory_bytes.

  device_memory_bytes is what JAX may use on one device: device_memory_limit() on the device itself
  (JAX takes 75% of a GPU unless XLA_PYTHON_CLIENT_MEM_FRACTION says otherwise). The run's
  precision is its model.dtype as resolved on this machine, with its remat setting. Returns
  plan(...) when the run fits or the memory is not known (None: device_memory_limit() on a CPU).
  """
  memory_plan = plan(config, n_devices, vocab_size)
  needed = required_bytes(memory_plan)
  if device_memory_bytes is not None and needed > device_memory_bytes:
    own = memory_plan["estimates"][memory_plan["precision"]]
    activations = own["activations_remat" if memory_plan["remat"] else "activations"]
    weights = own["weights"] + own["master_weights"]
    raise ConfigError(
        f"{memory_plan['name']} needs ~{needed / GIB:.2f} GiB per device "
        f"({memory_plan['precision']}{', remat' if memory_plan['remat'] else ''}: weights "
        f"{weights / GIB:.2f}, gradients {own['gradients'] / GIB:.2f}, optimizer "
        f"{own['optimizer'] / GIB:.2f}, activations {activations / GIB:.2f} GiB for "
        f"{memory_plan['micro_batch_per_device']} sequences of {memory_plan['plan'].seq_len}) but "
        f"the device has {device_memory_bytes / GIB:.2f} GiB; lower train.batch_size, raise "
        "train.grad_accum, set model.remat=True or shard with mesh.fsdp")
  return memory_plan


def xla_memory(config, model_cfg, run_plan) -> dict:
  """XLA's memory analysis of the real train step (training.steps.Trainer), compiled from abstract shapes."""
  trainer = Trainer(config, model_cfg, run_plan, sharding.make_mesh(config))
  batch = jax.ShapeDtypeStruct((run_plan.batch_size, run_plan.seq_len + 1), jnp.int32,
                               sharding=trainer.batch_sharding)
  stats = trainer.train_step.lower(trainer.abstract_state, batch).compile().memory_analysis()
  result = {"argument": stats.argument_size_in_bytes, "output": stats.output_size_in_bytes,
            "alias": stats.alias_size_in_bytes, "temp": stats.temp_size_in_bytes}
  result["total"] = result["argument"] + result["output"] - result["alias"] + result["temp"]
  return result


def comparable_estimate(memory_plan: dict) -> tuple[str, bool, float]:
  """(precision, remat, total) of the estimate that XLA's figure on this backend should match."""
  if memory_plan["backend"] == "cpu":  # see the module docstring: XLA:CPU keeps float32, no remat
    return "fp32", False, memory_plan["estimates"]["fp32"]["total"]
  return memory_plan["precision"], memory_plan["remat"], required_bytes(memory_plan)


ROWS = (("weights", "weights (as stored)"), ("master_weights", "master weights (fp32)"),
        ("gradients", "gradients (fp32)"), ("optimizer", "AdamW moments (fp32)"),
        ("weight_copies", "weight copies (casts, gathers)"), ("batch", "batch"),
        ("activations", "activations"), ("activations_remat", "activations, remat"),
        ("total", "total"), ("total_remat", "total, remat"))


def format_table(memory_plan: dict, xla: dict | None, device_memory_bytes: float | None) -> str:
  cfg, run_plan, estimates = memory_plan["model_cfg"], memory_plan["plan"], memory_plan["estimates"]
  unit, unit_name = (GIB, "GiB") if estimates["fp32"]["total"] >= GIB else (2 ** 20, "MiB")
  lines = [
      f"{memory_plan['name']}: {cfg.n_layer} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, "
      f"d_ff {cfg.d_ff}, vocab {cfg.vocab_size}, seq_len {run_plan.seq_len}, "
      f"{run_plan.n_params_total:,} parameters ({run_plan.n_params:,} non-embedding)",
      f"mesh data {memory_plan['mesh']['data']} x fsdp {memory_plan['mesh']['fsdp']}; "
      f"{memory_plan['batch_per_device']} sequences per device per step "
      f"(micro-batch {memory_plan['micro_batch_per_device']}); backend {memory_plan['backend']}"
      + (", flash attention in the 16-bit columns" if memory_plan["flash_attention"]["bf16"]
         else ""),
      f"{'per device, ' + unit_name:<32}" + "".join(f"{p:>11}" for p in PRECISIONS)]
  for key, label in ROWS:
    lines.append(f"{label:<32}" + "".join(f"{estimates[p][key] / unit:>11.3f}" for p in PRECISIONS))
  for key, label in (("total_over_weights", "total / weights"),
                     ("total_remat_over_weights", "total, remat / weights")):
    lines.append(f"{label:<32}" + "".join(f"{estimates[p][key]:>11.1f}" for p in PRECISIONS))
  if device_memory_bytes:
    verdict = lambda e: ("fits" if e["total"] <= device_memory_bytes else
                         "remat" if e["total_remat"] <= device_memory_bytes else "no")
    lines.append(f"{f'fits {device_memory_bytes / GIB:g} GiB?':<32}"
                 + "".join(f"{verdict(estimates[p]):>11}" for p in PRECISIONS))
  if xla is not None:
    precision, remat, total = comparable_estimate(memory_plan)
    lines.append(
        f"XLA ({memory_plan['backend']}, compiled train step): arguments "
        f"{xla['argument'] / unit:.3f}, outputs {xla['output'] / unit:.3f}, aliased "
        f"{xla['alias'] / unit:.3f}, temp "
        f"{xla['temp'] / unit:.3f} -> total {xla['total'] / unit:.3f} {unit_name}; estimate "
        f"({precision}{', remat' if remat else ''}) {total / unit:.3f} {unit_name} "
        f"({(total - xla['total']) / xla['total']:+.1%})")
    if xla["total"] > 1.5 * total:
      lines.append("XLA needs far more than estimated: its activations are probably not split over "
                   "the batch (docs/design.md, \"Memory planner\", explains)")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m training.memory",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True, help="experiments/NAME.py")
  parser.add_argument("--vocab", type=int,
                      help="vocabulary size, instead of opening the config's data")
  parser.add_argument("--devices", type=int, help="devices the run uses (default: this machine's)")
  parser.add_argument("--backend", choices=("cpu", "gpu", "tpu"),
                      help="where the run will train (default: this machine's); gpu enables flash "
                           "attention in the 16-bit columns")
  parser.add_argument("--device-memory-gb", type=float,
                      help="memory per device, GiB, to say what fits (default: this GPU's)")
  parser.add_argument("--no-xla", action="store_true", help="skip compiling the train step")
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args, rest = parser.parse_known_args(argv)
  unknown = [arg for arg in rest if not arg.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  try:
    config = load_config(args.config, rest)
    memory_plan = plan(config, args.devices, args.vocab, args.backend)
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  xla, note = None, None
  if args.no_xla:
    note = "skipped (--no-xla)"
  elif args.devices and args.devices != jax.device_count():
    note = (f"skipped: the mesh needs {args.devices} devices and this machine has "
            f"{jax.device_count()} (on a CPU: XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{args.devices})")
  elif args.backend and args.backend != jax.default_backend():
    note = f"skipped: this machine compiles for {jax.default_backend()}, not {args.backend}"
  else:
    xla = xla_memory(memory_plan["config"], memory_plan["model_cfg"], memory_plan["plan"])
  device_memory = args.device_memory_gb * GIB if args.device_memory_gb else device_memory_limit()
  print(format_table(memory_plan, xla, device_memory))
  if note:
    print(f"XLA check {note}")
  if args.json:
    precision, remat, total = comparable_estimate(memory_plan)
    print(json.dumps({
        "name": memory_plan["name"], "model": dataclasses.asdict(memory_plan["model_cfg"]),
        "mesh": memory_plan["mesh"], "batch_per_device": memory_plan["batch_per_device"],
        "micro_batch_per_device": memory_plan["micro_batch_per_device"],
        "backend": memory_plan["backend"], "flash_attention": memory_plan["flash_attention"],
        "precision": memory_plan["precision"],
        "remat": memory_plan["remat"], "required_bytes": required_bytes(memory_plan),
        "device_memory_bytes": device_memory,
        "fits": None if device_memory is None else required_bytes(memory_plan) <= device_memory,
        "estimates": memory_plan["estimates"], "xla": xla,
        "xla_compared_with": {"precision": precision, "remat": remat, "total": total}}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
