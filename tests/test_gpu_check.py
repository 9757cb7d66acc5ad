"""benchmarks/gpu_check.py --smoke: every section of the prepared GPU check runs, at tiny shapes,
and its one JSON line holds the figures the GPU session is to bring back (their values are read,
not asserted: speeds on a shared CPU are not behaviour)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_at_tiny_shapes(tmp_path):
  done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--smoke",
                         "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  lines = done.stdout.strip().splitlines()
  report = json.loads(lines[-1])
  print(lines[-1])
  assert report["errors"] == {} and report["smoke"]
  for name in ("gpt2_small", "model_10m"):
    figures = report[name]
    assert figures["tokens_per_sec"] > 0 and 0 < figures["mfu_6n"] < figures["mfu"] < 1
    assert figures["attention"].startswith("cpu")  # "cudnn" or "xla" on a GPU
  assert report["gpt2_small"]["mfu_target"] == 0.5
  assert set(report["replicas"]) >= {"1", "4", "8"}
  # How much faster 8 replicas train than 1 is the GPU check's figure to read, not asserted here.
  assert all(report["replicas"][k]["tokens_per_sec"] > 0 for k in ("1", "4", "8"))
  assert 0.5 < report["memory"]["estimate_over_measured"] < 2
  sweep = report["mini_sweep"]
  assert sweep["exit_code"] == 0 and sweep["runs"] == sweep["completed"] == 6
  assert sweep["a"] is not None and os.path.exists(tmp_path / "mini_sweep" / "analysis" / "fit.json")
