"""How initialisation, forward multipliers and the optimizer's per-group settings scale with a
model's width and depth: `model.parametrization` = sp | mup | completep.

With m_d = d_model / model.base_width and m_L = n_layer / model.base_depth (the base shape is where
every multiplier is 1, so a model of the base shape trains exactly as under sp):

                          sp            mup (Tensor Programs V, Adam)   completep (Dey et al. 2025)
  embedding init std      s             s                               s
  hidden init std         s             s / sqrt(m_d)                   s / sqrt(m_d)
  residual out init std   s/sqrt(2L)    s / sqrt(2 L m_d)               s / sqrt(2 L_base m_d)
  readout init std        s             s                               s
  attention logits        qk/sqrt(D)    qk sqrt(D_base) / D             qk sqrt(D_base) / D
  logits                  x U           x U / m_d                       x U / m_d
  residual branches       x + f(x)      x + f(x)                        x + f(x) / m_L^alpha
  lr: hidden matrices     1             1 / m_d                         m_L^(alpha-1) / m_d
      block norm scales   1             1                               m_L^(alpha-1)
      embedding, readout, final norms   1
  Adam eps: hidden, block norms   1     1 / m_d                         1 / (m_d m_L^alpha)
      embedding, readout, final norms   1 / m_d (sp: 1)
  weight decay: hidden    1             m_d                             m_d m_L^(1-alpha)

(s = 0.02, GPT-2's; "hidden" = every block's query, key_value, out, up, gate and down matrices; a
factor of the lr, eps or weight decay multiplies train.lr (its schedule), Adam's 1e-8 or
train.weight_decay.) CompleteP is alpha = 1 (DEPTH_ALPHA). The hidden weight decay grows as the
lr shrinks so that lr x weight_decay, the decay per step of AdamW, stays the base shape's; norm
scales are never decayed, as under sp. Adam's epsilon follows the gradients' scale (1 / m_d
throughout under muP, 1 / m_L^alpha more in the blocks under CompleteP), so it stays as small
against them as at the base shape. D_base is the base shape's head dim (ModelConfig.base_head_dim).
mup does not scale with depth: base_depth is CompleteP's. LoRA adapters keep sp's settings (no
rule of muP covers them here); their base model's forward multipliers apply as trained.

Nothing here adds parameters or FLOPs (model/sizing.py's counts are unchanged): the multipliers
are elementwise scalings of tensors the step computes anyway. Under sp every multiplier is None
and the model and optimizer run exactly the code (and the numbers) they ran before this module.
"""
import dataclasses
import math

import jax

from core.config import ConfigError

PARAMETRIZATIONS = ("sp", "mup", "completep")
INIT_STD = 0.02     # s: GPT-2's normal(0.02) initialisation
DEPTH_ALPHA = 1.0   # CompleteP's residual exponent (1/2 would be the depth-muP of Yang et al. 2023)
GROUPS = ("embedding", "readout", "vector", "hidden", "block_vector", "adapter")


@dataclasses.dataclass(frozen=True)
class Scales:
  """A model's initialisation stds and forward multipliers (None: not applied, as under sp)."""
  embed_std: float
  hidden_std: float
  out_std: float              # the residual branches' output projections (attention out, MLP down)
  readout_std: float
  attention: float | None     # multiplies the queries: logits q k attention / sqrt(head_dim)
  residual: float | None      # multiplies every residual branch
  output: float | None        # multiplies the logits


@dataclasses.dataclass(frozen=True)
class Group:
  """One optimizer group's factors on the step's lr, on Adam's eps and on train.weight_decay."""
  lr: float
  eps: float
  weight_decay: float


def check(parametrization: str, base_width: int, base_depth: int) -> None:
  """ConfigError (one line) for a parametrization that cannot be set up."""
  if parametrization not in PARAMETRIZATIONS:
    raise ConfigError(f"model.parametrization={parametrization!r} is unknown; use one of "
                      f"{', '.join(PARAMETRIZATIONS)}")
  for name, value in (("base_width", base_width), ("base_depth", base_depth)):
    if not isinstance(value, int) or value < 0:
      raise ConfigError(f"model.{name} must be a non-negative integer, got {value!r}")
  if parametrization != "sp" and base_width == 0:
    raise ConfigError(f"model.parametrization={parametrization} needs model.base_width, the "
                      "d_model where its multipliers are 1 (e.g. the smallest width of a sweep)")
  if parametrization == "completep" and base_depth == 0:
    raise ConfigError("model.parametrization=completep needs model.base_depth, the n_layer where "
                      "its depth multipliers are 1")


def width_multiplier(cfg) -> float:
  """m_d = d_model / base_width (1 under sp)."""
  return 1.0 if cfg.parametrization == "sp" else cfg.d_model / cfg.base_width


def depth_multiplier(cfg) -> float:
  """m_L = n_layer / base_depth under completep (1 otherwise)."""
  return cfg.n_layer / cfg.base_depth if cfg.parametrization == "completep" else 1.0


def scales(cfg) -> Scales:
  """The initialisation and forward multipliers of a ModelConfig; see the module docstring."""
  if cfg.parametrization == "sp":
    return Scales(embed_std=INIT_STD, hidden_std=INIT_STD,
                  out_std=INIT_STD / math.sqrt(2 * cfg.n_layer), readout_std=INIT_STD,
                  attention=None, residual=None, output=None)
  m_d, m_l = width_multiplier(cfg), depth_multiplier(cfg)
  completep = cfg.parametrization == "completep"
  out_depth = cfg.base_depth if completep else cfg.n_layer
  base_head_dim = cfg.base_head_dim or cfg.base_width / cfg.n_heads
  return Scales(embed_std=INIT_STD, hidden_std=INIT_STD / math.sqrt(m_d),
                out_std=INIT_STD / math.sqrt(2 * out_depth * m_d), readout_std=INIT_STD,
                attention=math.sqrt(base_head_dim / cfg.head_dim),
                residual=m_l ** -DEPTH_ALPHA if completep else None, output=1.0 / m_d)


def groups(cfg) -> dict[str, Group]:
  """The optimizer groups' factors (GROUPS) of a mup or completep ModelConfig."""
  m_d, m_l = width_multiplier(cfg), depth_multiplier(cfg)
  a = DEPTH_ALPHA  # (m_l is 1 under mup)
  outer = Group(lr=1.0, eps=1.0 / m_d, weight_decay=1.0)
  return {"embedding": outer, "readout": outer,
          "vector": dataclasses.replace(outer, weight_decay=0.0),
          "hidden": Group(lr=m_l ** (a - 1) / m_d, eps=1.0 / (m_d * m_l ** a),
                          weight_decay=m_d * m_l ** (1 - a)),
          "block_vector": Group(lr=m_l ** (a - 1), eps=1.0 / (m_d * m_l ** a), weight_decay=0.0),
          "adapter": Group(lr=1.0, eps=1.0, weight_decay=1.0)}


def group_of(names: tuple, ndim: int) -> str:
  """The group of a parameter by its path in the model (names) and its number of axes."""
  if "lora" in names:
    return "adapter"
  if names[0] in ("blocks", "encoder"):
    return "hidden" if ndim >= 2 else "block_vector"
  if names[0] in ("embed", "pos_embed"):
    return "embedding"
  if names[0] == "unembed":
    return "readout"
  return "vector"  # the final norms


def labels(params):
  """Each parameter's group, as a tree shaped like `params` (optax.multi_transform's labels)."""
  name = lambda key: getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))
  return jax.tree_util.tree_map_with_path(
      lambda path, p: group_of(tuple(name(key) for key in path), p.ndim), params)
