"""Schedules as a seam: one added in a test-only module trains end to end, and branch sweeps plan
(and branch exactly) for every schedule whose lr before its cooldown does not depend on the run's
length."""
import math

import pytest

import exponential_schedule
from core import rundir
from core.config import ConfigError
from sweeps import kinds
from test_sweep import micro_config
from test_train import read_result, read_rows, run

WARMUP = "--config.train.warmup_tokens=4096"  # 4 steps of the tiny run's 16 x 64 tokens


def test_a_schedule_added_in_one_test_module_trains_end_to_end(tmp_path):
  """exponential_schedule.py registers itself on import; train.py trains a run with it and logs
  its lr: row s logs the lr of step s - 1 (the last update), peak min_lr_ratio^p after the
  warmup."""
  assert run(tmp_path, f"--config.train.schedule={exponential_schedule.NAME}", WARMUP,
             "--config.train.tokens=20480") == 0
  rows = read_rows(tmp_path)
  assert [row["step"] for row in rows] == [5, 10, 15, 20]
  for row in rows:
    expected = 3e-3 * 0.1 ** ((row["step"] - 1 - 4) / (20 - 4))
    assert row["lr"] == pytest.approx(expected, rel=1e-5)
  assert read_result(tmp_path)["status"] == rundir.COMPLETED


@pytest.mark.parametrize("schedule, first_cooldown", [
    (["--config.train.schedule=inverse_sqrt", "--config.train.cooldown_points=(1.0,)"],
     lambda steps: steps - round(0.2 * steps)),
    (["--config.train.schedule=wsd_s", "--config.train.cooldown_points=(0.5, 1.0)"],
     lambda steps: round(0.5 * steps) - round(0.2 * round(0.5 * steps)))])
def test_branch_plans_ask_the_schedule_for_the_trunk_and_the_branch_step(schedule, first_cooldown):
  config, overrides = micro_config("--config.sweep.tokens=(1280, 2560, 5120)",
                                   "--config.sweep.branches=True", *schedule)
  rows = kinds.plan_sweep(config, overrides)
  trunks = [row for row in rows if row.kind == "trunk"]
  runs = [row for row in rows if row.kind != "trunk"]
  assert len(trunks) == 1 and len(runs) == 3
  assert "--config.train.cooldown_fraction=0.0" in trunks[0].overrides
  for row in runs:
    assert row.trunk == trunks[0].run_id
    assert row.branch_step == first_cooldown(row.steps)
  assert trunks[0].steps == max(row.branch_step for row in runs)


@pytest.mark.parametrize("schedule", ["cosine", "linear", exponential_schedule.NAME])
def test_branches_refuse_a_schedule_without_a_constant_phase_in_one_line(schedule):
  with pytest.raises(ConfigError, match=f"constant phase, not train.schedule={schedule}") as error:
    kinds.plan_sweep(*micro_config("--config.sweep.tokens=(1280,)",
                                        "--config.sweep.branches=True",
                                        f"--config.train.schedule={schedule}"))
  assert "\n" not in str(error.value)


@pytest.mark.slow
def test_a_branch_of_an_inverse_sqrt_trunk_equals_the_independent_run(tmp_path):
  """inverse sqrt with a cooldown over the last 8 of 40 steps: a trunk without cooldown to step
  32, seeded into a run directory and resumed as the 40-step run, ends exactly as that run does."""
  schedule = ["--config.train.schedule=inverse_sqrt", "--config.train.cooldown_points=(1.0,)",
              WARMUP]
  assert run(tmp_path / "independent", *schedule) == 0
  assert run(tmp_path / "trunk", *schedule, "--config.train.tokens=32768",
             "--config.train.cooldown_fraction=0.0", "--config.train.checkpoint_steps=(32,)") == 0
  rundir.seed_from(str(tmp_path / "trunk"), 32, str(tmp_path / "branch"))
  assert run(tmp_path / "branch", *schedule) == 0
  branch, independent = read_result(tmp_path / "branch"), read_result(tmp_path / "independent")
  for key in ("final_eval_loss", "final_train_loss", "config_hash"):
    assert branch[key] == independent[key], key
  lrs = [row["lr"] for row in read_rows(tmp_path / "independent")]
  # Row 40 logs step 39's lr: 7/8 of the 1-sqrt cooldown from the inverse sqrt's lr at step 32.
  assert lrs[-1] == pytest.approx(3e-3 * math.sqrt(4 / 32) * (1 - 0.9 * math.sqrt(7 / 8)), rel=1e-5)
