"""The lr-transfer study (analysis/lr_transfer.py) on hand-made points, and the sweep kind's
checks and shapes (sweeps/kinds/lr_transfer.py)."""
import json
import math
import os

import pytest

from analysis import lr_transfer
from core import defaults, rundir
from core.config import ConfigError, load_config
from sweeps import kinds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "experiments", "lr_transfer.py")


def test_optimum_is_the_parabola_vertex_in_log_lr():
  # loss = (log lr - log 4e-3)^2 + 1 on a grid of factor 2: the vertex is exactly 4e-3.
  lrs = [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2]
  losses = [(math.log(lr) - math.log(4e-3)) ** 2 + 1 for lr in lrs]
  found = lr_transfer.optimum(lrs, losses)
  assert found["lr_opt"] == pytest.approx(4e-3) and found["lr_opt_interval"] == [2e-3, 8e-3]
  assert not found["at_edge"]
  # Off-grid: the vertex of the parabola through the lowest point and its neighbours.
  shifted = [(math.log(lr) - math.log(3e-3)) ** 2 for lr in lrs]
  assert lr_transfer.optimum(lrs, shifted)["lr_opt"] == pytest.approx(3e-3)
  edge = lr_transfer.optimum(lrs, [5, 4, 3, 2, 1])
  assert edge == {"lr_opt": 1.6e-2, "lr_opt_interval": [8e-3, None], "at_edge": True}
  # A diverged run (inf) is worse than any.
  assert lr_transfer.optimum(lrs, [3, 2, 1, 2, math.inf])["lr_opt"] == pytest.approx(4e-3)


def test_study_ratios_per_line():
  bowl = lambda best: {lr: (math.log(lr) - math.log(best)) ** 2 for lr in (1e-3, 2e-3, 4e-3, 8e-3)}
  points = {("mup", 32, 2): bowl(3e-3), ("mup", 64, 2): bowl(3e-3), ("mup", 256, 2): bowl(4e-3),
            ("mup", 64, 8): bowl(2e-3), ("sp", 32, 2): bowl(4e-3), ("sp", 256, 2): bowl(1.5e-3)}
  result = lr_transfer.study(points)
  assert len(result["optima"]) == 6
  mup = result["transfer"]["mup"]
  assert mup["width"]["sizes"] == [32, 64, 256] and mup["width"]["ratio"] == pytest.approx(4 / 3)
  assert mup["depth"]["sizes"] == [2, 8] and mup["depth"]["ratio"] == pytest.approx(1.5)
  assert result["transfer"]["sp"]["width"]["ratio"] == pytest.approx(4e-3 / 1.5e-3)


def test_load_reads_each_run_config(tmp_path):
  with open(tmp_path / "results.csv", "w") as f:
    f.write("run_id,status,final_eval_loss\na,completed,2.5\nb,diverged,\n")
  for run_id, lr in (("a", 1e-3), ("b", 1e-2)):
    config = defaults.get_config()
    config.model.update(parametrization="mup", d_model=64, n_layer=2)
    config.train.lr = lr
    os.makedirs(tmp_path / "runs" / run_id)
    rundir.write_config(str(tmp_path / "runs" / run_id), config)
  assert lr_transfer.load(str(tmp_path)) == {("mup", 64, 2): {1e-3: 2.5, 1e-2: math.inf}}
  assert lr_transfer.main(["--sweep", str(tmp_path / "nowhere")]) == 2


def test_kind_checks_and_shapes():
  config = load_config(CONFIG)
  kind = kinds.checked(config)
  assert kind.name == "lr_transfer"
  assert kinds.get("lr_transfer").keys["widths"] == (32, 64, 128, 256)
  from sweeps.kinds.lr_transfer import shapes  # pylint: disable=g-import-not-at-top
  assert shapes(config.sweep) == [(32, 2), (64, 2), (128, 2), (256, 2), (64, 4), (64, 8)]
  for override, message in (("--config.sweep.lrs=(1e-3,)", "at least 3"),
                            ("--config.sweep.parametrizations=('ntk',)", "must name some"),
                            ("--config.sweep.widths=(30,64)", "divide every width")):
    with pytest.raises(ConfigError, match=message):
      kinds.checked(load_config(CONFIG, [override]))


@pytest.mark.slow
def test_a_micro_sweep_writes_its_optima(tmp_path):
  """sp and mup at widths 16 and 32 (1 layer, 2 heads) x 3 lrs, 10 steps: 12 runs in 4 groups."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import HANG_S  # pylint: disable=g-import-not-at-top
  sweep = ["--config.sweep.parametrizations=('sp','mup')", "--config.sweep.widths=(16,32)",
           "--config.sweep.depths=(1,)", "--config.sweep.width_depth=1",
           "--config.sweep.depth_width=16", "--config.sweep.lrs=(1e-3,1e-2,1e-1)",
           "--config.sweep.tokens=(5120,)", "--config.sweep.workers=1", "--config.model.n_heads=2",
           "--config.train.eval_tokens=1024", "--config.wandb.mode=disabled"]
  completed = subprocess.run([sys.executable, "sweep.py", "--config", CONFIG, "--workdir",
                              str(tmp_path), *sweep], cwd=ROOT, capture_output=True, text=True,
                             timeout=HANG_S)
  assert completed.returncode == 0, completed.stderr[-2000:]
  with open(tmp_path / "analysis" / "lr_transfer.json") as f:
    result = json.load(f)
  assert [(o["parametrization"], o["width"], o["depth"]) for o in result["optima"]] == [
      ("mup", 16, 1), ("mup", 32, 1), ("sp", 16, 1), ("sp", 32, 1)]
  for o in result["optima"]:
    assert o["lrs"] == [1e-3, 1e-2, 1e-1] and len(o["losses"]) == 3
    assert set(o) >= {"lr_opt", "lr_opt_interval", "at_edge"}
  # At the base width mup is sp: the same losses.
  assert result["optima"][0]["losses"] == pytest.approx(result["optima"][2]["losses"], rel=1e-5)
  assert set(result["transfer"]["sp"]) == {"width"}
  assert os.path.isfile(tmp_path / "analysis" / "lr_transfer.png")
