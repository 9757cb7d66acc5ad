"""Sizing: exact counts against the initialised model, FLOPs by hand, the shape rule's tolerance."""
import dataclasses
import json
import math

import jax
import numpy as np
import pytest
from flax import nnx

from core.config import ConfigError, load_config
from experiments import base
from model import sizing
from model.transformer import ModelConfig, Transformer


def initialised_param_counts(cfg):
  """(non-embedding, total) parameter counts of Transformer(cfg), read off its abstract state."""
  model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  sizes = {".".join(map(str, path)): math.prod(v.shape)
           for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  embedding_names = ("embed.embedding", "pos_embed.embedding", "unembed")
  embedding = sum(n for name, n in sizes.items() if name in embedding_names)
  return sum(sizes.values()) - embedding, sum(sizes.values())


@pytest.mark.parametrize("kw", [
    dict(n_layer=2, d_model=64, n_heads=4, d_ff=256),
    dict(n_layer=3, d_model=48, n_heads=3, d_ff=128, mlp="swiglu"),
    dict(n_layer=1, d_model=32, n_heads=2, d_ff=96, pos="learned", tie_embeddings=True),
    dict(n_layer=2, d_model=32, n_heads=1, d_ff=64, mlp="swiglu", pos="sinusoidal"),
    dict(n_layer=2, d_model=64, n_heads=8, d_ff=100, pos="learned"),
    # Big shapes cost nothing under eval_shape.
    dict(n_layer=26, d_model=1792, n_heads=28, d_ff=7168, mlp="swiglu", tie_embeddings=True),
    dict(n_layer=12, d_model=768, n_heads=12, d_ff=3072, pos="learned"),
    dict(n_layer=2, d_model=64, n_heads=4, d_ff=256, family="encoder"),
    dict(n_layer=1, d_model=32, n_heads=2, d_ff=96, family="encoder", tie_embeddings=True),
    dict(n_layer=2, d_model=64, n_heads=4, d_ff=256, family="encoder_decoder"),
    dict(n_layer=3, d_model=48, n_heads=3, d_ff=128, mlp="swiglu", pos="learned",
         family="encoder_decoder"),
    dict(n_layer=1, d_model=32, n_heads=2, d_ff=64, tie_embeddings=True, family="encoder_decoder"),
    dict(n_layer=12, d_model=768, n_heads=12, d_ff=3072, family="encoder_decoder"),  # T5-base
])
def test_count_params_equals_initialised_model(kw):
  cfg = ModelConfig(vocab_size=kw.pop("vocab_size", 97), max_len=40, **kw)
  assert sizing.count_params(cfg) == initialised_param_counts(cfg)


def test_gpt2_small_anchor():
  # GPT-2 small: 124,439,808 parameters (tied, learned positions, 1024 context), of which
  # 11 d per layer + d are biases (qkv 3d, attn out d, fc 4d, mlp out d, two LayerNorm biases 2d,
  # final LayerNorm bias d), which this model does not have.
  cfg = ModelConfig(vocab_size=50257, max_len=1024, n_layer=12, d_model=768, n_heads=12,
                    d_ff=3072, pos="learned", tie_embeddings=True)
  non_embedding, total = sizing.count_params(cfg)
  assert total + 12 * 11 * 768 + 768 == 124_439_808
  # Kaplan's N = 12 n_layer d^2 (85M); ours adds the norm scales (2d per layer, d final).
  assert non_embedding == 12 * 12 * 768 ** 2 + 2 * 768 * 12 + 768


def test_flops_per_token_by_hand():
  # V=10, T=4, d=8, h=2 (d_head 4), d_ff=32, one layer. Forward FLOPs of one sequence:
  # embeddings 2*4*10*8 = 640, QKV 2*3*4*8*8 = 1536, logits 2*16*8 = 256, softmax 3*2*16 = 96,
  # values 2*16*8 = 256, output 2*4*8*8 = 512, MLP 2*4*(2*8*32) = 4096, final logits 640.
  # Sum 8032 -> 2008 per token -> 6024 for training. SwiGLU: MLP 2*4*(3*8*32) = 6144 -> 7560.
  cfg = ModelConfig(vocab_size=10, max_len=4, n_layer=1, d_model=8, n_heads=2, d_ff=32)
  assert sizing.flops_per_token(cfg, 4) == 6024
  assert sizing.flops_per_token(dataclasses.replace(cfg, mlp="swiglu"), 4) == 7560
  # The encoder: the same, with the mask id in the vocabulary (V = 11): 2 x 2*4*11*8 = 1408 for
  # both embedding terms instead of 1280: 8160 -> 2040 -> 6120.
  assert sizing.flops_per_token(dataclasses.replace(cfg, family="encoder"), 4) == 6120


def test_encoder_decoder_flops_per_token_by_hand():
  # T = 8: 1 noise token in 1 span, encoder 8 tokens, decoder 2; V = 10 + pad + 1 sentinel = 12;
  # d = 8, h = 2, d_ff = 32, one layer per stack.
  # Encoder: embeddings 2*8*12*8 = 1536; attention: query 2*8*64 = 1024, keys/values 2*2*8*64 =
  # 2048, logits 2*64*8 = 1024, softmax 3*2*64 = 384, values 1024, output 1024 (6528); MLP
  # 2*8*512 = 8192. Sum 16256.
  # Decoder: embeddings 2*2*12*8 = 384; self-attention: 256 + 512 + 64 + 24 + 64 + 256 = 1176;
  # cross-attention over 8 keys: query 256, keys/values 2*2*8*64 = 2048, logits 2*2*8*8 = 256,
  # softmax 3*2*16 = 96, values 256, output 256 (3168); MLP 2*2*512 = 2048; logits 2*2*8*12 = 384.
  # Sum 7160. Forward 23416 per 8 tokens = 2927 -> 8781 for training.
  cfg = ModelConfig(vocab_size=10, max_len=8, n_layer=1, d_model=8, n_heads=2, d_ff=32,
                    family="encoder_decoder")
  assert cfg.model_vocab == 12
  assert sizing.flops_per_token(cfg, 8) == 8781
  # Its N by hand: a layer 4*64 + 2*8*32 + 2*8 = 784, twice, cross-attention 4*64 + 8, two final
  # norms 16: 1848; total adds the embedding and the output matrix, 2 * 12 * 8.
  assert sizing.count_params(cfg) == (1848, 1848 + 2 * 12 * 8)


def test_flops_approach_6n_for_wide_models():
  # When d >> T and d >> V, the matrices dominate and the count tends to 6 N (untied: N_total).
  row = sizing.describe(1e9, vocab_size=64, seq_len=128)
  assert 1.0 < row["ratio_6n_total"] < 1.03
  small = sizing.describe(1e5, vocab_size=64, seq_len=128)
  assert small["ratio_6n"] > row["ratio_6n"]  # attention's T^2 terms weigh more in small models


@pytest.mark.parametrize("mlp, family", [
    ("gelu", "decoder"), ("swiglu", "decoder"), ("gelu", "encoder_decoder"),
    ("swiglu", "encoder_decoder")])
def test_shape_for_params_tolerance(mlp, family):
  seq2seq = family == "encoder_decoder"
  bounds = (0.16, 0.28, 0.35) if seq2seq else (0.07, 0.18, 0.35)
  for target in np.logspace(4, 9, 101):
    shape = sizing.shape_for_params(target, mlp, family)
    cfg = ModelConfig(vocab_size=64, max_len=128, mlp=mlp, family=family, **shape)
    error = abs(sizing.count_params(cfg)[0] / target - 1)
    bound = bounds[0] if target >= 3e5 else bounds[1] if target >= 5e4 else bounds[2]
    assert error <= bound, (target, shape, error)
    assert shape["d_model"] % shape["n_heads"] == 0
    assert shape["d_model"] // shape["n_heads"] == sizing.head_dim_for(shape["d_model"])
    if target >= 1e6:  # depth counts both stacks of an encoder-decoder
      depth = shape["n_layer"] * (2 if seq2seq else 1)
      assert 24 <= shape["d_model"] / depth <= (240 if seq2seq else 160), (target, shape)
  # The encoder's shape is the decoder's: only its attention mask differs.
  assert sizing.shape_for_params(3e5, mlp, "encoder") == sizing.shape_for_params(3e5, mlp)


def test_shape_rule_gives_the_spec_shapes():
  assert sizing.shape_for_params(12e3) == dict(n_layer=1, d_model=32, n_heads=2, d_ff=128)
  assert sizing.shape_for_params(99e3) == dict(n_layer=2, d_model=64, n_heads=4, d_ff=256)
  assert sizing.shape_for_params(591e3) == dict(n_layer=3, d_model=128, n_heads=8, d_ff=512)
  assert sizing.shape_for_params(1e6, "swiglu")["d_ff"] % 32 == 0


def test_model_config_from_explicit_and_target():
  config = load_config("experiments/tiny.py")
  cfg = sizing.model_config_from(config.model, vocab_size=64, seq_len=64)
  assert cfg == ModelConfig(vocab_size=64, max_len=64, n_layer=2, d_model=64, n_heads=4, d_ff=256)
  model = base.get_config().model
  model.target_params = 1e5
  model.mlp = "swiglu"
  cfg = sizing.model_config_from(model, vocab_size=64, seq_len=128)
  assert (cfg.n_layer, cfg.d_model, cfg.n_heads, cfg.mlp) == (2, 64, 4, "swiglu")
  assert cfg.dtype == ("float32" if jax.default_backend() == "cpu" else "bfloat16")
  model.target_params, model.d_model, model.n_layer = 0.0, 96, 1  # n_heads 0: heads of 16
  assert sizing.model_config_from(model, 64, 128).n_heads == 6
  model.family, model.target_params, model.d_model, model.n_layer = "encoder_decoder", 1e6, 0, 0
  cfg = sizing.model_config_from(model, vocab_size=64, seq_len=128)
  assert cfg.family == "encoder_decoder" and cfg.vocab_size == 64 and cfg.model_vocab == 64 + 7
  assert abs(sizing.count_params(cfg)[0] / 1e6 - 1) < 0.16


@pytest.mark.parametrize("overrides, message", [
    (["model.n_heads=3"], "does not divide"),
    (["model.n_layer=-1"], "positive"),
    (["model.mlp=relu"], "mlp"),
    (["model.pos=alibi"], "pos"),
    (["model.dtype=float8"], "dtype"),
    (["model.family=gpt"], "unknown"),
    (["model.n_layer=0", "model.d_model=0", "model.n_heads=0", "model.target_params=100"],
     "too small"),
    (["model.target_params=1e6", "model.n_layer=2"], "derives the shape"),
    (["model.n_layer=0"], "model.target_params, or model.n_layer"),
])
def test_model_config_from_errors(overrides, message):
  config = load_config("experiments/tiny.py", [f"--config.{o}" for o in overrides])
  with pytest.raises(ConfigError, match=message) as info:
    sizing.model_config_from(config.model, vocab_size=64, seq_len=64)
  assert "\n" not in str(info.value)


def test_cli_json_and_table(capsys):
  assert sizing.main(["--n", "1e6", "--json"]) == 0
  row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert row["n_layer"] == 4 and row["d_model"] == 144
  cfg = ModelConfig(vocab_size=64, max_len=128, n_layer=4, d_model=144, n_heads=9, d_ff=576)
  assert (row["n_params"], row["n_params_total"]) == sizing.count_params(cfg)
  assert row["flops_per_token"] == sizing.flops_per_token(cfg, 128)
  assert row["ratio_6n"] == pytest.approx(row["flops_per_token"] / (6 * row["n_params"]))
  assert sizing.main(["--table", "--vocab", "50257", "--seq-len", "2048", "--json"]) == 0
  table = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert [r["target_params"] for r in table["rows"]] == [1e4, 1e5, 1e6, 1e7, 1e8, 1e9]
  assert sizing.main(["--n", "10"]) == 2
  assert "too small" in capsys.readouterr().err
  assert sizing.main(["--n", "1e6", "--family", "encoder_decoder", "--json"]) == 0
  row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  cfg = ModelConfig(vocab_size=64, max_len=128, family="encoder_decoder", n_layer=row["n_layer"],
                    d_model=row["d_model"], n_heads=row["n_heads"], d_ff=row["d_ff"])
  assert row["family"] == "encoder_decoder"
  assert (row["n_params"], row["n_params_total"]) == sizing.count_params(cfg)
