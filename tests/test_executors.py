"""Executors as modules (sweeps/executors.py): one added by a test-only module trains a sweep end
to end through sweep.main; a bad --executor is one line, exit 2, before anything is planned."""
import json
import os

import pytest

import sweep
from core import rundir
from core.config import ConfigError
from sweeps import executors
from sweeps.rows import read_plan
from test_sweep_kinds import CONFIG  # the test-only kind's config: its analysis fits two runs


@pytest.mark.slow
def test_an_executor_added_in_one_module_trains_the_sweep(tmp_path, capsys):
  import sweep_kind_example  # noqa: F401  registers "example"
  config_path = tmp_path / "example_sweep.py"
  config_path.write_text(CONFIG)
  workdir = tmp_path / "sweep"
  assert sweep.main(["--config", str(config_path), "--workdir", str(workdir),
                     "--executor", "executor_example", "--json"]) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  rows = read_plan(str(workdir))
  assert summary["example_executor"] == [row.run_id for row in rows] and len(rows) == 2
  assert summary["completed"] == 2 and os.path.exists(workdir / "results.csv")


def test_the_lookup_finds_builtins_and_modules_and_refuses_the_rest(tmp_path, capsys):
  assert executors.get("local") is executors.local
  import executor_example
  assert executors.get("executor_example") is executor_example.execute
  with pytest.raises(ConfigError, match="--executor must be one of local, slurm, wandb"):
    executors.get("no_such_executor_module")
  with pytest.raises(ConfigError, match="defines no execute"):
    executors.get("json")
  workdir = tmp_path / "sweep"
  assert sweep.main(["--workdir", str(workdir), "--executor", "nope"]) == rundir.EXIT_BAD_INPUT
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: --executor must be one of")
  assert not workdir.exists()
