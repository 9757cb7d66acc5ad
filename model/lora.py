"""LoRA (Hu et al. 2021): low-rank adapters on the dense layers, their settings, and their merge.

An adapted layer computes x W + (alpha / r) x A B. W [d_in, d_out] is the layer's kernel, frozen;
A [d_in, r] (flax's he_uniform) and B [r, d_out] (zeros, so an adapted model starts exactly as its
base) are `nnx.LoRAParam`s, flax's nnx.LoRA attached to model/transformer.py's `Linear` as `lora`.
LoRAParam is a subclass of nnx.Param, so `nnx.split(model, nnx.LoRAParam, nnx.Param, ...)` puts
the adapters (trained) and the base weights (frozen: embeddings, norms and kernels) apart, and the
kernels keep their paths, so a base run's checkpoint loads into an adapted model unchanged.

Targets name the matrices: query, key_value, out (every attention, self and cross), up, gate,
down (every MLP; gate only exists with SwiGLU); "attention" and "mlp" name the groups. The fused
key/value projection gets one adapter (A [d, r], B [r, 2d]). model/sizing.py counts them exactly.

CLI: python -m model.lora --workdir LORA_RUN --out DIR [--json] writes DIR, a run directory whose
checkpoint holds the merged weights W + (alpha / r) A B (generation, quantization, init_from and
anything else that reads plain weights); model.loading.load_model merges on load anyway.
"""
import argparse
import dataclasses
import json
import os
import sys

from flax import nnx

from core.config import ConfigError
from model.transformer import Linear

METHODS = ("full", "lora")
GROUPS = {"attention": ("query", "key_value", "out"), "mlp": ("up", "gate", "down")}
MATRICES = GROUPS["attention"] + GROUPS["mlp"]


@dataclasses.dataclass(frozen=True)
class LoRASettings:
  """config.finetune of a LoRA run, checked: rank r, alpha, the adapted matrices by name."""
  rank: int
  alpha: float
  targets: tuple[str, ...]

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


def parse_targets(text: str) -> tuple[str, ...]:
  """'attention,mlp' or matrix names -> the matrix names, in MATRICES order."""
  names = set()
  for item in (part.strip() for part in str(text).split(",")):
    if item in GROUPS:
      names.update(GROUPS[item])
    elif item in MATRICES:
      names.add(item)
    else:
      raise ConfigError(f"finetune.lora_targets has {item!r}; use attention, mlp or matrix "
                        f"names ({', '.join(MATRICES)}), comma-separated")
  return tuple(name for name in MATRICES if name in names)


def settings_of(config) -> LoRASettings | None:
  """The LoRA settings of a config (None: full fine-tuning or pre-training, or a config written
  before the finetune section existed); ConfigError for values that cannot run."""
  finetune = config.get("finetune")
  method = "full" if finetune is None else finetune.method
  if method not in METHODS:
    raise ConfigError(f"finetune.method={method!r} is unknown; use full or lora")
  if method == "full":
    return None
  if not isinstance(finetune.lora_rank, int) or finetune.lora_rank < 1:
    raise ConfigError(f"finetune.lora_rank must be a positive integer, got {finetune.lora_rank!r}")
  if finetune.lora_alpha < 0:
    raise ConfigError(f"finetune.lora_alpha must be positive (0: the rank), got "
                      f"{finetune.lora_alpha}")
  return LoRASettings(rank=finetune.lora_rank,
                      alpha=float(finetune.lora_alpha or finetune.lora_rank),
                      targets=parse_targets(finetune.lora_targets))


def param_filters(settings: LoRASettings | None) -> tuple:
  """The nnx filters that split a model's parameters into (trained, frozen...): the adapters and
  the base weights with LoRA, every parameter (nothing frozen) without."""
  return (nnx.Param,) if settings is None else (nnx.LoRAParam, nnx.Param)


def adapted_layers(model) -> list[Linear]:
  return [module for _, module in nnx.iter_modules(model)
          if isinstance(module, Linear) and module.lora is not None]


def attach(model, settings: LoRASettings, rngs: nnx.Rngs):
  """Adds an adapter to every targeted Linear of `model` (in place); returns the model."""
  targeted = [module for path, module in nnx.iter_modules(model)
              if isinstance(module, Linear) and path and path[-1] in settings.targets]
  for module in targeted:
    module.lora = nnx.LoRA(module.in_features, settings.rank, module.out_features,
                           dtype=module.dtype, rngs=rngs)
    module.lora_scale = settings.scale
  return model


def merge(model):
  """Folds every adapter into its kernel, W + scale A B in float32, and removes it (in place):
  the model becomes the plain Transformer its weights now describe. Returns the model."""
  for module in adapted_layers(model):
    delta = module.lora_scale * (module.lora.lora_a[...] @ module.lora.lora_b[...])
    module.kernel.set_value(module.kernel[...] + delta.astype(module.kernel.dtype))
    del module.lora
    del module.lora_scale
  return model


def export_merged(workdir: str, out: str) -> dict:
  """Writes `out`: a run directory holding the merged weights of LoRA run `workdir` (its config
  as a full model, its tokenizer, its result with `merged_from`). Returns that result."""
  from core import rundir  # pylint: disable=g-import-not-at-top
  import data  # pylint: disable=g-import-not-at-top
  from model import loading  # pylint: disable=g-import-not-at-top
  config = rundir.read_config(workdir)
  if settings_of(config) is None:
    raise ConfigError(f"{workdir} is not a LoRA run (finetune.method is not lora); its weights "
                      "are already plain")
  model, _ = loading.load_model(workdir)
  step = loading.latest_step(workdir)
  os.makedirs(out, exist_ok=True)
  loading.save_params(out, step, nnx.state(model, nnx.Param))
  config.finetune.method = "full"
  rundir.write_config(out, config)
  data.load_tokenizer(workdir).save(out)
  result = {**(rundir.read_result(workdir) or {}), "merged_from": os.path.abspath(workdir)}
  rundir.write_result(out, result)
  return result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m model.lora",
                                   description="Merge a LoRA run's adapters into its base weights.")
  parser.add_argument("--workdir", required=True, help="the LoRA run's directory")
  parser.add_argument("--out", required=True, help="the run directory for the merged weights")
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args = parser.parse_args(argv)
  if os.path.abspath(args.out) == os.path.abspath(args.workdir):
    print("error: --out must differ from --workdir", file=sys.stderr)
    return 2
  try:
    result = export_merged(args.workdir, args.out)
  except (ConfigError, OSError) as error:  # raised before anything is written
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"merged weights of {args.workdir} written to {args.out}")
  if args.json:
    print(json.dumps({"out": os.path.abspath(args.out), "merged_from": result["merged_from"]}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
