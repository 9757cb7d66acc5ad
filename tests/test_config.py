"""What a command line means against a config file and the shell: a size given on the command
line replaces the file's shape, and WANDB_MODE (SCALING_COMPILATION_CACHE) wins over the file's mode
(cache) but not over the flag."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from core import rundir
from core.config import COMPILATION_CACHE_ENV, ConfigError, load_config
from model import sizing
from training import plan as plan_lib

TINY = os.path.join(ROOT, "experiments", "tiny.py")


def test_a_size_on_the_command_line_replaces_the_shape_the_file_fixes():
  config = load_config(TINY, ["--config.model.target_params=6e5"])
  assert [config.model[key] for key in ("n_layer", "d_model", "n_heads", "d_ff")] == [0, 0, 0, 0]
  _, _, model_cfg, _ = plan_lib.resolve(config, 1)
  shape = sizing.shape_for_params(6e5)
  assert (model_cfg.n_layer, model_cfg.d_model) == (shape["n_layer"], shape["d_model"]) != (2, 64)
  # The file's shape is untouched without a size on the command line.
  assert load_config(TINY).model.n_layer == 2


def test_a_size_and_a_shape_key_both_on_the_command_line_still_conflict():
  config = load_config(TINY, ["--config.model.target_params=6e5", "--config.model.n_layer=3"])
  with pytest.raises(ConfigError, match="derives the shape"):
    plan_lib.resolve(config, 1)


@pytest.mark.parametrize("env, overrides, mode", [
    ({}, [], "offline"),                                        # the config's default
    ({"WANDB_MODE": "disabled"}, [], "disabled"),                # the shell wins over the default
    ({"WANDB_MODE": "online"}, [], "online"),
    ({"WANDB_MODE": "disabled"}, ["--config.wandb.mode=offline"], "offline"),  # the flag wins
    ({"WANDB_MODE": "dryrun"}, [], "offline"),                   # unknown: left to W&B's warning
    ({"WANDB_MODE": ""}, [], "offline"),
])
def test_wandb_mode_precedence(monkeypatch, env, overrides, mode):
  monkeypatch.delenv("WANDB_MODE", raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  assert load_config(TINY, overrides).wandb.mode == mode


def test_the_compilation_cache_of_the_shell_wins_over_the_file_but_not_the_flag(monkeypatch):
  monkeypatch.delenv(COMPILATION_CACHE_ENV, raising=False)
  assert load_config(TINY).train.compilation_cache == "~/.cache/scaling/jax"  # the default
  monkeypatch.setenv(COMPILATION_CACHE_ENV, "/tmp/session_cache")
  assert load_config(TINY).train.compilation_cache == "/tmp/session_cache"
  assert load_config(TINY, ["--config.train.compilation_cache="]).train.compilation_cache == ""


@pytest.mark.slow
@pytest.mark.parametrize("env, overrides, offline_run", [
    ({}, [], True),
    ({"WANDB_MODE": "disabled"}, [], False),
    ({"WANDB_MODE": "disabled"}, ["--config.wandb.mode=offline"], True),
], ids=["default offline", "WANDB_MODE=disabled wins", "--config.wandb.mode wins over both"])
def test_the_mode_a_real_run_uses(tmp_path, env, overrides, offline_run):
  base = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
  command = [sys.executable, "train.py", "--config", TINY, "--workdir", str(tmp_path),
             "--config.train.tokens=5120", "--config.train.eval_tokens=2048", *overrides]
  completed = subprocess.run(command, cwd=ROOT, env={**base, **env}, capture_output=True,
                             text=True, timeout=600)
  assert completed.returncode == 0, completed.stderr[-2000:]
  assert rundir.read_config(str(tmp_path)).wandb.mode == ("offline" if offline_run else "disabled")
  runs = [name for name in os.listdir(tmp_path / "wandb")] if (tmp_path / "wandb").exists() else []
  assert any(name.startswith("offline-run-") for name in runs) == offline_run, runs
