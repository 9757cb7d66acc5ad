"""The three transformer families in Flax NNX, GPT-2 shaped and written to be counted exactly.

One `Transformer` class, by `cfg.family` (model/objectives.py says what each is trained to predict):
- decoder: a stack of causal blocks, tokens -> next-token logits.
- encoder: the same stack without the causal mask (bidirectional), tokens -> logits per position.
- encoder_decoder: an encoder stack (bidirectional, with its own final norm) and a decoder stack,
  n_layer blocks each (equal layers); the decoder's blocks add cross-attention to the encoder's
  output between self-attention and the MLP, as in the original transformer and T5. Encoder and
  decoder share the token embedding (and the learned position table), as T5 does.
All three use the same Attention and Block code; the encoder families embed a few special tokens
above the data's vocabulary (model/corruption.py lists them), so `cfg.vocab_size` stays the data's.

Design choices (model/sizing.py counts exactly these parameters):
- Pre-norm blocks with RMSNorm (a scale, no bias) and no biases in any linear layer, as in PaLM
  and LLaMA: the parameter count is then a clean polynomial of the shape, and nothing is lost.
- Multi-head attention has a query projection (d, d), a fused key/value projection (d, 2d) and an
  output projection (d, d). Keys and values come from the block's own input (self-attention) or
  from `context` (cross-attention), so an encoder or an encoder-decoder can reuse `Attention`.
- MLP: GELU (d -> d_ff -> d) or SwiGLU (gate and up d -> d_ff, down d_ff -> d).
- Positions: rotary (applied to queries and keys, no parameters), learned (a (max_len, d) table)
  or sinusoidal (computed, no parameters), the last two added to the token embeddings.
- The output projection is the token embedding transposed when `tie_embeddings`, else its own
  (d, vocab) matrix. Logits are always float32 (accumulated in float32 from any compute dtype).
- Parameters are float32; activations are computed in `cfg.dtype` (bfloat16 on accelerators).
- Initialisation as GPT-2: normal(0.02) everywhere, residual output projections normal(0.02 /
  sqrt(2 n_layer)), norm scales one; under `parametrization` mup or completep the stds and the
  forward multipliers (queries, residual branches, logits) of model/parametrization.py.
- Attention is model/attention.py's `attend`: cuDNN flash attention on GPUs where it applies, and
  on CPUs the products written out with the heads leading, which XLA:CPU runs faster.

The model is stateless at call time: `decode` takes a KV cache (a pytree from `init_cache`) and
returns the new one, so a decode step jits with fixed shapes and no recompilation per token.
"""
import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from core.config import ConfigError
from model import corruption, parametrization
from model.attention import attend
from model.families import FAMILIES
from model.parametrization import INIT_STD

MLPS = ("gelu", "swiglu")
POSITIONS = ("rope", "learned", "sinusoidal")
DTYPES = ("float32", "bfloat16")
ROPE_BASE = 10_000.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The shape of a model; invalid values raise ConfigError at construction."""
  vocab_size: int       # the data's vocabulary; `model_vocab` adds the family's special tokens
  max_len: int          # positions (train.seq_len)
  n_layer: int
  d_model: int
  n_heads: int
  d_ff: int
  family: str = "decoder"   # decoder | encoder | encoder_decoder (n_layer blocks in each stack)
  mlp: str = "gelu"     # gelu | swiglu
  pos: str = "rope"     # rope | learned | sinusoidal
  tie_embeddings: bool = False
  dtype: str = "float32"   # compute dtype; params are always float32
  remat: bool = False
  parametrization: str = "sp"   # sp | mup | completep (model/parametrization.py)
  base_width: int = 0   # the d_model where mup's and completep's multipliers are 1
  base_depth: int = 0   # the n_layer where completep's depth multipliers are 1
  base_head_dim: float = 0.0   # the base shape's head dim; 0: base_width / n_heads

  def __post_init__(self):
    parametrization.check(self.parametrization, self.base_width, self.base_depth)
    if self.family not in FAMILIES:
      raise ConfigError(f"model.family={self.family!r} is unknown; "
                        f"use one of {', '.join(FAMILIES)}")
    if self.mlp not in MLPS:
      raise ConfigError(f"model.mlp={self.mlp!r} is unknown; use one of {', '.join(MLPS)}")
    if self.pos not in POSITIONS:
      raise ConfigError(f"model.pos={self.pos!r} is unknown; use one of {', '.join(POSITIONS)}")
    if self.dtype not in DTYPES:
      raise ConfigError(f"model.dtype={self.dtype!r} is unknown; use one of auto, {', '.join(DTYPES)}")
    for name in ("vocab_size", "max_len", "n_layer", "d_model", "n_heads", "d_ff"):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"model {name} must be a positive integer, got {value!r}")
    if self.d_model % self.n_heads:
      raise ConfigError(f"model.n_heads={self.n_heads} does not divide model.d_model={self.d_model}")
    if self.pos == "rope" and self.head_dim % 2:
      raise ConfigError(f"rotary positions need an even head dim, got {self.head_dim}; change n_heads")
    if self.pos == "sinusoidal" and self.d_model % 2:
      raise ConfigError(f"sinusoidal positions need an even d_model, got {self.d_model}")
    if self.family == "encoder_decoder" and self.max_len < 2:
      raise ConfigError(f"span corruption needs train.seq_len >= 2, got {self.max_len}")

  @property
  def n_special(self) -> int:
    """Tokens the family adds above the data's: the mask (encoder), pad and sentinels (enc-dec)."""
    if self.family == "encoder":
      return 1
    if self.family == "encoder_decoder":
      return 1 + corruption.span_lengths(self.max_len)["n_spans"]
    return 0

  @property
  def model_vocab(self) -> int:
    """Rows of the embedding and columns of the output: data tokens plus special tokens."""
    return self.vocab_size + self.n_special

  @property
  def head_dim(self) -> int:
    return self.d_model // self.n_heads

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)


def _normal(std):
  return nnx.initializers.normal(stddev=std)


def rope(x, positions):
  """Rotates query/key pairs (x[..., i], x[..., i + D/2]) by position-dependent angles.

  x: [B, T, H, D]; positions: int [T]. Computed in float32, returned in x's dtype.
  """
  half = x.shape[-1] // 2
  freq = ROPE_BASE ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angle = positions.astype(jnp.float32)[:, None] * freq[None, :]
  sin, cos = jnp.sin(angle)[None, :, None, :], jnp.cos(angle)[None, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def sinusoidal(positions, d_model):
  """The original transformer's position encoding: [T] -> [T, d_model] float32."""
  half = d_model // 2
  freq = ROPE_BASE ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angle = positions.astype(jnp.float32)[:, None] * freq[None, :]
  return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


class Linear(nnx.Linear):
  """nnx.Linear applied to the tokens as one [tokens, d_in] matrix.

  On [B, T, d_in] inputs the weight gradient contracts over two axes, and XLA:CPU transposes the
  activations to do that (docs/results/2026-11-27-cpu-speed.md). A 2-D matmul is fine on any backend.
  model/lora.py may attach a low-rank adapter as `lora` (an nnx.LoRA), added times `lora_scale`.
  """
  lora = None
  lora_scale = 1.0

  def __call__(self, x):
    flat = x.reshape(-1, x.shape[-1])
    y = super().__call__(flat)
    if self.lora is not None:
      y = y + self.lora_scale * self.lora(flat)
    return y.reshape(*x.shape[:-1], -1)


class Attention(nnx.Module):
  """Multi-head attention: self-attention, or cross-attention over `context` when given."""

  def __init__(self, d_model: int, n_heads: int, *, causal: bool, rotary: bool, dtype,
               out_std: float, rngs: nnx.Rngs, std: float = INIT_STD,
               query_scale: float | None = None):
    linear = lambda d_in, d_out, std: Linear(
        d_in, d_out, use_bias=False, dtype=dtype, kernel_init=_normal(std), rngs=rngs)
    self.query = linear(d_model, d_model, std)
    self.key_value = linear(d_model, 2 * d_model, std)
    self.out = linear(d_model, d_model, out_std)
    self.query_scale = query_scale  # muP's attention multiplier (None: softmax(q k / sqrt(D)))
    self.n_heads = n_heads
    self.causal = causal
    self.rotary = rotary

  def keys_values(self, source):
    """Keys and values [B, S, H, D] of source [B, S, d], before any rotary positions."""
    heads = lambda y: y.reshape(*y.shape[:2], self.n_heads, -1)
    return tuple(map(heads, jnp.split(self.key_value(source), 2, axis=-1)))

  def __call__(self, x, context=None, *, positions=None, cache=None):
    """x [B, T, d] -> ([B, T, d], new cache).

    context: None (self-attention), the encoder output [B, S, d], or its (keys, values) from
      `keys_values`, which a decoder computes once per generated sequence.
    positions: int [T], the absolute positions of x (rotary self-attention needs them).
    cache: None, or {"k", "v": [B, L, H, D], "index": int32 [], ...} holding the keys and values of
      positions < index for causal decoding; x's are written at index.. and attended to causally.
      Other entries pass through unchanged. Rotary positions are applied in self-attention only
      (keys from `context` have their own).
    """
    batch, length, d_model = x.shape
    q = self.query(x).reshape(batch, length, self.n_heads, d_model // self.n_heads)
    k, v = context if isinstance(context, tuple) else self.keys_values(
        x if context is None else context)
    if self.rotary and context is None:
      q, k = rope(q, positions), rope(k, positions)
    if self.query_scale is not None:
      q = q * jnp.asarray(self.query_scale, q.dtype)
    if cache is None:
      y = attend(q, k, v, causal=self.causal)
    else:
      index = cache["index"]
      k = jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (0, index, 0, 0))
      v = jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (0, index, 0, 0))
      cache = {**cache, "k": k, "v": v, "index": index + length}
      # Query at absolute position index + t sees cached keys 0..index + t (unfilled ones never).
      visible = jnp.arange(k.shape[1])[None, :] <= (index + jnp.arange(length))[:, None]
      y = attend(q, k, v, causal=False, mask=visible[None, None])
    return self.out(y.reshape(batch, length, d_model)), cache


class MLP(nnx.Module):
  """GELU (tanh approximation, as GPT-2) or SwiGLU feed-forward."""

  def __init__(self, cfg: ModelConfig, *, out_std: float, rngs: nnx.Rngs):
    linear = lambda d_in, d_out, std: Linear(
        d_in, d_out, use_bias=False, dtype=cfg.compute_dtype, kernel_init=_normal(std), rngs=rngs)
    std = parametrization.scales(cfg).hidden_std
    self.up = linear(cfg.d_model, cfg.d_ff, std)
    self.gate = linear(cfg.d_model, cfg.d_ff, std) if cfg.mlp == "swiglu" else None
    self.down = linear(cfg.d_ff, cfg.d_model, out_std)

  def __call__(self, x):
    if self.gate is None:
      return self.down(jax.nn.gelu(self.up(x)))
    return self.down(jax.nn.silu(self.gate(x)) * self.up(x))


class Block(nnx.Module):
  """Pre-norm block: x + attn(norm(x)), [x + cross_attn(norm(x), context)], x + mlp(norm(x))."""

  def __init__(self, cfg: ModelConfig, *, causal: bool = True, cross: bool = False,
               rngs: nnx.Rngs):
    scales = parametrization.scales(cfg)
    out_std = scales.out_std
    norm = lambda: nnx.RMSNorm(cfg.d_model, dtype=cfg.compute_dtype, rngs=rngs)
    attention = lambda causal, rotary: Attention(
        cfg.d_model, cfg.n_heads, causal=causal, rotary=rotary, dtype=cfg.compute_dtype,
        out_std=out_std, rngs=rngs, std=scales.hidden_std, query_scale=scales.attention)
    self.residual = scales.residual  # CompleteP's branch multiplier (None: x + f(x))
    self.attn_norm = norm()
    self.attn = attention(causal, cfg.pos == "rope")
    self.cross_norm = norm() if cross else None
    self.cross_attn = attention(False, False) if cross else None
    self.mlp_norm = norm()
    self.mlp = MLP(cfg, out_std=out_std, rngs=rngs)

  def __call__(self, x, positions, cache=None, context=None):
    """context: what cross-attention reads (see Attention), for blocks built with cross=True."""
    branch = (lambda y: y) if self.residual is None else (
        lambda y: y * jnp.asarray(self.residual, y.dtype))
    y, cache = self.attn(self.attn_norm(x), positions=positions, cache=cache)
    x = x + branch(y)
    if self.cross_attn is not None:
      x = x + branch(self.cross_attn(self.cross_norm(x), context)[0])
    return x + branch(self.mlp(self.mlp_norm(x))), cache


class Transformer(nnx.Module):
  """A transformer of `cfg.family`; the encoder family is the decoder without the causal mask.

  decoder, encoder: model(tokens int32 [B, T]) -> float32 logits [B, T, model_vocab].
  encoder_decoder: model(tokens [B, T], encoder_tokens [B, S]) -> logits [B, T, model_vocab] of
    the decoder, which reads tokens causally and all of encoder_tokens.
  """

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    scales = parametrization.scales(cfg)
    self.output_scale = scales.output  # muP's output multiplier on the logits (None: none)
    seq2seq = cfg.family == "encoder_decoder"
    self.embed = nnx.Embed(cfg.model_vocab, cfg.d_model, dtype=cfg.compute_dtype,
                           embedding_init=_normal(scales.embed_std), rngs=rngs)
    self.pos_embed = (nnx.Embed(cfg.max_len, cfg.d_model, dtype=cfg.compute_dtype,
                                embedding_init=_normal(scales.embed_std), rngs=rngs)
                      if cfg.pos == "learned" else None)
    self.encoder = (nnx.List([Block(cfg, causal=False, rngs=rngs) for _ in range(cfg.n_layer)])
                    if seq2seq else None)
    self.encoder_norm = (nnx.RMSNorm(cfg.d_model, dtype=cfg.compute_dtype, rngs=rngs)
                         if seq2seq else None)
    self.blocks = nnx.List([Block(cfg, causal=cfg.family != "encoder", cross=seq2seq, rngs=rngs)
                            for _ in range(cfg.n_layer)])
    self.norm = nnx.RMSNorm(cfg.d_model, dtype=cfg.compute_dtype, rngs=rngs)
    self.unembed = (None if cfg.tie_embeddings else
                    nnx.Param(_normal(scales.readout_std)(rngs.params(),
                                                          (cfg.d_model, cfg.model_vocab))))

  def __call__(self, tokens, encoder_tokens=None):
    context = self.encode(encoder_tokens) if self._needs_encoder_tokens(encoder_tokens) else None
    return self._logits(self._stack(self.blocks, tokens, context))

  def encode(self, tokens):
    """encoder_decoder: the encoder's output [B, S, d] for int32 tokens [B, S]."""
    return self.encoder_norm(self._stack(self.encoder, tokens))

  def init_cache(self, batch: int, max_len: int | None = None, encoder_tokens=None):
    """An empty KV cache for `decode`: one {"k", "v", "index", "offset"} per layer, in the compute
    dtype. offset is the absolute position of slot 0 (model/generate.py slides a rotary cache).

    encoder_decoder: encoder_tokens [batch, S] are encoded once here, and each layer's entry also
    holds the keys and values its cross-attention reads ("cross_k", "cross_v").
    """
    if self.cfg.family == "encoder":
      raise ValueError("an encoder has no causal decoding; fill masked positions with "
                       "model(tokens)")
    max_len = max_len or self.cfg.max_len
    self._check_length(max_len)
    shape = (batch, max_len, self.cfg.n_heads, self.cfg.head_dim)
    zeros = lambda: jnp.zeros(shape, self.cfg.compute_dtype)
    cache = [{"k": zeros(), "v": zeros(), "index": jnp.zeros((), jnp.int32),
              "offset": jnp.zeros((), jnp.int32)} for _ in range(self.cfg.n_layer)]
    if self._needs_encoder_tokens(encoder_tokens):
      context = self.encode(encoder_tokens)
      for layer_cache, block in zip(cache, self.blocks):
        layer_cache["cross_k"], layer_cache["cross_v"] = block.cross_attn.keys_values(context)
    return cache

  def decode(self, tokens, cache):
    """Runs new positions through the model given a cache of the previous ones.

    tokens: int32 [B, S], the tokens at positions offset + index .. offset + index + S - 1 (S =
    the prompt length to prefill, or 1 per generated token), written to cache slots index ..
    index + S - 1. Returns (float32 logits [B, S, vocab], the new cache).
    """
    positions = cache[0]["offset"] + cache[0]["index"] + jnp.arange(tokens.shape[1])
    x = self._embed(tokens, positions)
    new_cache = []
    for block, layer_cache in zip(self.blocks, cache):
      context = ((layer_cache["cross_k"], layer_cache["cross_v"]) if "cross_k" in layer_cache
                 else None)
      x, layer_cache = block(x, positions, layer_cache, context)
      new_cache.append(layer_cache)
    return self._logits(x), new_cache

  def _needs_encoder_tokens(self, encoder_tokens) -> bool:
    """Whether this family reads encoder tokens; they must be given exactly when it does."""
    seq2seq = self.cfg.family == "encoder_decoder"
    if seq2seq != (encoder_tokens is not None):
      raise ValueError(f"this {self.cfg.family} model " + (
          "needs encoder_tokens" if seq2seq else "takes no encoder_tokens"))
    return seq2seq

  def _stack(self, blocks, tokens, context=None):
    """Embeds tokens [B, T] and runs them through `blocks` -> hidden states [B, T, d]."""
    self._check_length(tokens.shape[1])
    positions = jnp.arange(tokens.shape[1])
    x = self._embed(tokens, positions)
    block_call = nnx.remat(Block.__call__) if self.cfg.remat else Block.__call__
    for block in blocks:
      x, _ = block_call(block, x, positions, None, context)
    return x

  def _check_length(self, length):
    if length > self.cfg.max_len:
      raise ValueError(f"{length} positions exceed the model's max_len={self.cfg.max_len}")

  def _embed(self, tokens, positions):
    x = self.embed(tokens)
    if self.cfg.pos == "learned":
      x = x + self.pos_embed(positions)[None]
    elif self.cfg.pos == "sinusoidal":
      x = x + sinusoidal(positions, self.cfg.d_model).astype(x.dtype)[None]
    return x

  def _logits(self, x):
    x = self.norm(x)
    unembed = self.embed.embedding[...].T if self.unembed is None else self.unembed[...]
    # Accumulate in float32: bfloat16 logits would put ~1% noise on the loss.
    # Tokens flattened for the matmul, as in `Linear`.
    logits = jnp.dot(x.reshape(-1, x.shape[-1]), unembed.astype(x.dtype),
                     preferred_element_type=jnp.float32)
    if self.output_scale is not None:
      logits = logits * jnp.float32(self.output_scale)
    return logits.reshape(*x.shape[:-1], -1)
