"""Sweep kinds as plugins (sweeps/kinds/): a kind added by a test-only module runs end to end
through sweep.main (plan -> train -> collect -> its own analysis); the registry's checks."""
import json
import os

import ml_collections
import pytest

import sweep
from core.config import ConfigError
from sweeps import kinds
from sweeps.rows import read_plan

# The config names its sweep section's keys itself: train.py's processes load it without the
# test's kind registered (the section is not part of a run).
CONFIG = '''import ml_collections
from experiments import base

def get_config():
  c = base.get_config()
  c.name = "example_sweep"
  c.train.seq_len, c.train.batch_size, c.train.eval_tokens = 16, 4, 256
  c.train.log_every = 10
  c.wandb.mode = "disabled"
  c.sweep = ml_collections.ConfigDict(dict(kind="example", n_params=3e3, tokens=(1280, 2560),
                                           devices=1, workers=2, sbatch=()))
  return c
'''


@pytest.mark.slow
def test_a_kind_added_in_one_module_runs_end_to_end(tmp_path, capsys):
  import sweep_kind_example  # registers "example"
  config_path = tmp_path / "example_sweep.py"
  config_path.write_text(CONFIG)
  workdir = tmp_path / "sweep"
  assert kinds.section("example", tokens=(640,)).tokens == (640,)
  assert sweep.main(["--config", str(config_path), "--workdir", str(workdir), "--json"]) == 0
  out = capsys.readouterr().out
  summary = json.loads(out.strip().splitlines()[-1])
  rows = read_plan(str(workdir))
  assert [row.tokens for row in rows] == [1280, 2560] and summary["completed"] == 2
  assert summary["example"] == str(workdir / "analysis" / "example.json")
  losses = json.load(open(workdir / "analysis" / "example.json"))
  assert sorted(losses) == ["1280", "2560"] and losses == summary["losses"]
  assert "example analysis:" in out and os.path.exists(workdir / "results.csv")
  assert sweep_kind_example.KEYS.keys() <= set(kinds.section("example"))


def test_the_registry_finds_the_builtin_kinds_by_name_and_checks_their_sections():
  assert {"isoflop", "grid", "finetune"} <= set(kinds.names())
  assert kinds.get("finetune").name == "finetune"
  # One pre-training schema; isoflop adds its verification run's factor.
  assert set(kinds.section("grid")) | {"verify_factor"} == set(kinds.section("isoflop"))
  assert kinds.section("finetune").kind == "finetune"
  with pytest.raises(ConfigError, match="unknown finetune sweep key 'budgets'"):
    kinds.section("finetune", budgets=(1e12,))
  with pytest.raises(ConfigError, match="sweep.kind must be one of"):
    kinds.get("spiral")
  config = ml_collections.ConfigDict({"name": "no_span", "sweep": {
      key: value for key, value in kinds.section("isoflop").items() if key != "span"}})
  with pytest.raises(ConfigError, match="the isoflop sweep section lacks span"):
    kinds.checked(config)
