"""The coordinate check: do a parametrization's activations and updates keep their scale with width
(and depth)? `python -m training.coord_check --config F [--parametrization P] [--widths 32,64,...]
[--depths 2,4,...] [--steps S] [--lr LR] [--tolerance T] [--out DIR] [--json] [--config.a.b=v]`.

Each shape (the config's model with d_model = each width at its n_layer, or n_layer = each depth
at its d_model; its n_heads fixed, d_ff 4 d_model) trains S steps from the same seed on the same
batches (constant lr after a one-step warmup) through the real train step (training/steps.py).
Then, on the first train batch, the initial and the trained model are compared, per layer:
  act.L            RMS of the residual stream after block L (0: the embedding output)
  act_update.L     RMS of its change since initialisation
  update.L.M       RMS of (W_S - W_0) x for block L's matrix M, x its input in the trained model
                   (what the weight update does to its output), update.embed, update.readout
  logits, logits_update   RMS of the logits and of their change
A depth check reports the last block's act and act_update (act.last) and the mean over blocks
of each matrix's update (update.M). Each quantity's slope is the least-squares slope of log RMS
against log width (depth). muP's promise (Yang et al. 2022) is that none of them grows or
vanishes with width: the check passes when every slope is within +-tolerance. The default, 0.4
(a factor 8^0.4 = 2.3 over 8x width), leaves room for the finite-width drift muP shows at these
tiny widths (slopes down to -0.3 from width 32 to 256, docs/results/2026-12-03-mup.md); under sp
Adam's updates grow about as width^1 and fail it. CompleteP's promise is the same across depth.
Base shape: the smallest width (depth) unless the config or --base-width / --base-depth set one.
A PNG of every quantity against width (depth) is written to DIR when matplotlib imports; it is
never fatal. Exit codes: 0 pass, 1 fail, 2 bad input (one line, before anything trains).
"""
import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys

import numpy as np

from core.config import ConfigError, load_config, one_line
from model import parametrization

TOLERANCE = 0.4
WIDTHS = (32, 64, 128, 256)


@dataclasses.dataclass
class Check:
  """One sweep of shapes (axis "width" or "depth"): each quantity's RMS per size, and its slope."""
  axis: str
  sizes: list
  values: dict          # quantity -> [RMS per size]
  slopes: dict          # quantity -> slope of log RMS against log size

  def failing(self, tolerance: float) -> list[str]:
    return [name for name, slope in self.slopes.items() if not abs(slope) <= tolerance]


def slope(sizes, values) -> float:
  """Least-squares slope of log(values) against log(sizes); nan for a zero or non-finite value."""
  values = np.asarray(values, float)
  if not np.all(np.isfinite(values)) or np.any(values <= 0):
    return float("nan")
  return float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(values), 1)[0])


def rms(x) -> float:
  return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64)))))


@contextlib.contextmanager
def recorded_inputs():
  """Records, while open, the input of every model.transformer.Linear call ({id(layer): x});
  the forward passes it watches run eagerly (this is a diagnostic, never inside the train step)."""
  from model import transformer  # pylint: disable=g-import-not-at-top
  inputs, original = {}, transformer.Linear.__call__

  def call(layer, x):
    inputs[id(layer)] = x
    return original(layer, x)

  transformer.Linear.__call__ = call
  try:
    yield inputs
  finally:
    transformer.Linear.__call__ = original


def trained_pair(config, steps: int):
  """(initial model, trained model, probe tokens) of `config` after `steps` train steps."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from training import plan as plan_lib  # pylint: disable=g-import-not-at-top
  from training.batches import Batches  # pylint: disable=g-import-not-at-top
  from training.sharding import make_mesh  # pylint: disable=g-import-not-at-top
  from training.steps import Trainer  # pylint: disable=g-import-not-at-top
  config, source, model_cfg, plan = plan_lib.resolve(config, jax.device_count())
  trainer = Trainer(config, model_cfg, plan, make_mesh(config))
  batches = Batches(trainer.batch_sharding, plan.batch_size, 1)
  state = trainer.init()
  initial = jax.device_get(state["params"])
  probe = None
  for batch in batches.train([source], 0, steps):
    probe = np.asarray(batch)[:, :-1] if probe is None else probe
    state, _ = trainer.train_step(state, batch)
  model = lambda params: nnx.merge(trainer.graphdef, params, trainer.rest)
  return model(initial), model(jax.device_get(state["params"])), probe


def _forward(model, tokens):
  """Residual stream after the embedding and each block, the logits, and each Linear's input."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  positions = jnp.arange(tokens.shape[1])
  with recorded_inputs() as inputs:
    stream = [model._embed(tokens, positions)]  # pylint: disable=protected-access
    for block in model.blocks:
      stream.append(block(stream[-1], positions)[0])
    logits = model._logits(stream[-1])  # pylint: disable=protected-access
  return stream, logits, inputs


def measure(initial, trained, tokens) -> dict:
  """The quantities of the module docstring for one shape: name -> RMS."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from model.transformer import Linear  # pylint: disable=g-import-not-at-top
  stream0, logits0, _ = _forward(initial, tokens)
  stream, logits, inputs = _forward(trained, tokens)
  out = {"logits": rms(logits), "logits_update": rms(logits - logits0)}
  for layer, (h0, h) in enumerate(zip(stream0, stream)):
    out[f"act.{layer}"], out[f"act_update.{layer}"] = rms(h), rms(h - h0)
  layers0 = dict(nnx.iter_modules(initial))
  for path, layer in nnx.iter_modules(trained):
    if isinstance(layer, Linear) and path[0] == "blocks":
      delta = layer.kernel[...] - layers0[path].kernel[...]
      x = inputs[id(layer)]
      out[f"update.{path[1]}.{path[-1]}"] = rms(x.reshape(-1, x.shape[-1]) @ delta)
  embed_delta = trained.embed.embedding[...] - initial.embed.embedding[...]
  out["update.embed"] = rms(embed_delta[tokens])
  if trained.unembed is not None:
    normed = trained.norm(stream[-1]).reshape(-1, stream[-1].shape[-1])
    scale = trained.output_scale or 1.0
    out["update.readout"] = rms(scale * (normed @ (trained.unembed[...] - initial.unembed[...])))
  return out


def by_depth(quantities: dict, n_layer: int) -> dict:
  """A depth check's quantities: the last block's stream, each matrix's update averaged over the
  blocks, the logits and the embedding and readout updates."""
  out = {key: value for key, value in quantities.items()
         if key.startswith("logits") or key in ("update.embed", "update.readout")}
  out["act.last"], out["act_update.last"] = (quantities[f"act.{n_layer}"],
                                             quantities[f"act_update.{n_layer}"])
  matrices = sorted({key.split(".")[2] for key in quantities if key.count(".") == 2})
  for matrix in matrices:
    out[f"update.{matrix}"] = float(np.mean([quantities[f"update.{layer}.{matrix}"]
                                             for layer in range(n_layer)]))
  return out


def shape_config(config, axis: str, size: int, steps: int):
  """`config` at one width (d_model) or depth (n_layer), set up for the check's short run."""
  config = config.copy_and_resolve_references()
  if axis == "width":
    config.model.d_model = size
  else:
    config.model.n_layer = size
  config.model.d_ff = 0
  config.train.tokens = steps * config.train.batch_size * config.train.seq_len
  config.train.schedule, config.train.warmup_tokens = "constant", 1
  config.train.replicas, config.train.replica_seeds, config.train.replica_lrs = 1, (), ()
  config.train.compilation_cache, config.wandb.mode = "", "disabled"
  return config


def run_check(config, axis: str, sizes, steps: int) -> Check:
  values = {}
  for size in sizes:
    initial, trained, tokens = trained_pair(shape_config(config, axis, size, steps), steps)
    quantities = measure(initial, trained, tokens)
    if axis == "depth":
      quantities = by_depth(quantities, size)
    for name, value in quantities.items():
      values.setdefault(name, []).append(value)
  return Check(axis, list(sizes), values, {name: slope(sizes, v) for name, v in values.items()})


def prepare(args):
  """The config the checks run on, refusing what cannot run (ConfigError, one line)."""
  config = load_config(args.config, args.override)
  model = config.model
  if args.parametrization:
    model.parametrization = args.parametrization
  if model.family == "encoder_decoder" or config.finetune.method != "full" or config.init_from:
    raise ConfigError("the coordinate check trains decoders and encoders from scratch; use "
                      "model.family decoder or encoder, no init_from and finetune.method=full")
  if model.target_params:
    raise ConfigError("the coordinate check sets the widths and depths itself; give the config "
                      "an explicit shape (model.n_layer, model.d_model, model.n_heads), not "
                      "model.target_params")
  if not model.n_layer or not model.d_model or not model.n_heads:
    raise ConfigError("the coordinate check needs model.n_layer, model.d_model and model.n_heads")
  if not config.train.batch_size or not config.train.lr:
    raise ConfigError("the coordinate check needs train.batch_size and train.lr (or --lr)")
  if args.steps < 2:
    raise ConfigError(f"--steps must be at least 2 (the first is warmup), got {args.steps}")
  if not args.tolerance > 0:
    raise ConfigError(f"--tolerance must be positive, got {args.tolerance}")
  for name, sizes in (("widths", args.widths), ("depths", args.depths)):
    if sizes is not None and (len(sizes) < 2 or min(sizes) < 1 or len(set(sizes)) < len(sizes)):
      raise ConfigError(f"--{name} needs at least two distinct positive sizes, got {sizes}")
  for width in args.widths or ():
    if width % model.n_heads:
      raise ConfigError(f"width {width} is not a multiple of model.n_heads={model.n_heads}")
  if args.lr:
    config.train.lr = args.lr
  model.base_width = args.base_width or model.base_width or min(args.widths or [model.d_model])
  model.base_depth = args.base_depth or model.base_depth or min(args.depths or [model.n_layer])
  if model.parametrization == "sp":
    model.base_width = model.base_depth = 0
  parametrization.check(model.parametrization, model.base_width, model.base_depth)
  return config


def plot(checks, title: str, path: str) -> str | None:
  """One log-log panel per kind of quantity and check; None (and a warning) when it fails."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    kinds = ("act", "act_update", "update", "logits")
    fig, axes = plt.subplots(len(checks), len(kinds), figsize=(4 * len(kinds), 3.2 * len(checks)),
                             squeeze=False)
    for row, check in zip(axes, checks):
      for ax, kind in zip(row, kinds):
        for name, values in check.values.items():
          if ("logits" if name.startswith("logits") else name.split(".")[0]) == kind:
            ax.plot(check.sizes, values, marker="o", label=name)
        ax.set(xscale="log", yscale="log", xlabel=check.axis, title=f"{kind} ({check.axis})")
        ax.legend(fontsize=5)
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
  except Exception as error:  # pylint: disable=broad-except  (a figure is never fatal)
    print(f"warning: no coordinate-check figure ({one_line(error)})", file=sys.stderr)
    return None


def sizes_arg(text: str) -> list[int]:
  try:
    return [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # one line and exit 2, as every bad input here
    self.exit(2, f"error: {message}\n")


def main(argv=None) -> int:
  parser = _Parser(prog="python -m training.coord_check", description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True, help="an experiment config file")
  parser.add_argument("--parametrization", choices=parametrization.PARAMETRIZATIONS)
  parser.add_argument("--widths", type=sizes_arg, help="d_model values, e.g. 32,64,128,256")
  parser.add_argument("--depths", type=sizes_arg, help="n_layer values, e.g. 2,4,8")
  parser.add_argument("--steps", type=int, default=10, help="train steps per shape (default 10)")
  parser.add_argument("--lr", type=float, default=0.0, help="peak lr (default: the config's)")
  parser.add_argument("--base-width", type=int, default=0)
  parser.add_argument("--base-depth", type=int, default=0)
  parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                      help=f"largest |slope| that passes (default {TOLERANCE})")
  parser.add_argument("--out", default="runs/coord_check", help="directory of the PNG")
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args, args.override = parser.parse_known_args(argv)  # and --config.a.b=value, as train.py's
  for item in args.override:
    if not item.startswith("--config."):
      parser.error(f"unrecognized argument {item!r} (config overrides are --config.a.b=value)")
  if args.widths is None and args.depths is None:
    args.widths = list(WIDTHS)
  try:
    config = prepare(args)
  except (ConfigError, OSError) as error:
    print(f"error: {one_line(error)}", file=sys.stderr)
    return 2
  name = config.model.parametrization
  checks = [run_check(config, axis, sizes, args.steps)
            for axis, sizes in (("width", args.widths), ("depth", args.depths)) if sizes]
  failing = {check.axis: check.failing(args.tolerance) for check in checks}
  for check in checks:
    print(f"{name}: coordinate check over {check.axis} {check.sizes} ({args.steps} steps, lr "
          f"{config.train.lr:g}); slope of log RMS per log {check.axis}, pass within "
          f"+-{args.tolerance:g}")
    for quantity, values in check.values.items():
      verdict = "FAIL" if quantity in failing[check.axis] else "ok"
      print(f"  {quantity:<22} {' '.join(f'{v:9.3g}' for v in values)}   slope "
            f"{check.slopes[quantity]:+.2f}  {verdict}")
  passed = not any(failing.values())
  axes = "_".join(check.axis for check in checks)
  png = plot(checks, f"coordinate check: {name}",
             os.path.join(args.out, f"coord_check_{name}_{axes}.png"))
  print(f"{name}: {'PASS' if passed else 'FAIL'}" + "".join(
      f"; {axis}: {len(names)} quantities outside +-{args.tolerance:g} ({', '.join(names[:4])}"
      f"{', ...' if len(names) > 4 else ''})" for axis, names in failing.items() if names)
        + (f"; figure {png}" if png else ""))
  if args.json:
    print(json.dumps({"parametrization": name, "pass": passed, "tolerance": args.tolerance,
                      "steps": args.steps, "lr": config.train.lr,
                      "base_width": config.model.base_width, "base_depth": config.model.base_depth,
                      "slopes": {c.axis: {k: None if math.isnan(v) else v
                                          for k, v in c.slopes.items()} for c in checks},
                      "sizes": {c.axis: c.sizes for c in checks},
                      "values": {c.axis: c.values for c in checks}, "failing": failing,
                      "png": png}))
  return 0 if passed else 1


if __name__ == "__main__":
  sys.exit(main())
