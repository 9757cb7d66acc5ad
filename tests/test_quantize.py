"""int8 quantisation by hand, and every precision on a tiny trained run (train.py)."""
import json
import os

import numpy as np
import pytest
from flax import nnx

import train
from conftest import TINY
from model import loading, quantize



def test_int8_by_hand():
  w = np.array([[1.0, -3.0], [0.25, 4.0]], np.float32)
  q, scale = quantize.quantize(w, axis=1)  # one scale per column: max|w| / 127
  np.testing.assert_allclose(scale, [[1 / 127, 4 / 127]], rtol=1e-6)
  # 0.25 * 127 = 31.75 -> 32; -3 * 127 / 4 = -95.25 -> -95
  np.testing.assert_array_equal(q, [[127, -95], [32, 127]])
  assert q.dtype == np.int8 and scale.dtype == np.float32
  rows_q, rows_scale = quantize.quantize(w, axis=0)  # one scale per row
  np.testing.assert_allclose(rows_scale, [[3 / 127], [4 / 127]], rtol=1e-6)
  # 127 / 3 = 42.33 -> 42; 0.25 * 127 / 4 = 7.94 -> 8
  np.testing.assert_array_equal(rows_q, [[42, -127], [8, 127]])


@pytest.mark.parametrize("axis", [0, 1])
def test_round_trip_error_is_at_most_half_a_step(axis):
  rng = np.random.default_rng(0)
  w = (rng.standard_normal((37, 23)) * rng.uniform(0.01, 3, (1, 23))).astype(np.float32)
  w[:, 5] = 0.0  # an all-zero column
  q, scale = quantize.quantize(w, axis)
  error = np.abs(np.asarray(quantize.dequantize(q, scale)) - w)
  assert np.all(error <= scale / 2 * (1 + 1e-5) + 1e-12)
  assert np.abs(q).max() == 127 and np.all(np.abs(q.astype(int)) <= 127)
  if axis == 1:
    assert scale[0, 5] == 0 and np.all(q[:, 5] == 0)


def test_channels_are_embedding_rows_and_kernel_columns():
  stored = quantize.store({"embed/embedding": np.ones((10, 4)), "unembed": np.ones((4, 10)),
                           "blocks/0/mlp/up/kernel": np.ones((4, 6)), "norm/scale": np.ones(4)},
                          "int8")
  assert stored["embed/embedding:scale"].shape == (10, 1)
  assert stored["unembed:scale"].shape == (1, 10)
  assert stored["blocks/0/mlp/up/kernel:scale"].shape == (1, 6)
  assert stored["norm/scale"].dtype == np.float32 and "norm/scale:scale" not in stored
  assert quantize.nbytes(stored) == 40 + 40 + 24 + 4 * (10 + 10 + 6) + 4 * 4


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("tiny")
  assert train.main(["--config", TINY, "--workdir", str(workdir), "--config.train.tokens=20480",
                     "--config.train.eval_tokens=2048", "--config.wandb.mode=disabled"]) == 0
  return str(workdir)


@pytest.mark.slow
def test_every_precision_on_a_trained_run(trained_run, capsys):
  assert quantize.main(["--workdir", trained_run, "--json", "--prompt", "ab",
                        "--max-new-tokens", "4"]) == 0
  out = capsys.readouterr().out
  report = json.loads(out.strip().splitlines()[-1])
  assert [row["format"] for row in report["rows"]][:4] == ["fp32", "bf16", "fp16", "int8"]
  rows = {(row["format"], row["compute_dtype"]): row for row in report["rows"]}
  assert os.path.exists(report["int8_path"])
  assert len(rows["int8", "float32"]["sample"]) == 4  # the prompt's 4 new tokens, greedily
  fp32 = rows["fp32", "float32"]
  with open(os.path.join(trained_run, "result.json")) as f:
    result = json.load(f)
  assert report["eval_sequences"] == 2048 // 64
  # The fp32 row is the run's own evaluation; 16-bit and int8 weights cost (almost) nothing.
  assert fp32["eval_loss"] == pytest.approx(result["final_eval_loss"], abs=1e-5)
  for key, tolerance in ((("bf16", "float32"), 2e-3), (("fp16", "float32"), 1e-3),
                         (("int8", "float32"), 5e-3), (("bf16", "bfloat16"), 1e-2)):
    assert abs(rows[key]["eval_loss"] - fp32["eval_loss"]) < tolerance, key
  assert fp32["weight_bytes"] == 4 * result["n_params_total"]
  assert rows["bf16", "float32"]["weight_bytes"] == 2 * result["n_params_total"]
  assert 0.25 < rows["int8", "float32"]["memory_ratio"] < 0.3


@pytest.mark.slow
def test_int8_weights_load_back_to_the_same_loss(trained_run):
  model, config = loading.load_model(trained_run)
  flat = quantize.flatten(nnx.state(model, nnx.Param))
  in_memory = quantize.store(flat, "int8")
  path = os.path.join(trained_run, "roundtrip", "int8.npz")
  quantize.save_int8(in_memory, path)
  loaded = quantize.load_int8(path)
  assert loaded.keys() == in_memory.keys()
  for name, array in in_memory.items():
    assert loaded[name].dtype == array.dtype
    np.testing.assert_array_equal(loaded[name], array)
  batches = quantize.eval_batches(config, trained_run)
  assert quantize.mean_loss(model, loaded, batches) == quantize.mean_loss(model, in_memory, batches)


def test_cli_reports_a_bad_workdir_in_one_line(tmp_path, capsys):
  assert quantize.main(["--workdir", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "config.json" in err
