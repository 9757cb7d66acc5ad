"""The transformer: shapes and dtypes, causality, split/merge under plain jax.jit, remat, init."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from core.config import ConfigError
from model import attention
from model.transformer import Attention, ModelConfig, Transformer

SMALL = dict(vocab_size=32, max_len=16, n_layer=2, d_model=32, n_heads=2, d_ff=64)


def tokens(batch=2, length=12, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, length), 0, SMALL["vocab_size"])


def jitted_forward(model):
  """The split/merge pattern train.py uses: plain jax.jit over (state, tokens)."""
  graphdef, state = nnx.split(model)
  return jax.jit(lambda state, x: nnx.merge(graphdef, state)(x)), state


@pytest.mark.parametrize("kw", [
    dict(), dict(mlp="swiglu", pos="learned", tie_embeddings=True), dict(pos="sinusoidal")])
def test_logits_shape_dtype_and_causality(kw):
  model = Transformer(ModelConfig(**SMALL, **kw), rngs=nnx.Rngs(0))
  forward, state = jitted_forward(model)
  x = tokens()
  logits = forward(state, x)
  assert logits.shape == (2, 12, 32) and logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))
  # Changing token 7 changes logits at positions >= 7 only.
  changed = forward(state, x.at[:, 7].set((x[:, 7] + 1) % 32))
  np.testing.assert_allclose(changed[:, :7], logits[:, :7], atol=1e-6)
  assert float(jnp.abs(changed[:, 7:] - logits[:, 7:]).max()) > 1e-4


def test_train_step_with_split_merge_and_remat_matches():
  """Gradients under plain jax.jit; remat changes memory, not numbers."""
  x = tokens()

  def loss_and_grads(remat):
    model = Transformer(ModelConfig(**SMALL, remat=remat), rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)

    def loss_fn(params):
      logits = nnx.merge(graphdef, params)(x[:, :-1])
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), x[:, 1:, None], -1))

    return jax.jit(jax.value_and_grad(loss_fn))(params)

  (loss, grads), (loss_remat, grads_remat) = loss_and_grads(False), loss_and_grads(True)
  assert abs(float(loss) - math.log(32)) < 0.2  # near-uniform predictions at init
  np.testing.assert_allclose(loss_remat, loss, rtol=1e-6)
  for g, g_remat in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_remat)):
    np.testing.assert_allclose(g_remat, g, atol=1e-6)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


def test_bfloat16_compute_keeps_float32_params_and_logits():
  cfg = ModelConfig(**SMALL)
  full = Transformer(cfg, rngs=nnx.Rngs(0))
  half = Transformer(ModelConfig(**{**SMALL, "dtype": "bfloat16"}), rngs=nnx.Rngs(0))
  assert {p.dtype for p in jax.tree.leaves(nnx.state(half, nnx.Param))} == {jnp.dtype("float32")}
  forward_full, state_full = jitted_forward(full)
  forward_half, state_half = jitted_forward(half)
  x = tokens()
  logits = forward_half(state_half, x)
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, forward_full(state_full, x), atol=0.05)


def test_gpt2_initialisation():
  cfg = ModelConfig(**SMALL)
  model = Transformer(cfg, rngs=nnx.Rngs(0))
  block = model.blocks[0]
  residual_std = 0.02 / math.sqrt(2 * cfg.n_layer)
  for kernel, std in [(model.embed.embedding, 0.02), (block.attn.query.kernel, 0.02),
                      (block.mlp.up.kernel, 0.02), (model.unembed, 0.02),
                      (block.attn.out.kernel, residual_std), (block.mlp.down.kernel, residual_std)]:
    assert float(jnp.std(kernel[...])) == pytest.approx(std, rel=0.1)  # >= 1024 samples each
  np.testing.assert_array_equal(block.attn_norm.scale[...], 1.0)
  with pytest.raises(ValueError, match="max_len=16"):
    model(jnp.zeros((1, 17), jnp.int32))


def test_attention_is_reusable_bidirectional_and_cross():
  x = jax.random.normal(jax.random.key(1), (2, 6, 32))
  changed = x.at[:, -1].add(1.0)
  context = jax.random.normal(jax.random.key(2), (2, 9, 32))  # encoder output, another length

  def outputs(causal):
    attention = Attention(32, 4, causal=causal, rotary=True, dtype=jnp.float32, out_std=0.02,
                          rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(attention)

    @jax.jit
    def run(state):
      attention = nnx.merge(graphdef, state)
      positions = jnp.arange(6)
      return (attention(x, positions=positions)[0], attention(changed, positions=positions)[0],
              attention(x, context, positions=positions)[0])

    return run(state)

  y, y_changed, y_cross = outputs(causal=False)
  assert float(jnp.abs(y_changed[:, 0] - y[:, 0]).max()) > 1e-6  # position 0 sees the future
  assert y_cross.shape == (2, 6, 32)
  y, y_changed, _ = outputs(causal=True)
  np.testing.assert_allclose(y_changed[:, :-1], y[:, :-1], atol=1e-6)
  assert float(jnp.abs(y_changed[:, -1] - y[:, -1]).max()) > 1e-6


@pytest.mark.parametrize("kw, message", [
    (dict(n_heads=3), "does not divide"),
    (dict(d_ff=0), "positive"),
    (dict(mlp="relu"), "mlp"),
    (dict(pos="alibi"), "pos"),
    (dict(dtype="float16"), "dtype"),
    (dict(d_model=30, n_heads=10), "even head dim"),
])
def test_invalid_config_raises(kw, message):
  with pytest.raises(ConfigError, match=message):
    ModelConfig(**{**SMALL, **kw})


@pytest.mark.parametrize("length, causal, with_mask", [
    (8, True, False), (8, False, False), (8, False, True), (3 * attention.CAUSAL_BLOCK, True, False)])
def test_the_cpu_attention_equals_the_library_kernel(length, causal, with_mask):
  """On CPUs `attend` writes attention out with the heads leading (causal attention over long
  sequences in blocks of queries); values and gradients are jax.nn.dot_product_attention's."""
  q, k, v = (jax.random.normal(key, (2, length, 4, 16))
             for key in jax.random.split(jax.random.key(0), 3))
  mask = ((jnp.arange(length)[None, :] <= jnp.arange(length)[:, None] + 2)[None, None]
          if with_mask else None)
  # jitted, as the train step runs them (op by op, every primitive compiled alone, took seconds)
  ours = jax.jit(lambda q, k, v: attention.attend(q, k, v, causal=causal, mask=mask))
  library = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, mask=mask,
                                                                 is_causal=causal))
  np.testing.assert_allclose(ours(q, k, v), library(q, k, v), atol=1e-5)
  squared = lambda fn: jax.jit(jax.grad(lambda *qkv: jnp.sum(fn(*qkv) ** 2), argnums=(0, 1, 2)))(
      q, k, v)
  for a, b in zip(squared(ours), squared(library)):
    np.testing.assert_allclose(a, b, atol=1e-4)
