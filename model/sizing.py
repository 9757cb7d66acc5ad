"""Exact parameter counts, Chinchilla FLOPs per token, and the rule that turns a target N into a shape.

Parameter counts (model/transformer.py: no biases, RMSNorm scales only, h * d_head = d_model):
  per layer      4 d^2 (query d*d, key/value d*2d, output d*d)
                 + 2 d d_ff (GELU: up, down) or 3 d d_ff (SwiGLU: gate, up, down)
                 + 2 d (the two norm scales)
  non-embedding  N = n_layer * per layer + d (final norm scale). Kaplan's N: it leaves out the token
                 embedding, the learned position table and the untied output matrix, and (a few d
                 per layer more than Kaplan's 12 n_layer d^2) keeps the norm scales.
  total          N_total = N + V d (token embedding) + max_len d (learned positions only)
                 + d V (output matrix, unless tied): every parameter, Chinchilla's N.
  families       the encoder has the decoder's N (only its attention mask differs); the
                 encoder-decoder has n_layer encoder layers and n_layer decoder layers, each decoder
                 layer adding cross-attention (4 d^2 + d, its norm scale), plus a second final norm
                 (d). V is the model's vocabulary, the data's plus the family's special tokens
                 (model/corruption.py): + 1 (mask) for the encoder, + 1 + n_spans for the enc-dec.

Training FLOPs per token, counted as Hoffmann et al. 2022 (Chinchilla), Appendix F, for a sequence
of T tokens, vocabulary V, h heads of size d_head (h d_head = d):
  embeddings 2 T V d; per layer: QKV 2 * 3 T d (h d_head), attention logits 2 T^2 (h d_head),
  softmax 3 h T^2, softmax @ values 2 T^2 (h d_head), output 2 T (h d_head) d, MLP 2 T (2 d d_ff)
  (GELU) or 2 T (3 d d_ff) (SwiGLU); final logits 2 T d V. Forward per token = sum / T and
  training = 3 x forward (the backward pass costs twice the forward). Like Chinchilla this counts the
  full T x T attention, not the causal half a fused kernel computes, and ignores norms,
  nonlinearities, position encodings and the optimizer. 6N is reported beside it for comparison.
  The encoder counts as the decoder (logits at every position, as computed). The encoder-decoder
  runs its encoder on T_e = T - n_noise + n_spans tokens and its decoder on T_d = n_noise + n_spans
  (model/corruption.py), each with its own embedding lookup; each decoder layer adds cross-attention
  (query and output 2 T_d d^2 each, keys and values 2 * 2 T_e d^2 on the encoder output, logits and
  softmax @ values 2 T_d T_e d each, softmax 3 h T_d T_e), and the output logits are the decoder's.
  Per token always means per token of the data (T = train.seq_len per sequence, what train.tokens
  counts), so FLOPs budgets of the families are comparable.

The sizing rule (`shape_for_params`), one rule for every N and family:
  - aspect ratio d_model / depth near 64 (Kaplan et al. 2020 find loss flat over a wide range of
    aspect ratios; 64 is in the middle of GPT-2/GPT-3's shapes), depth = n_layer (decoder, encoder)
    or 2 n_layer (encoder-decoder: a token's path runs through both stacks): with c d^2 parameters
    per n_layer (c = 12, or 28 for an encoder layer plus a decoder layer with cross-attention),
    L* = (N / (c * 64^2 * stacks^2))^(1/3), and n_layer is one of round(L*) - 1, round(L*),
    round(L*) + 1 (at least 1). An encoder-decoder thus has equal layers in its encoder and
    decoder, as T5 does, and its N splits 12:16 (43% / 57%) between them, the decoder's share
    holding its cross-attention;
  - d_model on a grid whose head dim grows with width: multiples of 16 below 256 (heads of 16),
    multiples of 32 below 512 (heads of 32), multiples of 64 from 512 (heads of 64);
  - d_ff = 4 d_model (GELU) or 8/3 d_model rounded up to a multiple of 32 (SwiGLU: the same
    8 d^2 MLP parameters as GELU);
  - of these (n_layer, d_model) pairs, the one whose exact non-embedding N is closest to the target.
  The grid's steps bound how close it gets: within 7% of the target for N >= 3e5, 18% for
  N >= 5e4 and 35% down to 1e4 (tests/test_sizing.py checks these on a dense grid of N); an
  encoder-decoder, shallower for its N, has coarser steps: 16%, 28% and 35%. It gives exactly the
  shapes the synthetic source was first measured with: 1e4-ish -> 1 x 32 (12,384), 1e5 -> 2 x 64 (98,624), 6e5 -> 3 x 128
  (590,592). Runs record their exact N, so the fit never uses the target.

`model_config_from` turns the config file's `model` section into a ModelConfig with this rule.
"""
import argparse
import json
import math
import sys

import jax

from core.config import ConfigError
from model import corruption
from model.families import FAMILIES
from model.transformer import ModelConfig

ASPECT_RATIO = 64
MIN_D_MODEL = 16
# The largest N sized and counted: 4 PB of float32 weights, a thousand times the largest models
# trained; past it the width search alone would take minutes.
MAX_PARAMS = 1e15


def default_d_ff(d_model: int, mlp: str) -> int:
  """4 d_model (GELU), or 8/3 d_model rounded up to a multiple of 32 (SwiGLU)."""
  return 4 * d_model if mlp == "gelu" else 32 * math.ceil(8 * d_model / 3 / 32)


def head_dim_for(d_model: int) -> int:
  """The head size of the grid: 16 below d_model 256, 32 below 512, 64 from 512."""
  return 16 if d_model < 256 else 32 if d_model < 512 else 64


def _non_embedding(n_layer: int, d_model: int, d_ff: int, mlp: str, family: str) -> int:
  """Non-embedding parameters; see the module docstring."""
  d = d_model
  layer = 4 * d * d + (2 if mlp == "gelu" else 3) * d * d_ff + 2 * d
  if family == "encoder_decoder":  # encoder layer + decoder layer with cross-attention, 2 norms
    return n_layer * (2 * layer + 4 * d * d + d) + 2 * d
  return n_layer * layer + d


def count_params(cfg: ModelConfig) -> tuple[int, int]:
  """(non-embedding N, total N) of a Transformer(cfg), exactly; see the module docstring."""
  d = cfg.d_model
  non_embedding = _non_embedding(cfg.n_layer, d, cfg.d_ff, cfg.mlp, cfg.family)
  total = non_embedding + cfg.model_vocab * d
  if cfg.pos == "learned":
    total += cfg.max_len * d
  if not cfg.tie_embeddings:
    total += d * cfg.model_vocab
  return non_embedding, total


def count_lora_params(cfg: ModelConfig, rank: int, targets) -> int:
  """Parameters of rank-r adapters (A [d_in, r], B [r, d_out]: r (d_in + d_out) each) on the
  matrices named in `targets` (model/lora.py), exactly. Every attention has query (d, d),
  key_value (d, 2d) and out (d, d); every MLP up (d, d_ff), down (d_ff, d) and, with SwiGLU, gate
  (d, d_ff). The encoder-decoder has 3 n_layer attentions (encoder, decoder self- and
  cross-attention) and 2 n_layer MLPs; the other families n_layer of each."""
  d, d_ff = cfg.d_model, cfg.d_ff
  attention = {"query": 2 * d, "key_value": 3 * d, "out": 2 * d}
  mlp = {"up": d + d_ff, "down": d_ff + d, "gate": d + d_ff if cfg.mlp == "swiglu" else 0}
  stacks = 2 if cfg.family == "encoder_decoder" else 1
  attentions = (3 if cfg.family == "encoder_decoder" else 1) * cfg.n_layer
  return rank * (attentions * sum(attention.get(name, 0) for name in targets)
                 + stacks * cfg.n_layer * sum(mlp.get(name, 0) for name in targets))


def _attention_flops(queries: int, keys: int, d: int, heads: int) -> int:
  """Forward FLOPs of one attention of `queries` positions over `keys` positions (h d_head = d)."""
  return (2 * queries * d * d            # query projection
          + 2 * 2 * keys * d * d         # key and value projections
          + 2 * queries * keys * d       # attention logits
          + 3 * heads * queries * keys   # softmax
          + 2 * queries * keys * d       # softmax @ values
          + 2 * queries * d * d)         # output projection


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
  """Training FLOPs per data token (3 x forward), Chinchilla Appendix F; see the module doc."""
  v, d, h = cfg.model_vocab, cfg.d_model, cfg.n_heads
  mlp = lambda t: 2 * t * (2 if cfg.mlp == "gelu" else 3) * d * cfg.d_ff
  if cfg.family == "encoder_decoder":
    sizes = corruption.span_lengths(seq_len)
    t_enc, t_dec = sizes["encoder_len"], sizes["decoder_len"]
    encoder = 2 * t_enc * v * d + cfg.n_layer * (_attention_flops(t_enc, t_enc, d, h) + mlp(t_enc))
    decoder = cfg.n_layer * (_attention_flops(t_dec, t_dec, d, h)
                             + _attention_flops(t_dec, t_enc, d, h) + mlp(t_dec))
    forward = encoder + 2 * t_dec * v * d + decoder + 2 * t_dec * d * v
  else:
    t = seq_len
    forward = 2 * t * v * d + cfg.n_layer * (_attention_flops(t, t, d, h) + mlp(t)) + 2 * t * d * v
  return 3.0 * forward / seq_len


def _d_model_grid(up_to: int) -> list[int]:
  grid, d = [], MIN_D_MODEL
  while d <= up_to:
    grid.append(d)
    d += head_dim_for(d)
  return grid


def shape_for_params(target_params: float, mlp: str = "gelu", family: str = "decoder",
                     aspect_ratio: float = ASPECT_RATIO) -> dict:
  """The shape whose exact non-embedding N is closest to target_params, by the module's rule
  (at d_model / depth near `aspect_ratio`; model/recipe.py's shape(N) is this rule).

  Returns dict(n_layer, d_model, n_heads, d_ff); an encoder-decoder has n_layer layers in each
  stack. The non-embedding count does not depend on the vocabulary or the context, so neither is
  an argument.
  """
  if mlp not in ("gelu", "swiglu"):
    raise ConfigError(f"mlp={mlp!r} is unknown; use gelu or swiglu")
  if family not in FAMILIES:
    raise ConfigError(f"family={family!r} is unknown; use one of {', '.join(FAMILIES)}")
  if not target_params > 0:
    raise ConfigError(f"target_params must be positive, got {target_params!r}")
  if target_params > MAX_PARAMS:
    raise ConfigError(f"target_params={target_params:g} is past the {MAX_PARAMS:.0e} parameters "
                      "this code sizes and counts")
  stacks, per_layer = (2, 28) if family == "encoder_decoder" else (1, 12)
  non_embedding = lambda n, d: _non_embedding(n, d, default_d_ff(d, mlp), mlp, family)
  layers_ideal = (target_params / (per_layer * aspect_ratio ** 2 * stacks ** 2)) ** (1 / 3)
  middle = max(1, round(layers_ideal))
  layer_choices = range(max(1, middle - 1), middle + 2)
  # Widths up to twice the one-layer solution hold the closest width for every layer choice.
  grid = _d_model_grid(2 * math.isqrt(int(target_params // 12) + 1) + 2 * MIN_D_MODEL)
  n_layer, d_model = min(((n, d) for n in layer_choices for d in grid),
                         key=lambda s: abs(non_embedding(*s) - target_params))
  ratio = non_embedding(n_layer, d_model) / target_params
  if not 0.5 <= ratio <= 2:
    raise ConfigError(f"target_params={target_params:g} is too small: the smallest {family} "
                      f"(1 layer, d_model {MIN_D_MODEL}) has {non_embedding(1, MIN_D_MODEL)} "
                      "non-embedding parameters")
  return dict(n_layer=n_layer, d_model=d_model, n_heads=d_model // head_dim_for(d_model),
              d_ff=default_d_ff(d_model, mlp))


def resolve_dtype(dtype: str) -> str:
  """'auto' -> bfloat16 on GPU/TPU, float32 on CPU; anything else unchanged."""
  if dtype != "auto":
    return dtype
  return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"


def model_config_from(model_cfg, vocab_size: int, seq_len: int,
                      shape_rule=shape_for_params) -> ModelConfig:
  """A ModelConfig from the config file's `model` section (core/defaults.py).

  model.target_params > 0 derives the whole shape by `shape_rule(target_params, mlp, family)` (the
  sizing rule; training/plan.py passes the recipe's shape), and then the explicit shape
  keys (n_layer, d_model, n_heads, d_ff) must be 0: a config that sets both is ambiguous and is
  refused. With target_params == 0, n_layer and d_model are required; n_heads 0 means heads of
  head_dim_for(d_model), d_ff 0 means default_d_ff. dtype 'auto' is resolve_dtype's choice.
  """
  if model_cfg.family not in FAMILIES:
    raise ConfigError(f"model.family={model_cfg.family!r} is unknown; "
                      f"use one of {', '.join(FAMILIES)}")
  shape_keys = ("n_layer", "d_model", "n_heads", "d_ff")
  for key in ("target_params",) + shape_keys:
    if model_cfg[key] < 0:
      raise ConfigError(f"model.{key} must be positive, or 0 to derive it; got {model_cfg[key]}")
  if model_cfg.target_params > 0:
    explicit = [f"{k}={model_cfg[k]}" for k in shape_keys if model_cfg[k]]
    if explicit:
      raise ConfigError(f"model.target_params={model_cfg.target_params:g} derives the shape; "
                        f"set model.{', model.'.join(explicit)} to 0 or target_params to 0")
    shape = shape_rule(model_cfg.target_params, model_cfg.mlp, model_cfg.family)
    derived_heads = True
  else:
    if model_cfg.n_layer <= 0 or model_cfg.d_model <= 0:
      raise ConfigError("set model.target_params, or model.n_layer and model.d_model "
                        f"(got n_layer={model_cfg.n_layer}, d_model={model_cfg.d_model})")
    shape = {k: model_cfg[k] for k in shape_keys}
    derived_heads = shape["n_heads"] == 0
    if shape["n_heads"] == 0:
      head_dim = head_dim_for(shape["d_model"])
      if shape["d_model"] % head_dim:
        raise ConfigError(f"model.n_heads=0 means heads of size {head_dim}, which does not divide "
                          f"model.d_model={shape['d_model']}; set model.n_heads")
      shape["n_heads"] = shape["d_model"] // head_dim
    if shape["d_ff"] == 0 and model_cfg.mlp in ("gelu", "swiglu"):
      shape["d_ff"] = default_d_ff(shape["d_model"], model_cfg.mlp)
  return ModelConfig(vocab_size=vocab_size, max_len=seq_len, family=model_cfg.family,
                     mlp=model_cfg.mlp,
                     pos=model_cfg.pos, tie_embeddings=bool(model_cfg.tie_embeddings),
                     dtype=resolve_dtype(model_cfg.dtype), remat=bool(model_cfg.remat),
                     **_parametrization_of(model_cfg, derived_heads), **shape)


def _parametrization_of(model_cfg, derived_heads: bool) -> dict:
  """ModelConfig's parametrization keys (a config written before they existed is sp; sp ignores
  the base shape, so its runs keep their ids). model.base_head_dim 0 is the grid's head dim at
  base_width when the heads are derived (the head count grows with width), else base_width /
  n_heads (a fixed head count); training/plan.py writes the resolved value into the config."""
  name = model_cfg.get("parametrization", "sp")
  if name == "sp":
    return {"parametrization": name, "base_width": 0, "base_depth": 0, "base_head_dim": 0.0}
  width, head_dim = model_cfg.get("base_width", 0), float(model_cfg.get("base_head_dim", 0.0))
  if head_dim < 0:
    raise ConfigError(f"model.base_head_dim must be positive, or 0 to derive it; got {head_dim}")
  if head_dim == 0 and derived_heads and isinstance(width, int) and width > 0:
    head_dim = float(head_dim_for(width))
  return {"parametrization": name, "base_width": width,
          "base_depth": model_cfg.get("base_depth", 0), "base_head_dim": head_dim}


def describe(target_params: float, vocab_size: int, seq_len: int, mlp: str = "gelu",
             pos: str = "rope", tie_embeddings: bool = False, family: str = "decoder") -> dict:
  """The rule's shape for target_params with its exact counts and FLOPs: one table row."""
  shape = shape_for_params(target_params, mlp, family)
  cfg = ModelConfig(vocab_size=vocab_size, max_len=seq_len, family=family, mlp=mlp, pos=pos,
                    tie_embeddings=tie_embeddings, **shape)
  n_params, n_params_total = count_params(cfg)
  flops = flops_per_token(cfg, seq_len)
  return dict(target_params=target_params, **shape, n_params=n_params,
              n_params_total=n_params_total, flops_per_token=flops, six_n=6 * n_params,
              six_n_total=6 * n_params_total, ratio_6n=flops / (6 * n_params),
              ratio_6n_total=flops / (6 * n_params_total))


def _print_table(rows: list[dict], vocab_size: int, seq_len: int, family: str) -> None:
  print(f"{family}, vocab {vocab_size}, seq_len {seq_len}; N = non-embedding, "
        "N_total = all parameters, "
        "C/token = Chinchilla training FLOPs per token")
  header = (f"{'target':>8} {'layers':>6} {'d_model':>7} {'heads':>5} {'d_ff':>6} {'N':>14} "
            f"{'N_total':>14} {'C/token':>10} {'6N':>10} {'C/6N':>6} {'C/6N_tot':>8}")
  print(header)
  for r in rows:
    print(f"{r['target_params']:>8.0e} {r['n_layer']:>6} {r['d_model']:>7} {r['n_heads']:>5} "
          f"{r['d_ff']:>6} {r['n_params']:>14,} {r['n_params_total']:>14,} "
          f"{r['flops_per_token']:>10.3e} {r['six_n']:>10.3e} {r['ratio_6n']:>6.2f} "
          f"{r['ratio_6n_total']:>8.2f}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m model.sizing",
      description="Shape, exact parameter counts and Chinchilla FLOPs per token for a target N.")
  parser.add_argument("--n", type=float, help="target non-embedding parameters, e.g. 1e6")
  parser.add_argument("--table", action="store_true", help="every decade from 1e4 to 1e9")
  parser.add_argument("--vocab", type=int, default=64, help="vocabulary size (default: 64)")
  parser.add_argument("--seq-len", type=int, default=128, help="context length (default: 128)")
  parser.add_argument("--mlp", default="gelu", choices=("gelu", "swiglu"))
  parser.add_argument("--pos", default="rope", choices=("rope", "learned", "sinusoidal"))
  parser.add_argument("--tie-embeddings", action="store_true")
  parser.add_argument("--family", default="decoder", choices=FAMILIES)
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args = parser.parse_args(argv)
  if args.n is None and not args.table:
    parser.error("give --n N or --table")
  targets = [10.0 ** e for e in range(4, 10)] if args.table else [args.n]
  try:
    rows = [describe(n, args.vocab, args.seq_len, args.mlp, args.pos, args.tie_embeddings,
                     args.family) for n in targets]
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  _print_table(rows, args.vocab, args.seq_len, args.family)
  if args.json:
    settings = dict(family=args.family, vocab_size=args.vocab, seq_len=args.seq_len,
                    mlp=args.mlp, pos=args.pos, tie_embeddings=args.tie_embeddings)
    print(json.dumps({**settings, "rows": rows} if args.table else {**settings, **rows[0]}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
