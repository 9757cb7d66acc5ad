"""Sizes, token counts and memory beyond what the counters or the machine hold: one line, exit 2,
nothing written, before anything is traced."""
import os
import subprocess
import sys

import pytest

import train
from conftest import HANG_S, ROOT
from core.config import ConfigError, load_config
from model import sizing
from training import limits, memory
from training import plan as plan_lib

TINY = os.path.join(ROOT, "experiments", "tiny.py")


def refused(tmp_path, capsys, *overrides) -> str:
  workdir = tmp_path / "run"
  assert train.main(["--config", TINY, "--workdir", str(workdir), *overrides]) == 2
  assert not workdir.exists()  # nothing written
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
  return err


def test_tokens_past_the_int32_step_counter_are_refused(tmp_path, capsys):
  for tokens in ("1e30", "3e12"):  # 3e12 / 1024 tokens per step > 2^31 - 1
    err = refused(tmp_path, capsys, f"--config.train.tokens={tokens}")
    assert "step counter" in err and "int32" in err
  plan_lib.resolve(load_config(TINY, [f"--config.train.tokens={(2 ** 31 - 1) * 1024}"]), 1)


def test_a_seed_past_int32_is_refused(tmp_path, capsys):
  assert "int32" in refused(tmp_path, capsys, "--config.seed=3000000000")


def test_a_model_far_past_the_host_memory_is_refused_without_tracing_it(tmp_path, capsys):
  err = refused(tmp_path, capsys, "--config.model.n_layer=2000", "--config.model.d_model=20000")
  # The weights-alone check speaks before the planner's traced estimate would (minutes here).
  assert "parameters alone need" in err and "available" in err


def test_a_run_past_the_host_memory_is_refused_with_the_planners_figures(tmp_path, capsys,
                                                                         monkeypatch):
  config, _, _, plan = plan_lib.resolve(load_config(TINY), 1)
  needed = memory.required_bytes(memory.plan(config, 1))
  # A host with a little less available than the run needs (over the margin).
  monkeypatch.setattr(limits, "host_available_bytes", lambda: int(needed * 0.95))
  err = refused(tmp_path, capsys)
  assert "GiB per device" in err and "of the host's" in err


def test_the_upper_bound_holds_the_planners_estimate(monkeypatch):
  """upper_bound lets a run skip the planner's traced estimate only where it is above it, for
  every precision, backend and remat setting."""
  for overrides in ([], ["--config.model.mlp=swiglu"], ["--config.train.grad_accum=2"],
                    ["--config.model.family=encoder_decoder"], ["--config.model.pos=learned",
                                                                "--config.model.tie_embeddings=True"],
                    ["--config.model.n_layer=4", "--config.model.d_model=128",
                     "--config.train.batch_size=64"]):
    config, _, model_cfg, plan = plan_lib.resolve(load_config(TINY, overrides), 1)
    bound = limits.upper_bound(config, model_cfg, plan, 1)
    for backend in ("cpu", "gpu"):
      estimates = memory.plan(config, 1, backend=backend)["estimates"].values()
      assert bound >= max(max(e["total"], e["total_remat"]) for e in estimates), overrides


def test_sizing_refuses_a_size_past_what_it_counts_at_once():
  with pytest.raises(ConfigError, match="past the 1e\\+15"):
    sizing.shape_for_params(1e30)
  completed = subprocess.run([sys.executable, "-m", "model.sizing", "--n", "1e30"], cwd=ROOT,
                             capture_output=True, text=True, timeout=HANG_S)
  assert completed.returncode == 2
  assert completed.stderr.strip().splitlines() == [
      "error: target_params=1e+30 is past the 1e+15 parameters this code sizes and counts"]
  assert completed.stdout == ""


def test_a_group_of_replicas_needs_the_memory_of_each(tmp_path, capsys, monkeypatch):
  config, _, _, _ = plan_lib.resolve(load_config(TINY), 1)
  needed = memory.required_bytes(memory.plan(config, 1))
  # Room for two models, with the margin: one fits, a group of four does not.
  monkeypatch.setattr(limits, "host_available_bytes", lambda: int(2 * needed / limits.MEMORY_MARGIN))
  err = refused(tmp_path, capsys, "--config.train.replicas=4")
  assert "for 4 replicas" in err
