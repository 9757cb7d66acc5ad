"""model.parametrization (model/parametrization.py): the multipliers against hand-computed values,
the groups each parameter lands in, the forward multipliers, sp unchanged to the bit, the base
shape training as sp, and replicas, LoRA and the three families under each parametrization."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import data
from conftest import TINY
from core.config import ConfigError, load_config
from model import lora, parametrization, sizing
from model.parametrization import Group, INIT_STD
from model.transformer import ModelConfig, Transformer
from training import optimizer, plan as plan_lib
from training.batches import Batches
from training.sharding import make_mesh
from training.steps import Trainer

# m_d = 128 / 32 = 4, m_L = 4 / 2 = 2, head dim 32, base head dim 32 / 4 = 8.
SHAPE = dict(vocab_size=32, max_len=16, n_layer=4, d_model=128, n_heads=4, d_ff=512)
SMALL = ["--config.train.seq_len=32", "--config.train.batch_size=8"]


def shape(name, **kw):
  bases = {"sp": {}, "mup": dict(base_width=32), "completep": dict(base_width=32, base_depth=2)}
  return ModelConfig(**{**SHAPE, **kw}, parametrization=name, **bases[name])


def test_multipliers_by_hand():
  sp, mup, completep = (parametrization.scales(shape(name)) for name in ("sp", "mup", "completep"))
  assert (sp.hidden_std, sp.out_std, sp.attention, sp.residual, sp.output) == (
      INIT_STD, INIT_STD / math.sqrt(8), None, None, None)
  assert mup.embed_std == mup.readout_std == 0.02 and mup.hidden_std == pytest.approx(0.01)
  assert mup.out_std == pytest.approx(0.02 / math.sqrt(2 * 4 * 4))   # 2 L m_d
  assert (mup.attention, mup.residual, mup.output) == (pytest.approx(0.5), None, 0.25)
  assert completep.out_std == pytest.approx(0.005)                     # 2 L_base m_d = 16
  assert (completep.attention, completep.residual, completep.output) == (
      pytest.approx(0.5), 0.5, 0.25)
  groups = parametrization.groups(shape("completep"))
  assert groups["hidden"] == Group(lr=0.25, eps=0.125, weight_decay=4.0)
  assert groups["block_vector"] == Group(lr=1.0, eps=0.125, weight_decay=0.0)
  assert groups["embedding"] == groups["readout"] == Group(lr=1.0, eps=0.25, weight_decay=1.0)
  assert groups["vector"] == Group(lr=1.0, eps=0.25, weight_decay=0.0)
  assert groups["adapter"] == Group(lr=1.0, eps=1.0, weight_decay=1.0)
  mup_groups = parametrization.groups(shape("mup"))
  assert mup_groups["hidden"] == Group(lr=0.25, eps=0.25, weight_decay=4.0)
  assert mup_groups["block_vector"] == Group(lr=1.0, eps=0.25, weight_decay=0.0)


def test_base_head_dim_follows_the_grid_or_a_fixed_head_count(tmp_path):
  config = load_config(TINY, ["--config.model.parametrization=mup", "--config.model.base_width=32"])
  fixed = sizing.model_config_from(config.model, vocab_size=64, seq_len=64)
  assert fixed.base_head_dim == 0.0 and parametrization.scales(fixed).attention == pytest.approx(
      math.sqrt(8 / 16))                                   # 32 / 4 heads vs 64 / 4 heads
  config.model.update(target_params=6e5, n_layer=0, d_model=0, n_heads=0)
  grid = sizing.model_config_from(config.model, vocab_size=64, seq_len=64)   # 3 x 128, heads of 16
  assert grid.base_head_dim == 16.0 and parametrization.scales(grid).attention == 1.0


def test_every_parameter_has_its_group():
  small = dict(n_layer=1, d_model=64, d_ff=128)
  for family in ("decoder", "encoder_decoder"):
    model = nnx.eval_shape(lambda: Transformer(shape("mup", family=family, pos="learned", **small),
                                               rngs=nnx.Rngs(0)))
    labels = parametrization.labels(nnx.state(model, nnx.Param))
    found = {".".join(str(k) for k in path if not isinstance(k, int)): label.get_value()
             for path, label in nnx.to_flat_state(labels)}
    assert found["blocks.attn.query.kernel"] == found["blocks.mlp.down.kernel"] == "hidden"
    assert found["blocks.attn_norm.scale"] == "block_vector"
    assert found["embed.embedding"] == found["pos_embed.embedding"] == "embedding"
    assert found["unembed"] == "readout" and found["norm.scale"] == "vector"
    if family == "encoder_decoder":
      assert found["encoder.mlp.up.kernel"] == found["blocks.cross_attn.out.kernel"] == "hidden"
      assert found["encoder_norm.scale"] == "vector"
  adapted = nnx.eval_shape(lambda: lora.attach(
      Transformer(shape("mup", **small), rngs=nnx.Rngs(0)),
      lora.LoRASettings(rank=2, alpha=2.0, targets=("query",)), nnx.Rngs(1)))
  adapters = parametrization.labels(nnx.state(adapted, nnx.LoRAParam))
  assert set(jax.tree.leaves(adapters)) == {"adapter"}


def test_init_stds_as_ruled():
  cfg = ModelConfig(**{**SHAPE, "n_layer": 1, "d_ff": 256}, parametrization="mup", base_width=16)

  @jax.jit
  def stds():  # m_d = 8
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    return [jnp.std(x[...]) for x in (model.blocks[0].attn.query.kernel,
                                      model.blocks[0].mlp.down.kernel, model.embed.embedding,
                                      model.unembed)]

  expected = [0.02 / math.sqrt(8), 0.02 / math.sqrt(2 * 1 * 8), 0.02, 0.02]
  np.testing.assert_allclose(stds(), expected, rtol=0.05)


@pytest.mark.slow  # ~3 s of CPU compiling two models
def test_forward_multipliers_equal_scaled_weights():
  """completep's forward on weights W equals sp's on W with the multipliers folded in: queries x
  attention, each branch's last matrix x residual, the readout x output."""
  small = dict(n_layer=2, d_model=64, d_ff=128)     # m_d = 2, m_L = 2 (base depth 1)
  cfg = ModelConfig(**{**SHAPE, **small}, parametrization="completep", base_width=32,
                    base_depth=1)
  scales = parametrization.scales(cfg)
  assert (scales.attention, scales.residual, scales.output) == (pytest.approx(0.5 ** 0.5), 0.5,
                                                                0.5)

  @jax.jit
  def both(tokens):
    ours = Transformer(cfg, rngs=nnx.Rngs(0))
    folded = Transformer(ModelConfig(**{**SHAPE, **small}), rngs=nnx.Rngs(1))
    nnx.update(folded, nnx.state(ours, nnx.Param))
    for block in folded.blocks:
      block.attn.query.kernel.set_value(block.attn.query.kernel[...] * scales.attention)
      for matrix in (block.attn.out, block.mlp.down):
        matrix.kernel.set_value(matrix.kernel[...] * scales.residual)
    folded.unembed.set_value(folded.unembed[...] * scales.output)
    return ours(tokens), folded(tokens)

  ours, folded = both(jax.random.randint(jax.random.key(0), (2, 12), 0, 32))
  np.testing.assert_allclose(ours, folded, rtol=2e-5, atol=2e-6)


def train_losses(overrides, steps=3, lora_rank=0):
  """Train losses of `steps` steps of TINY (seq 32, batch 8) with `overrides`, in process."""
  config = load_config(TINY, SMALL + [f"--config.train.tokens={steps * 256}", *overrides])
  config, source, model_cfg, plan = plan_lib.resolve(config, 1)
  if lora_rank:  # adapters on a fresh base (resolve wants init_from; the step does not)
    config.finetune.update(method="lora", lora_rank=lora_rank)
  trainer = Trainer(config, model_cfg, plan, make_mesh(config))
  batches = Batches(trainer.batch_sharding, plan.batch_size, plan.replicas)
  sources = [source] if plan.replicas == 1 else [
      data.make_source(plan_lib.replica_config(config, plan, i)) for i in range(plan.replicas)]
  state, losses = trainer.init(), []
  for batch in batches.train(sources, 0, steps):
    state, metrics = trainer.train_step(state, batch)
    losses.append(np.asarray(metrics["train_loss"]))
  return np.array(losses), state


def _optimizer_before_parametrizations(train, lr, model_cfg=None):
  """training/optimizer.py's make_optimizer before this change, verbatim."""
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip),
      optax.adamw(lr, b1=train.b1, b2=train.b2, weight_decay=train.weight_decay, mask=decay_mask))


def test_sp_run_ids_unchanged():
  """Run ids recorded at main 0aaff87 (before the parametrization keys); sp ignores a base shape."""
  hash_of = lambda overrides: plan_lib.config_hash(plan_lib.resolve(load_config(TINY, overrides),
                                                                    1)[0])
  assert hash_of(SMALL + ["--config.train.tokens=768"]) == "9d6bf24eb76930db"
  assert hash_of(["--config.model.target_params=1e5", "--config.model.mlp=swiglu"]) == (
      "54700b5359840ad8")
  assert hash_of(SMALL + ["--config.train.tokens=768", "--config.model.base_width=32"]) == (
      "9d6bf24eb76930db")


def test_sp_optimizer_unchanged_to_the_bit():
  train = load_config(TINY, ["--config.train.b2=0.95"]).train
  keys = jax.random.split(jax.random.key(0), 4)
  params = {"w": jax.random.normal(keys[0], (8, 4)), "scale": jnp.ones(4)}
  grads = [{"w": jax.random.normal(k, (8, 4)), "scale": jax.random.normal(k, (4,))}
           for k in keys[1:]]

  def trained(opt):
    state, weights = opt.init(params), params
    for grad in grads:
      updates, state = opt.update(grad, state, weights)
      weights = optax.apply_updates(weights, updates)
    return weights

  ours = jax.jit(lambda: trained(optimizer.make_optimizer(train, 3e-3, ModelConfig(**SHAPE))))()
  before = jax.jit(lambda: trained(_optimizer_before_parametrizations(train, 3e-3)))()
  for name in params:
    assert np.asarray(ours[name]).tobytes() == np.asarray(before[name]).tobytes()


@pytest.mark.slow
def test_sp_training_unchanged_to_the_bit(monkeypatch):
  losses, state = train_losses([], steps=4)
  monkeypatch.setattr(optimizer, "make_optimizer", _optimizer_before_parametrizations)
  before, state_before = train_losses([], steps=4)
  assert losses.tobytes() == before.tobytes()
  for ours, theirs in zip(*(jax.tree.leaves(s["params"]) for s in (state, state_before))):
    assert np.asarray(ours).tobytes() == np.asarray(theirs).tobytes()


@pytest.mark.slow
def test_base_shape_trains_as_sp():
  sp, _ = train_losses([])
  for overrides in (["--config.model.parametrization=mup", "--config.model.base_width=64"],
                    ["--config.model.parametrization=completep", "--config.model.base_width=64",
                     "--config.model.base_depth=2"]):
    np.testing.assert_allclose(train_losses(overrides)[0], sp, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mup", "completep"])
def test_replicas_lora_and_families_under(name):
  base = [f"--config.model.parametrization={name}", "--config.model.base_width=32",
          "--config.model.base_depth=1"]
  group, _ = train_losses(base + ["--config.train.replicas=2", "--config.train.replica_batch=2",
                                  "--config.train.replica_lrs=(1e-3, 3e-3)"], steps=2)  # vmapped
  single, _ = train_losses(base + ["--config.train.lr=3e-3", "--config.seed=1"], steps=2)
  np.testing.assert_allclose(group[:, 1], single, rtol=1e-5)
  adapted, state = train_losses(base, steps=2, lora_rank=2)
  assert np.all(np.isfinite(adapted)) and "frozen" in state
  for family in ("encoder", "encoder_decoder"):
    assert np.all(np.isfinite(train_losses(base + [f"--config.model.family={family}"], 2)[0]))
  counts = lambda overrides: plan_lib.resolve(load_config(TINY, overrides), 1)[3]
  ours, sp = counts(base), counts([])
  assert (ours.n_params, ours.n_params_total, ours.flops_per_token) == (
      sp.n_params, sp.n_params_total, sp.flops_per_token)


def test_refusals(tmp_path):
  with pytest.raises(ConfigError, match="needs model.base_width"):
    ModelConfig(**SHAPE, parametrization="mup")
  with pytest.raises(ConfigError, match="needs model.base_depth"):
    ModelConfig(**SHAPE, parametrization="completep", base_width=32)
  with pytest.raises(ConfigError, match="is unknown"):
    ModelConfig(**SHAPE, parametrization="ntk", base_width=32)
  with pytest.raises(ConfigError, match="non-negative integer"):
    ModelConfig(**SHAPE, parametrization="mup", base_width=-4)
