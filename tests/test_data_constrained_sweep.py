"""The data-constrained sweep kind (sweeps/kinds/data_constrained.py) and its analysis
(analysis/data_constrained.py)."""
import csv
import json

import numpy as np
import pytest

from analysis import data_constrained as study
from analysis.forms import data_constrained as form
from core.config import ConfigError
from experiments import data_constrained as experiment
from sweeps import kinds


def config(**sweep):
  c = experiment.get_config()
  for key, value in sweep.items():
    c.sweep[key] = value
  return c


@pytest.mark.slow  # planning sizes each run's memory (~16 s on 2 loaded cores)
def test_every_repeated_run_has_its_fresh_run():
  rows = kinds.plan_sweep(config(n_params=(3e3,), unique_tokens=(16_384,), epochs=(1, 4)), [])
  assert [row.row for row in rows] == [0, 1, 2]
  pooled = [row for row in rows if "--config.data.unique_tokens=16384" in row.overrides]
  fresh = [row for row in rows if row not in pooled]
  assert [row.tokens for row in fresh] == [16_384, 65_536] and [r.tokens for r in pooled] == [65_536]
  assert len({row.run_id for row in rows}) == 3


@pytest.mark.parametrize("sweep, message", [
    (dict(unique_tokens=()), "needs sweep.n_params and sweep.unique_tokens"),
    (dict(epochs=(0,)), "epochs at least 1"),
    (dict(branches=True), "leave sweep.branches False"),
])
def test_a_bad_section_is_refused(sweep, message):
  with pytest.raises(ConfigError, match=message):
    kinds.plan_sweep(config(**sweep), [])


def test_a_table_without_unique_tokens_is_refused(tmp_path):
  path = tmp_path / "results.csv"
  path.write_text("status,n_params,tokens,final_eval_loss\ncompleted,1,2,3\n")
  with pytest.raises(study.DataError, match="lacks unique_tokens"):
    study.load(str(path))


@pytest.mark.slow
def test_the_analysis_recovers_a_known_law_and_writes_its_files(tmp_path):
  true = {"E": 1.0, "A": 40.0, "B": 300.0, "alpha": 0.3, "beta": 0.3, "R_D_star": 10.0,
          "R_N_star": 4.0}
  rows, rng = [], np.random.default_rng(1)
  for n in (3e3, 1.2e4, 5e4):
    for u in (1.6e4, 6.4e4, 2.56e5):
      for e in (1, 4, 16, 32):
        for unique in ({u, u * e} if e > 1 else {u}):  # the fresh run of every D too
          loss = form.predict(true, np.array([n]), np.array([unique]), np.array([u * e]))[0]
          rows.append({"status": "completed", "n_params": n, "tokens": u * e,
                       "unique_tokens": unique, "final_eval_loss": loss * np.exp(rng.normal(0, 1e-3)),
                       "loss_floor": 0.9})
  path = tmp_path / "results.csv"
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, rows[0].keys())
    writer.writeheader()
    writer.writerows(rows)
  assert study.main(["--results", str(path), "--out", str(tmp_path / "analysis")]) == 0
  with open(tmp_path / "analysis" / "data_constrained.json") as f:
    result = json.load(f)
  assert abs(result["R_D_star"] / 10 - 1) < 0.1 and abs(result["R_N_star"] / 4 - 1) < 0.3
  low, high = result["R_D_star_interval"]
  assert low < result["R_D_star"] < high
  assert {"unique_tokens", "epochs", "n", "excess_loss"} <= set(result["excess"][0])
  # the law's excess agrees with the measured one to the noise: each excess is a difference of
  # two losses of 0.1% noise
  noise = np.sqrt(2) * 1e-3 * max(row["final_eval_loss"] for row in rows)
  assert result["excess_rms_error"] < 3 * noise
  assert (tmp_path / "analysis" / "data_constrained.png").is_file()
