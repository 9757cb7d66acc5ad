"""python -m training.coord_check: the slope fit, bad input (one line, exit 2), and the check itself
passing under mup and completep and failing under sp on the same shapes."""
import json
import os
import subprocess
import sys

import pytest

from conftest import HANG_S, ROOT, TINY
from training import coord_check

# Tiny shapes, few steps: every shape trains 5 steps of 8 x 32 tokens.
FAST = ["--steps", "5", "--config.train.seq_len=32", "--config.train.batch_size=8"]


def test_slope_and_by_depth():
  assert coord_check.slope([1, 2, 4, 8], [3, 6, 12, 24]) == pytest.approx(1.0)
  assert coord_check.slope([16, 64], [2.0, 1.0]) == pytest.approx(-0.5)
  assert str(coord_check.slope([1, 2], [1.0, 0.0])) == "nan"
  check = coord_check.Check("width", [1, 2], {"a": [1, 1], "b": [1, 4]}, {"a": 0.0, "b": 2.0})
  assert check.failing(0.3) == ["b"]
  quantities = {"act.2": 1.0, "act_update.2": 0.5, "update.0.up": 2.0, "update.1.up": 4.0,
                "logits": 3.0, "update.embed": 0.1, "act.0": 9.0}
  assert coord_check.by_depth(quantities, 2) == {
      "logits": 3.0, "update.embed": 0.1, "act.last": 1.0, "act_update.last": 0.5,
      "update.up": 3.0}


@pytest.mark.parametrize("argv, message", [
    (["--parametrization", "ntk"], "invalid choice"),
    (["--widths", "32"], "at least two distinct"),
    (["--widths", "30,64"], "not a multiple of model.n_heads"),
    (["--widths", "a,b"], "comma-separated integers"),
    (["--steps", "1"], "--steps must be at least 2"),
    (["--config.model.family=encoder_decoder"], "decoders and encoders"),
    (["--config.model.nope=1"], "unknown config key"),
    (["--bogus"], "unrecognized argument"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
  try:
    code = coord_check.main(["--config", TINY, *argv])
  except SystemExit as stop:  # argparse's refusals
    code = stop.code
  err = capsys.readouterr().err
  assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def run(argv) -> dict:
  completed = subprocess.run([sys.executable, "-m", "training.coord_check", "--config", TINY,
                              "--json", *FAST, *argv], cwd=ROOT, capture_output=True, text=True,
                             timeout=HANG_S)
  assert completed.returncode in (0, 1), completed.stderr[-2000:]
  result = json.loads(completed.stdout.strip().splitlines()[-1])
  assert result["pass"] == (completed.returncode == 0)
  return result


@pytest.mark.slow
def test_passes_under_mup_and_completep_fails_under_sp(tmp_path):
  widths = ["--widths", "32,64,128", "--out", str(tmp_path)]
  results = {name: run(["--parametrization", name, *widths]) for name in ("sp", "mup", "completep")}
  assert results["mup"]["pass"] and results["completep"]["pass"], results
  assert not results["sp"]["pass"]
  # sp: the updates grow about as width^1 with Adam; mup keeps them within the tolerance.
  assert results["sp"]["slopes"]["width"]["act_update.2"] > 0.8
  assert abs(results["mup"]["slopes"]["width"]["act_update.2"]) <= results["mup"]["tolerance"]
  assert os.path.isfile(results["mup"]["png"])
  depths = ["--depths", "2,4,8", "--out", str(tmp_path)]
  assert run(["--parametrization", "completep", *depths])["pass"]
  assert not run(["--parametrization", "sp", *depths])["pass"]
