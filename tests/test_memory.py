"""The memory planner: hand-computed estimates, the real model's shapes, XLA's compiled figures."""
import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals

from conftest import HANG_S, ROOT, TINY
from core.config import ConfigError, load_config
from model import lora, objectives, sizing
from training import memory
from model.transformer import ModelConfig, Transformer

# 2 layers of width 8: every figure below is worked out by hand from this shape.
HAND = ModelConfig(vocab_size=10, max_len=4, n_layer=2, d_model=8, n_heads=2, d_ff=32)
XLA_TOLERANCE = 0.20
DTYPES = {"f32": "float32", "bf16": "bfloat16", "i32": "int32", "bool": "bool"}


@pytest.mark.parametrize("kw", [
    dict(n_layer=2, d_model=64, n_heads=4, d_ff=256),
    dict(n_layer=3, d_model=48, n_heads=3, d_ff=128, mlp="swiglu"),
    dict(n_layer=1, d_model=32, n_heads=2, d_ff=96, pos="learned", tie_embeddings=True),
])
def test_parameter_shapes_count_what_sizing_counts(kw):
  cfg = ModelConfig(vocab_size=50, max_len=16, **kw)
  shapes = memory.parameter_shapes(cfg)
  assert sum(map(math.prod, shapes.values())) == sizing.count_params(cfg)[1]
  assert shapes["embed/embedding"] == (50, kw["d_model"])


def test_fp32_estimate_by_hand():
  # 1,736 parameters: embedding 80, output 80, final norm 8, two layers of
  # 8 + 64 + 128 + 64 + 8 + 256 + 256 (norm, query, key/value, out, norm, up, down).
  e = memory.estimate(HAND, batch_per_device=2, precision="fp32")
  assert e["weights"] == e["gradients"] == 4 * 1736 and e["optimizer"] == 8 * 1736
  assert e["master_weights"] == 0
  assert e["weight_copies"] == 0 and e["batch"] == 4 * 2 * 5
  # per layer 4 (10 * 2*4*8 + 3 * 2*4*32) + (8 + 4) * 2*2*4*4;
  # outside 4 * 2 * 2*4*8 + 4 * 2 * 2*4*10
  assert e["activations_per_layer"] == 4 * (640 + 768) + 12 * 64 == 6400
  assert e["activations_outside_layers"] == 512 + 640
  assert e["activations"] == 2 * 6400 + 1152
  assert e["activations_remat"] == 2 * 4 * 2 * 4 * 8 + 6400 + 1152  # block inputs + one block
  assert e["total"] == 6944 + 6944 + 13888 + 40 + 13952 == 41768
  assert e["total_remat"] == 41768 - 13952 + 8064
  assert e["total_over_weights"] == pytest.approx(41768 / 6944)


def test_bf16_and_int8_estimates_by_hand():
  bf16 = memory.estimate(HAND, batch_per_device=2, precision="bf16")
  # 16-bit activations, float32 softmax: per layer 2 (640 + 768) + (8 + 2) * 64,
  # outside 2 * 128 + 640
  assert bf16["activations"] == 2 * (2816 + 640) + (256 + 640)
  assert bf16["weight_copies"] == 2 * (80 + 80 + 2 * (64 + 128 + 64 + 256 + 256))
  assert bf16["weights"] == 6944 and bf16["gradients"] == 6944 and bf16["optimizer"] == 13888
  int8 = memory.estimate(HAND, batch_per_device=2, precision="int8")
  # int8 matrices + a float32 scale per output channel (embedding rows, other matrices' columns);
  # a layer: q 64+4*8, kv 128+4*16, out 64+4*8, up 256+4*32, down 256+4*8, two norms 4*16
  layer = 96 + 192 + 96 + 384 + 288 + 64
  assert int8["weights"] == (80 + 40) + (80 + 40) + 4 * 8 + 2 * layer
  assert int8["master_weights"] == 6944
  assert int8["activations"] == bf16["activations"]
  assert int8["total"] == bf16["total"] + int8["weights"]


def test_sharding_accumulation_and_flash_attention_by_hand():
  base = memory.estimate(HAND, batch_per_device=2)
  fsdp = memory.estimate(HAND, batch_per_device=2, fsdp=2)
  assert fsdp["weights"] == base["weights"] / 2 and fsdp["optimizer"] == base["optimizer"] / 2
  # fp32 gathers one layer's matrices and the output matrix
  assert fsdp["weight_copies"] == 4 * ((64 + 128 + 64 + 256 + 256) + 80)
  accumulated = memory.estimate(HAND, batch_per_device=2, grad_accum=2)
  assert accumulated["gradients"] == 2 * base["gradients"]
  one_sequence = memory.estimate(HAND, batch_per_device=1)
  assert accumulated["activations"] == one_sequence["activations"]
  flash = memory.estimate(HAND, batch_per_device=2, precision="bf16", flash_attention=True)
  bf16 = memory.estimate(HAND, batch_per_device=2, precision="bf16")
  assert bf16["activations_per_layer"] - flash["activations_per_layer"] == 10 * 64 - 4 * 2 * 2 * 4
  with pytest.raises(ConfigError, match="grad_accum"):
    memory.estimate(HAND, batch_per_device=3, grad_accum=2)


def test_remat_keeps_one_block_input_per_layer():
  """JAX's saved residuals under model.remat grow by exactly one block input, b t d, per layer."""
  def saved_bytes(n_layer):
    cfg = ModelConfig(vocab_size=32, max_len=8, n_layer=n_layer, d_model=16, n_heads=2, d_ff=64,
                      remat=True)
    graphdef, params, rest = nnx.split(
        nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param, ...)
    loss = lambda p, batch: objectives.loss(nnx.merge(graphdef, p, rest), batch, None)
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
      print_saved_residuals(loss, params, jax.ShapeDtypeStruct((3, 9), jnp.int32))
    saved = 0
    for line in listing.getvalue().splitlines():  # e.g. "f32[3,8,16] output of mul from ..."
      match = re.match(r"(\w+)\[([\d,]*)\] ", line)
      if match and "from the argument" not in line:
        shape = [int(n) for n in match.group(2).split(",") if n]
        saved += math.prod(shape) * jnp.dtype(DTYPES[match.group(1)]).itemsize
    return saved
  assert saved_bytes(3) - saved_bytes(1) == 2 * 4 * 3 * 8 * 16


@pytest.mark.parametrize("overrides,vocab", [
    ([], None),                                                       # experiments/tiny.py
    (["--config.model.n_layer=1", "--config.model.d_model=32", "--config.model.n_heads=2",
      "--config.train.seq_len=128", "--config.train.batch_size=4"], 256),   # attention-bound
])
def test_estimate_is_within_tolerance_of_xla(overrides, vocab):
  config = load_config(TINY, overrides)
  memory_plan = memory.plan(config, vocab_size=vocab)
  xla = memory.xla_memory(memory_plan["config"], memory_plan["model_cfg"], memory_plan["plan"])
  _, _, estimate = memory.comparable_estimate(memory_plan)
  assert xla["total"] > 0
  assert abs(estimate - xla["total"]) <= XLA_TOLERANCE * xla["total"], (estimate, xla)


def test_lora_estimate_by_hand_and_against_xla():
  """Rank 1 on the attention of HAND: 2 layers x (2*8 + 3*8 + 2*8) = 112 adapter parameters,
  which alone have gradients and AdamW moments; each adapter's x A is a [b t, 1] activation."""
  adapters = lora.LoRASettings(1, 1.0, lora.GROUPS["attention"])
  e = memory.estimate(HAND, batch_per_device=2, lora_settings=adapters)
  full = memory.estimate(HAND, batch_per_device=2)
  assert e["weights"] == 4 * (1736 + 112)
  assert e["gradients"] == 4 * 112 and e["optimizer"] == 8 * 112
  assert e["activations_per_layer"] == full["activations_per_layer"] + 4 * 3 * 2 * 4
  config = load_config(TINY, ["--config.model.mlp=swiglu"])
  memory_plan = memory.plan(config)
  lora_config = memory_plan["config"].copy_and_resolve_references()
  lora_config.finetune.method, lora_config.finetune.lora_rank = "lora", 8
  settings = lora.settings_of(lora_config)
  estimate = memory.estimate(memory_plan["model_cfg"], memory_plan["batch_per_device"],
                             causal_blocks=1, lora_settings=settings)
  xla = memory.xla_memory(lora_config, memory_plan["model_cfg"], memory_plan["plan"])
  assert abs(estimate["total"] - xla["total"]) <= XLA_TOLERANCE * xla["total"], (estimate, xla)
  assert estimate["optimizer"] == 8 * sizing.count_lora_params(
      memory_plan["model_cfg"], 8, lora.MATRICES)


def test_check_fits_refuses_with_the_figures_and_passes_what_fits():
  config = load_config(TINY)
  memory_plan = memory.check_fits(config, 1e9)
  needed = memory.required_bytes(memory_plan)
  assert needed == memory_plan["estimates"]["fp32"]["total"]
  with pytest.raises(ConfigError, match=r"needs ~0\.02 GiB per device .* device has 0\.01 GiB"):
    memory.check_fits(config, 0.5 * needed)
  # A CPU's memory is unknown (None): nothing is refused.
  assert memory.check_fits(config, memory.device_memory_limit()) is not None
  remat = load_config(TINY, ["--config.model.remat=True"])
  assert memory.required_bytes(memory.check_fits(remat, 1e9)) < needed


@pytest.mark.slow
def test_cli_on_a_data_and_fsdp_mesh_matches_xla():
  """4 CPU devices, data 2 x fsdp 2, SwiGLU, logits-bound: per-device figures and XLA's, in JSON."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "training.memory", "--config", TINY, "--vocab", "2000", "--json",
       "--config.mesh.fsdp=2", "--config.model.d_model=96", "--config.model.mlp=swiglu",
       "--device-memory-gb", "0.001"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)
  assert out.returncode == 0, out.stderr
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["mesh"] == {"data": 2, "fsdp": 2} and result["batch_per_device"] == 4
  assert result["fits"] is False
  fp32 = result["estimates"]["fp32"]
  single = memory.estimate(ModelConfig(**result["model"]), 16)
  assert fp32["optimizer"] == pytest.approx(single["optimizer"] / 2)
  xla = result["xla"]["total"]
  assert abs(result["xla_compared_with"]["total"] - xla) <= XLA_TOLERANCE * xla
  assert result["backend"] == "cpu"


def test_cli_reports_bad_input_in_one_line(capsys):
  assert memory.main(["--config", TINY, "--config.model.n_heads=5", "--no-xla"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "n_heads" in err and len(err.strip().splitlines()) == 1
