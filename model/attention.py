"""The attention kernel: scaled dot-product attention as each backend runs it fastest.

On GPUs, cuDNN flash attention where cuDNN supports the call (16-bit, head dim a multiple of 8 up
to 128, no explicit mask; with implementation=None JAX 0.10 always takes its XLA kernel), XLA's
otherwise; on CPUs the products are written out with the heads leading.
"""
import jax
import jax.numpy as jnp


def attend(q, k, v, *, causal, mask=None):
  """Scaled dot-product attention, q [B, T, H, D], k/v [B, S, H, D] -> [B, T, H, D].

  `causal` masks key s > query t (needs T == S); `mask` (bool, broadcastable to [B, H, T, S],
  True = attend) is for anything else, e.g. a partly filled KV cache.
  """
  head_dim = q.shape[-1]
  if jax.default_backend() == "cpu":
    return _attend_heads_leading(q, k, v, causal, mask)
  use_cudnn = (jax.default_backend() == "gpu" and q.dtype in (jnp.bfloat16, jnp.float16)
               and head_dim % 8 == 0 and head_dim <= 128 and mask is None)
  return jax.nn.dot_product_attention(
      q, k, v, mask=mask, is_causal=causal, implementation="cudnn" if use_cudnn else None)


CAUSAL_BLOCK = 64  # query positions per block of causal attention on CPUs


def causal_blocks(length: int) -> int:
  """Blocks of CAUSAL_BLOCK queries causal attention over `length` positions runs in on CPUs."""
  return length // CAUSAL_BLOCK if length > CAUSAL_BLOCK and length % CAUSAL_BLOCK == 0 else 1


def _attend_heads_leading(q, k, v, causal, mask):
  """Attention with the heads moved next to the batch ([B, H, T, D]) before both products.

  XLA:CPU runs these as plain batched matmuls, faster than jax.nn.dot_product_attention's
  [B, T, H, D] products. Causal attention over more than CAUSAL_BLOCK positions goes in blocks of
  queries, each block against the keys up to its own end, so the products skip most of the masked
  upper triangle (docs/results/2026-11-27-cpu-speed.md has the figures). Softmax in float32, as the
  library does.
  """
  q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))
  length = q.shape[2]
  if causal and causal_blocks(length) > 1:
    blocks = []
    for start in range(0, length, CAUSAL_BLOCK):
      end = start + CAUSAL_BLOCK
      visible = jnp.arange(end)[None, :] <= jnp.arange(start, end)[:, None]
      blocks.append(_softmax_attention(q[:, :, start:end], k[:, :, :end], v[:, :, :end], visible))
    out = jnp.concatenate(blocks, axis=2)
  else:
    if causal:
      mask = jnp.tril(jnp.ones((length, k.shape[2]), bool))
    out = _softmax_attention(q, k, v, mask)
  return jnp.swapaxes(out, 1, 2)


def _softmax_attention(q, k, v, mask):
  """softmax(q k^T / sqrt(D), masked) v for [B, H, T, D] inputs; mask True = attend, or None."""
  logits = jnp.einsum("bhtd,bhsd->bhts", q * q.shape[-1] ** -0.5, k,
                      preferred_element_type=jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bhts,bhsd->bhtd", probs, v)
