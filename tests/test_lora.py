"""LoRA adapters: exact counts, a start equal to the base, the trained/frozen split, the merge."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from core.config import ConfigError
from experiments import base
from model import lora, objectives, sizing
from model.transformer import ModelConfig

SMALL = dict(vocab_size=32, max_len=16, n_layer=2, d_model=32, n_heads=2, d_ff=64)


def settings(rank=4, alpha=8.0, targets="attention,mlp"):
  return lora.LoRASettings(rank, alpha, lora.parse_targets(targets))


def count(state) -> int:
  return sum(x.size for x in jax.tree.leaves(state))


@pytest.mark.parametrize("family, mlp, targets", [
    ("decoder", "gelu", "attention,mlp"), ("decoder", "swiglu", "mlp"),
    ("encoder", "gelu", "query,out"), ("encoder_decoder", "swiglu", "attention,mlp"),
    ("encoder_decoder", "gelu", "key_value,down")])
def test_rank_r_adds_exactly_the_counted_trainable_parameters(family, mlp, targets):
  cfg = ModelConfig(**SMALL, family=family, mlp=mlp)
  for rank in (1, 3):
    model = objectives.build_model(cfg, nnx.Rngs(0), settings(rank, targets=targets))
    _, adapters, frozen, _ = nnx.split(model, nnx.LoRAParam, nnx.Param, ...)
    assert count(adapters) == sizing.count_lora_params(cfg, rank, lora.parse_targets(targets))
    assert count(frozen) == sizing.count_params(cfg)[1]  # the base model, untouched


def test_an_adapted_model_starts_as_its_base_and_keeps_its_paths():
  cfg = ModelConfig(**SMALL)
  plain = objectives.build_model(cfg, nnx.Rngs(0))
  adapted = objectives.build_model(cfg, nnx.Rngs(0), settings())
  base_flat = dict(nnx.to_flat_state(nnx.state(plain, nnx.Param)))
  for path, variable in nnx.to_flat_state(nnx.state(adapted, nnx.Param)):
    if "lora" not in path:  # every base weight at its plain path, with the same values
      np.testing.assert_array_equal(variable.get_value(), base_flat[path].get_value())
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 32)
  np.testing.assert_array_equal(plain(tokens), adapted(tokens))  # B = 0


def test_merged_adapters_compute_what_the_adapted_model_does():
  cfg = ModelConfig(**SMALL, mlp="swiglu")
  model = objectives.build_model(cfg, nnx.Rngs(0), settings(alpha=6.0))
  # Trained adapters are not zero: give every B random values.
  for layer in lora.adapted_layers(model):
    layer.lora.lora_b[...] = 0.1 * jax.random.normal(jax.random.key(2), layer.lora.lora_b.shape)
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 32)
  adapted_logits = model(tokens)
  merged = lora.merge(model)
  assert not lora.adapted_layers(merged)
  plain_graph = nnx.graphdef(objectives.build_model(cfg, nnx.Rngs(0)))
  assert nnx.graphdef(merged) == plain_graph  # a plain Transformer again
  np.testing.assert_allclose(merged(tokens), adapted_logits, atol=2e-5)


def test_settings_from_the_config():
  config = base.get_config()
  assert lora.settings_of(config) is None  # full
  assert lora.settings_of(ml_collections.ConfigDict({"model": {}})) is None  # an old config
  config.finetune.method = "lora"
  config.finetune.lora_rank = 4
  assert lora.settings_of(config) == lora.LoRASettings(
      4, 4.0, ("query", "key_value", "out", "up", "gate", "down"))
  config.finetune.lora_targets = "mlp, query"
  assert lora.settings_of(config).targets == ("query", "up", "gate", "down")
  for key, value, message in (("lora_targets", "attn", "lora_targets"), ("lora_rank", 0, "rank"),
                              ("method", "qlora", "method")):
    bad = config.copy_and_resolve_references()
    bad.finetune[key] = value
    with pytest.raises(ConfigError, match=message):
      lora.settings_of(bad)


@pytest.mark.parametrize("family", ["decoder", "encoder", "encoder_decoder"])
def test_only_adapters_get_gradients_through_the_split(family):
  cfg = ModelConfig(**SMALL, family=family)
  model = objectives.build_model(cfg, nnx.Rngs(0), settings())
  graphdef, adapters, frozen, rest = nnx.split(model, nnx.LoRAParam, nnx.Param, ...)
  tokens = jax.random.randint(jax.random.key(1), (2, 17), 0, 32)
  loss = lambda adapters: objectives.loss(nnx.merge(graphdef, adapters, frozen, rest), tokens,
                                          jax.random.key(0))
  value, grads = jax.jit(jax.value_and_grad(loss))(adapters)  # one compile, not two
  assert jax.tree.structure(grads) == jax.tree.structure(adapters)
  # With B = 0 only B's gradient is non-zero at the start (d/dA of x A B is 0 when B = 0).
  flat = {"/".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(grads)}
  assert all(np.all(g == 0) for p, g in flat.items() if p.endswith("lora_a"))
  assert all(np.any(g != 0) for p, g in flat.items() if p.endswith("lora_b"))
  assert jnp.isfinite(value)
