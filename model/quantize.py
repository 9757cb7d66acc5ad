"""A trained run's weights in fp32, bf16, fp16 and int8: eval loss, weight memory, samples.

  python -m model.quantize --workdir RUN_DIR [--prompt TEXT --max-new-tokens K] [--json]

Each format stores every weight of the run's checkpoint (model.loading.load_model) differently
and the forward pass computes in the run's own dtype (float32 on a CPU), so a row's loss is what
storing the weights that way costs:
  fp32, bf16, fp16  every parameter cast to that float type (the layers cast back to the compute
                    dtype, as Flax's promote_dtype does).
  int8              weight-only, symmetric, per output channel: a matrix W becomes int8 q and a
                    float32 scale per output channel, s = max|w| / 127 over the channel, q =
                    round(w / s), so |w - q s| <= s / 2. Output channels are the columns of the
                    kernels used as x @ W (and of the untied output matrix) and the rows of the
                    embedding tables (one vector per token, the output channel of the tied logits).
                    Norm scales (vectors, 0.1% of the weights) stay float32.
                    The int8 weights are dequantised inside the jitted eval step, before the
                    forward pass: between steps only int8 + scales are held, and the loss is exactly
                    that of int8 storage. A fused int8 matmul kernel would save the transient float
                    copy too, but changes no loss and XLA has none on the CPU.
One more row computes in bfloat16 as well (bf16 weights, bf16 activations: the model's
dtype="bfloat16"), when the run computes in float32. fp16 compute has no row: ModelConfig
offers float32 and bfloat16 only.

The int8 weights are written to RUN_DIR/quantized/int8.npz (numpy: a q array under each parameter's
path and its scales under PATH:scale; float32 vectors under their path) and the int8 row is
evaluated from that file as loaded back. Eval data: the run's first eval_tokens // seq_len eval
sequences in batches of train.batch_size, as train.py evaluates on one device, so the fp32 row
reproduces the run's final_eval_loss.
"""
import argparse
import dataclasses
import io
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import data
from core import files
from model import generate, loading, objectives

INT8_MAX = 127
FLOAT_FORMATS = {"fp32": np.float32, "bf16": jnp.bfloat16, "fp16": np.float16}
FORMATS = (*FLOAT_FORMATS, "int8")
SCALE_SUFFIX = ":scale"
INT8_FILE = os.path.join("quantized", "int8.npz")


def channel_axis(path: str) -> int:
  """The output-channel axis of a matrix parameter: rows of embedding tables, columns otherwise."""
  return 0 if path.endswith("embedding") else 1


def channels(path: str, shape) -> int:
  """How many float32 scales int8 storage keeps for a matrix parameter."""
  return shape[channel_axis(path)]


def quantize(w, axis: int):
  """Symmetric int8 with one scale per index of `axis` of the 2-D w: (int8 q, float32 scale).

  scale = max|w| / 127 over the other axis (kept with size 1, so q * scale broadcasts); an all-zero
  channel gets scale 0 and q 0.
  """
  w = np.asarray(w, np.float32)
  scale = np.max(np.abs(w), axis=1 - axis, keepdims=True) / INT8_MAX
  q = np.round(w / np.where(scale > 0, scale, 1))
  return np.clip(q, -INT8_MAX, INT8_MAX).astype(np.int8), scale.astype(np.float32)


def dequantize(q, scale):
  """float32 q * scale (numpy or traced arrays)."""
  return q.astype(jnp.float32) * scale


def _path_name(path) -> str:
  return "/".join(map(str, path))


def flatten(params) -> dict:
  """{path: array} of an nnx parameter State ("blocks/0/attn/query/kernel")."""
  return {_path_name(path): variable.get_value() for path, variable in nnx.to_flat_state(params)}


def unflatten(flat: dict, like):
  """An nnx parameter State shaped like `like` holding the arrays of `flat` (as `flatten` names them)."""
  return nnx.from_flat_state([(path, variable.replace(flat[_path_name(path)]))
                              for path, variable in nnx.to_flat_state(like)])


def store(flat: dict, fmt: str) -> dict:
  """The parameters as the format stores them: {path: array} (+ {path:scale: scales} for int8)."""
  if fmt in FLOAT_FORMATS:
    return {path: np.asarray(w).astype(FLOAT_FORMATS[fmt]) for path, w in flat.items()}
  if fmt != "int8":
    raise ValueError(f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
  stored = {}
  for path, w in flat.items():
    if np.ndim(w) == 2:
      stored[path], stored[path + SCALE_SUFFIX] = quantize(w, channel_axis(path))
    else:
      stored[path] = np.asarray(w, np.float32)
  return stored


def materialise(stored: dict) -> dict:
  """{path: float array} from a stored format, dequantising int8 matrices."""
  return {path: dequantize(w, stored[path + SCALE_SUFFIX]) if path + SCALE_SUFFIX in stored else w
          for path, w in stored.items() if not path.endswith(SCALE_SUFFIX)}


def nbytes(stored: dict) -> int:
  return sum(np.asarray(w).nbytes for w in stored.values())


def save_int8(stored: dict, path: str) -> None:
  """Writes an int8 store as .npz, atomically."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  buffer = io.BytesIO()
  np.savez(buffer, **stored)
  files.write_atomic(path, buffer.getvalue())


def load_int8(path: str) -> dict:
  with np.load(path) as npz:
    return {name: npz[name] for name in npz.files}


def eval_batches(config, workdir: str) -> list[np.ndarray]:
  """The run's eval sequences: eval_tokens // seq_len of them in batches of train.batch_size."""
  source = data.make_source(config, workdir)
  count = max(1, config.train.eval_tokens // config.train.seq_len)
  batch = config.train.batch_size
  return [source.sequences("eval", start, batch) for start in range(0, count, batch)]


def mean_loss(model, stored: dict, batches, compute_dtype: str | None = None) -> float:
  """Mean eval loss of `model`'s architecture with the stored weights, computed in compute_dtype
  (default: the model's own); int8 is dequantised inside the jitted step."""
  cfg = model.cfg if compute_dtype is None else dataclasses.replace(model.cfg, dtype=compute_dtype)
  abstract = nnx.eval_shape(lambda: objectives.build_model(cfg, nnx.Rngs(0)))
  graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)

  @jax.jit
  def batch_loss(stored, batch):
    model = nnx.merge(graphdef, unflatten(materialise(stored), params), rest)
    return objectives.loss(model, batch, jax.random.key(0))

  return float(np.mean([batch_loss(stored, batch) for batch in batches]))


def model_with(model, stored: dict):
  """A copy of `model` holding the stored weights (int8 dequantised to float32), for sampling."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return nnx.merge(graphdef, unflatten(materialise(stored), params), rest)


def evaluate_run(workdir: str, prompt: str | None = None, max_new_tokens: int = 32) -> dict:
  """Every format's eval loss and weight bytes for a run; writes and reloads the int8 weights."""
  model, config = loading.load_model(workdir)
  batches = eval_batches(config, workdir)
  flat = flatten(nnx.state(model, nnx.Param))
  int8_path = os.path.join(workdir, INT8_FILE)
  save_int8(store(flat, "int8"), int8_path)
  rows = []
  compute = model.cfg.dtype
  variants = [(fmt, compute) for fmt in FORMATS]
  if compute != "bfloat16":
    variants.append(("bf16", "bfloat16"))
  tokenizer = data.load_tokenizer(workdir) if prompt else None
  for fmt, dtype in variants:
    stored = load_int8(int8_path) if fmt == "int8" else store(flat, fmt)
    row = {"format": fmt, "compute_dtype": dtype, "weight_bytes": nbytes(stored),
           "eval_loss": mean_loss(model, stored, batches, dtype)}
    if prompt and dtype == compute:
      prompt_tokens = tokenizer.encode(prompt)
      out = generate.generate(model_with(model, stored), prompt_tokens, max_new_tokens,
                              jax.random.key(0), temperature=0.0)
      row["sample"] = tokenizer.decode([int(t) for t in out[len(prompt_tokens):]])
    rows.append(row)
  fp32 = rows[0]
  for row in rows:
    row["loss_change"] = row["eval_loss"] - fp32["eval_loss"]
    row["memory_ratio"] = row["weight_bytes"] / fp32["weight_bytes"]
  n_params_total = sum(math.prod(np.shape(w)) for w in flat.values())
  return {"workdir": workdir, "int8_path": int8_path, "n_params_total": n_params_total,
          "eval_sequences": sum(len(b) for b in batches), "rows": rows}


def format_table(report: dict) -> str:
  lines = [f"{report['workdir']}: {report['n_params_total']:,} parameters, "
           f"{report['eval_sequences']} eval sequences; int8 weights in {report['int8_path']}",
           f"{'weights':<8}{'compute':>10}{'eval loss':>11}{'change':>10}{'weight bytes':>14}"
           f"{'vs fp32':>9}"]
  for row in report["rows"]:
    lines.append(f"{row['format']:<8}{row['compute_dtype']:>10}{row['eval_loss']:>11.5f}"
                 f"{row['loss_change']:>+10.5f}{row['weight_bytes']:>14,}"
                 f"{row['memory_ratio']:>9.3f}")
  for row in report["rows"]:
    if "sample" in row:
      lines.append(f"{row['format']} sample: {row['sample']!r}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m model.quantize",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="a run directory of train.py")
  parser.add_argument("--prompt", help="also continue this text greedily in each format")
  parser.add_argument("--max-new-tokens", type=int, default=32)
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args = parser.parse_args(argv)
  try:
    report = evaluate_run(args.workdir, args.prompt, args.max_new_tokens)
  except (ValueError, OSError) as error:  # ConfigError is a ValueError
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(format_table(report))
  if args.json:
    print(json.dumps(report))
  return 0


if __name__ == "__main__":
  sys.exit(main())
