"""training/mfu.py: the rows' tokens/s and MFU (groups, excluded time, 6N), the cached CPU peak."""
import json
import os
import statistics

import pytest

import train
from conftest import ROOT
from training import mfu


class FakeClock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_a_row_counts_training_time_only_and_a_group_counts_all_its_tokens():
  clock = FakeClock()
  throughput = mfu.Throughput(tokens_per_step=1000, flops_per_token=900.0, params=100,
                              peak_flops_per_second=1e6, replicas=4, clock=clock)
  for _ in range(10):  # 10 steps of 4 x 1000 tokens in 2 s of training...
    clock.now += 0.2
    throughput.step()
  with throughput.excluded():  # ... and 3 s of evaluation
    clock.now += 3.0
  row = throughput.read()
  assert row["tokens_per_sec"] == pytest.approx(10 * 4000 / 2.0)
  assert row["mfu"] == pytest.approx(20000 * 900.0 / 1e6)
  assert row["mfu_6n"] == pytest.approx(20000 * 600.0 / 1e6)  # 6 N per token
  assert row["replicas"] == 4
  clock.now += 1.0  # the next row starts where this one was read
  throughput.step()
  assert throughput.read()["tokens_per_sec"] == pytest.approx(4000.0)
  single = mfu.Throughput(1000, 900.0, 100, 1e6, clock=clock)
  assert "replicas" not in single.read()


def test_the_cpu_peak_is_measured_once_per_machine_and_only_raised(tmp_path, monkeypatch):
  measured = []
  monkeypatch.setattr(mfu, "measure_matmul_peak", lambda repeats: measured.append(repeats) or 5e10)
  path = str(tmp_path / "peaks.json")
  assert mfu.cpu_peak(path) == 5e10 and mfu.cpu_peak(path) == 5e10
  assert len(measured) == 1  # the second process reads the first one's figure
  mfu.remember_higher_cpu_peak(4e10, path)
  assert mfu.cpu_peak(path) == 5e10
  mfu.remember_higher_cpu_peak(6e10, path)
  assert mfu.cpu_peak(path) == 6e10
  monkeypatch.setattr(mfu, "machine_key", lambda: "another machine")
  assert mfu.cpu_peak(path) == 5e10 and len(measured) == 2
  assert len(json.load(open(path))) == 2


@pytest.mark.slow
def test_rows_at_evaluation_steps_leave_the_evaluation_out(tmp_path):
  """Evaluations of 2048 sequences against steps of 16: counted, an evaluation row's tokens/s would
  fall ~8x below the others'."""
  workdir = tmp_path / "run"
  assert train.main(["--config", os.path.join(ROOT, "experiments", "tiny.py"), "--workdir",
                     str(workdir), "--config.train.tokens=40960", "--config.train.log_every=5",
                     "--config.train.eval_every=10", "--config.train.eval_tokens=131072",
                     "--config.wandb.mode=disabled"]) == 0
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  with open(workdir / "result.json") as f:
    result = json.load(f)
  evals = [row["tokens_per_sec"] for row in rows if "eval_loss" in row]
  others = [row["tokens_per_sec"] for row in rows if "eval_loss" not in row]
  assert len(evals) == 4 and len(others) == 4
  assert statistics.median(evals) > 0.4 * statistics.median(others), (evals, others)
  for row in rows:
    assert row["mfu_6n"] / row["mfu"] == pytest.approx(
        6 * result["n_params_total"] / result["flops_per_token"])
