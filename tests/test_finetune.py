"""Fine-tuning a trained run: LoRA trains adapters only, resumes exactly, merges, groups and shards;
every fine-tuning run reports its cost and forgetting."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import train
from conftest import FAST_40, HANG_S, ROOT, TINY, rows, train_until_fault
from core import rundir
from model import generate, lora, loading, quantize, sizing
from model.transformer import ModelConfig

FAST = FAST_40  # 40 steps of 16 x 64 tokens, a metrics row every 5 steps, a checkpoint every 10
# The related language: 512 new topics, half the mixture.
NEW_TOPICS = ["--config.data.synthetic.new_topics=512", "--config.data.synthetic.new_topic_weight=0.5"]
LORA = ["--config.finetune.method=lora", "--config.finetune.lora_rank=4",
        "--config.finetune.lora_alpha=8.0", "--config.train.lr=1e-2"]


def command(workdir, *overrides):
  return ["--config", TINY, "--workdir", str(workdir), *FAST, *overrides]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("base")
  assert train.main(command(workdir)) == 0
  return workdir


def lora_command(base_run, workdir, *overrides):
  return command(workdir, f"--config.init_from={base_run}", *NEW_TOPICS, *LORA, *overrides)


@pytest.fixture(scope="module")
def lora_run(base_run, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("lora")
  assert train.main(lora_command(base_run, workdir)) == 0
  return workdir


@pytest.mark.slow
def test_lora_trains_exactly_the_counted_adapters_and_leaves_the_base_bit_identical(
    base_run, lora_run):
  result = rundir.read_result(str(lora_run))
  assert result["status"] == "completed"
  config = rundir.read_config(str(lora_run))
  cfg = ModelConfig(vocab_size=64, max_len=64, n_layer=2, d_model=64, n_heads=4, d_ff=256)
  adapters = sizing.count_lora_params(cfg, 4, lora.MATRICES)
  assert result["trainable_params"] == adapters == 2 * 4 * (7 * 64 + 2 * (64 + 256))
  # AdamW's two moments of the adapters and nothing of the base (plus its step count).
  assert 8 * adapters <= result["optimizer_state_bytes"] <= 8 * adapters + 64
  assert result["finetune"] == {"method": "lora", "lora_rank": 4, "lora_alpha": 8.0,
                                "lora_targets": "query,key_value,out,up,gate,down"}
  base = rundir.read_result(str(base_run))
  assert base["trainable_params"] == base["n_params_total"]  # pre-training trains everything
  assert base["optimizer_state_bytes"] >= 8 * base["n_params_total"]
  # The base weights in the LoRA run's final checkpoint are the base run's, bit for bit.
  base_model, _ = loading.load_model(str(base_run))
  base_weights = quantize.flatten(nnx.state(base_model, nnx.Param))
  model, _ = loading.load_model(str(lora_run), merged=False)
  _, trained, frozen, _ = nnx.split(model, nnx.LoRAParam, nnx.Param, ...)
  frozen = quantize.flatten(frozen)
  assert frozen.keys() == base_weights.keys()
  for path, weight in frozen.items():
    np.testing.assert_array_equal(weight, base_weights[path], err_msg=path)
  assert all(np.any(w != 0) for p, w in quantize.flatten(trained).items() if p.endswith("lora_b"))
  # Adaptation and forgetting, each on this run's eval sequences, against exact floors.
  assert result["original_data_eval_loss_before"] == base["final_eval_loss"]
  assert result["forgetting"] == pytest.approx(
      result["original_data_eval_loss"] - result["original_data_eval_loss_before"])
  assert result["final_eval_loss"] < result["finetune_eval_loss_before"]  # it adapted
  assert 0 < result["loss_floor"] < result["final_eval_loss"]
  assert result["original_data_loss_floor"] == base["loss_floor"]
  assert config.finetune.method == "lora"


@pytest.mark.slow
def test_merged_lora_weights_give_the_same_eval_loss_generate_and_export(lora_run, tmp_path,
                                                                         capsys):
  result = rundir.read_result(str(lora_run))
  merged = quantize.evaluate_run(str(lora_run))  # load_model merges the adapters
  assert merged["rows"][0]["eval_loss"] == pytest.approx(result["final_eval_loss"], abs=1e-5)
  exported = tmp_path / "merged"
  assert lora.main(["--workdir", str(lora_run), "--out", str(exported)]) == 0
  assert rundir.read_result(str(exported))["merged_from"] == str(lora_run)
  again = quantize.evaluate_run(str(exported))
  assert again["rows"][0]["eval_loss"] == pytest.approx(result["final_eval_loss"], abs=1e-5)
  args = ["--workdir", str(lora_run), "--prompt", "ab", "--max-new-tokens", "80", "--json",
          "--temperature", "0"]
  assert generate.main(args) == 0
  sample = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_tokens"]
  assert generate.main([*args[:1], str(exported), *args[2:]]) == 0
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_tokens"] == sample
  assert len(sample) == 80
  assert lora.main(["--workdir", str(exported), "--out", str(tmp_path / "again")]) == 2
  # init_from a LoRA run starts from its merged weights, as the export holds them.
  model, _ = loading.load_model(str(exported))
  plain = nnx.state(model, nnx.Param)
  on_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=on_device),
                          plain)
  restored = loading.restore_params(str(lora_run), abstract)
  for path, weight in quantize.flatten(restored).items():
    np.testing.assert_array_equal(weight, quantize.flatten(plain)[path], err_msg=path)


@pytest.mark.slow
def test_a_lora_run_resumes_exactly_after_sigkill(base_run, lora_run, tmp_path):
  """Killed between checkpoints (10 and 20) on a row step: its row is rolled back on resume."""
  workdir = tmp_path / "killed"
  train_until_fault(lora_command(base_run, workdir), "SIGKILL@15")
  assert rows(workdir)[-1]["step"] == 15
  assert not (workdir / "result.json").exists()
  assert train.main(lora_command(base_run, workdir)) == 0
  assert rows(workdir) == rows(lora_run)
  ours, theirs = rundir.read_result(str(workdir)), rundir.read_result(str(lora_run))
  for key in ("final_eval_loss", "original_data_eval_loss", "finetune_eval_loss_before"):
    assert ours[key] == theirs[key], key


@pytest.mark.slow
def test_a_sharded_group_of_lora_replicas_matches_its_single_runs(base_run, lora_run, tmp_path):
  """Two LoRA replicas (the single run's lr and another) on a 4 data x 2 fsdp mesh of 8 CPUs."""
  workdir = tmp_path / "group"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu"}
  completed = subprocess.run(
      [sys.executable, "train.py", *lora_command(base_run, workdir), "--config.mesh.fsdp=2",
       "--config.train.replicas=2", "--config.train.replica_lrs=(1e-2, 3e-3)"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)
  assert completed.returncode == 0, completed.stderr[-2000:]
  first, second = (rundir.read_result(str(workdir / f"replica_{i}")) for i in (0, 1))
  single = rundir.read_result(str(lora_run))
  for key in ("final_eval_loss", "original_data_eval_loss", "original_data_eval_loss_before"):
    assert first[key] == pytest.approx(single[key], abs=1e-4), key
  assert second["original_data_eval_loss_before"] == pytest.approx(
      single["original_data_eval_loss_before"], abs=1e-4)  # the same base for both
  assert second["final_eval_loss"] != pytest.approx(first["final_eval_loss"], abs=1e-4)
  assert first["trainable_params"] == single["trainable_params"]
  assert first["optimizer_state_bytes"] == single["optimizer_state_bytes"]


def test_lora_needs_a_run_to_adapt(tmp_path, capsys):
  assert train.main(command(tmp_path / "never", *LORA)) == 2
  err = capsys.readouterr().err.strip()
  assert "init_from" in err and len(err.splitlines()) == 1
  assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_text_files_fine_tune_too(tmp_path):
  """A base run on one text file and a LoRA run on another: no floors, forgetting measured."""
  for name, words in (("base.txt", ("alpha", "beta", "gamma")), ("new.txt", ("delta", "omega"))):
    paragraphs = [" ".join(words[(i + j) % len(words)] for j in range(20)) for i in range(300)]
    (tmp_path / name).write_text("\n\n".join(paragraphs) + "\n")
  text = lambda name: ["--config.data.source=text", f"--config.data.path={tmp_path / name}",
                       f"--config.data.cache_dir={tmp_path / 'cache'}",
                       "--config.train.tokens=10240"]
  assert train.main(command(tmp_path / "base", *text("base.txt"))) == 0
  assert train.main(command(tmp_path / "lora", *text("new.txt"), *LORA,
                            f"--config.init_from={tmp_path / 'base'}")) == 0
  result = rundir.read_result(str(tmp_path / "lora"))
  assert result["status"] == "completed" and result["loss_floor"] is None
  assert result["original_data_loss_floor"] is None
  assert result["original_data_eval_loss_before"] == rundir.read_result(
      str(tmp_path / "base"))["final_eval_loss"]
  assert result["final_eval_loss"] < result["finetune_eval_loss_before"]
