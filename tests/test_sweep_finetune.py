"""The fine-tuning sweep end to end: it trains its base sweep, fine-tunes every base by every
method at every budget, and analyses the result; planning checks its section."""
import json
import os
import subprocess
import sys

import pytest

import sweep
from conftest import ROOT
from core import rundir
from sweeps.rows import read_plan

FT_CONFIG = os.path.join(ROOT, "experiments", "finetune_sweep.py")
# Two base sizes pre-trained on 40 steps of 8 x 64 tokens.
TINY_BASE = '''from experiments import base

def get_config():
  c = base.get_config()
  c.name = "tiny_base"
  c.train.batch_size = 8
  c.train.seq_len = 64
  c.train.eval_tokens = 2048
  c.wandb.mode = "disabled"
  c.sweep = base.sweep_section(kind="grid", n_params=(1e4, 3e4), tokens=(20480,), workers=2)
  return c
'''
TINY = ["--config.sweep.tokens=(5120, 10240, 20480)", "--config.sweep.lora_ranks=(2,)",
        "--config.train.seq_len=64", "--config.train.eval_tokens=2048",
        "--config.wandb.mode=disabled"]


@pytest.mark.slow
def test_the_finetune_sweep_trains_its_bases_then_every_method_and_fits_each(tmp_path):
  base_config = tmp_path / "tiny_base.py"
  base_config.write_text(TINY_BASE)
  workdir = tmp_path / "ft"
  command = [sys.executable, "sweep.py", "--config", FT_CONFIG, "--workdir", str(workdir),
             f"--config.sweep.base_config={base_config}", "--json", *TINY]
  completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
  summary = json.loads(completed.stdout.strip().splitlines()[-1])
  assert summary["completed"] == summary["runs"] == 2 * 3 * 2
  base_rows = read_plan(str(workdir / "base"))
  assert len(base_rows) == 2 and all(
      rundir.read_status(str(workdir / "base" / "runs" / row.run_id)) == "completed"
      for row in base_rows)
  rows = read_plan(str(workdir))
  assert {row.run_id.split("_")[0] for row in rows} == {"full", "lora2"}
  for row in rows:
    result = rundir.read_result(str(workdir / "runs" / row.run_id))
    assert os.path.dirname(result["init_from"]) == str(workdir / "base" / "runs")
    assert result["finetune"]["method"] == ("full" if row.run_id.startswith("full") else "lora")
  with open(workdir / "analysis" / "finetune.json") as f:
    fit = json.load(f)
  assert set(fit["laws"]) == {"full", "lora r2"}
  assert all("alpha" in law for law in fit["laws"].values())
  assert fit["claims"]["lora r2"]["points"] == 6
  assert "Fitted law per method" in (workdir / "analysis" / "finetune.md").read_text()
  assert "lora r2: L = " in completed.stdout


def test_planning_needs_trained_bases_or_a_base_sweep(tmp_path, capsys):
  args = ["--config", FT_CONFIG, "--workdir", str(tmp_path / "ft"), "--dry-run"]
  assert sweep.main(args) == 2
  assert "not trained yet" in capsys.readouterr().err
  assert sweep.main([*args, f"--config.sweep.base_sweep={tmp_path}"]) == 2
  assert "not a sweep directory" in capsys.readouterr().err
  assert sweep.main([*args, "--config.sweep.tokens=()"]) == 2
  assert "sweep.tokens" in capsys.readouterr().err
