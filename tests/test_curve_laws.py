"""Curve laws (analysis/forms/tissue.py, multipower.py, tissue_n.py; analysis/curves/): the schedule
areas against hand-computed values, parameters recovered from curves of a known law, and
`python -m analysis.curves` refusing bad tables."""
import json
import math
import os

import jax
import numpy as np
import pytest

from analysis import fitter
from analysis import forms
from analysis.curves import __main__ as cli
from analysis.curves import areas
from analysis.curves import data
from analysis.curves import fit as fit_lib
from analysis.forms import multipower, tissue
from core import defaults

PEAK, WARMUP = 3e-3, 2
TPS = 16 * 64  # tokens per step


def lr_of(schedule, steps, shape="1-sqrt", fraction=0.2, warmup=WARMUP, min_lr_ratio=0.1):
  """The lr of every update of a run of `schedule`, from the schedules registry (via a config)."""
  c = defaults.get_config()
  c.train.batch_size, c.train.seq_len, c.train.tokens = 16, 64, steps * TPS
  c.train.lr, c.train.warmup_tokens, c.train.schedule = PEAK, warmup * TPS, schedule
  c.train.cooldown_shape, c.train.cooldown_fraction = shape, fraction
  c.train.min_lr_ratio = min_lr_ratio
  return areas.lr_of_config(c)


def quadrature_s2(h, steps, lam):
  """S2 through the nodes and the tissue form's kernel (the fitted path)."""
  nodes = areas.nodes(h, steps)
  logs = [np.log(nodes[k]) for k in ("eta_hi", "eta_lo", "lag")]
  with jax.enable_x64(True):
    return np.asarray(tissue.annealing_area(np.log(-1 / np.log(lam)), *logs))


WARM = PEAK * (WARMUP - 1) / 2  # the warmup's area: lr(u) = PEAK u / WARMUP for u < WARMUP


def test_constant_areas_by_hand():
  h = areas.history(lr_of("constant", 10))
  assert h.warmup == WARMUP
  np.testing.assert_allclose(areas.s1(h, [10]), [WARM + PEAK * 8], rtol=1e-6)
  assert areas.s2(h, [10], 0.9)[0] == 0 and h.segments == ()


def test_cosine_areas_by_hand():
  steps, r = 10, 0.1
  k = steps - WARMUP  # sum_{j<k} cos(pi j / k) = 1
  h = areas.history(lr_of("cosine", steps, min_lr_ratio=r))
  np.testing.assert_allclose(areas.s1(h, [steps]), [WARM + PEAK * ((1 - r) * (k + 1) / 2 + r * k)],
                             rtol=1e-6)
  # lambda = 0: S2 is the lr's drop so far, peak - lr(t - 1).
  last = PEAK * ((1 - r) * 0.5 * (1 + math.cos(math.pi * (k - 1) / k)) + r)
  np.testing.assert_allclose(areas.s2(h, [steps], 1e-12), [PEAK - last], rtol=1e-5)
  np.testing.assert_allclose(quadrature_s2(h, [steps], 0.5), areas.s2(h, [steps], 0.5), rtol=1e-5)


def test_wsd_linear_areas_by_hand():
  steps, r, length, lam = 20, 0.1, 4, 0.5  # cooldown over updates 16..19, equal drops from 17 on
  h = areas.history(lr_of("wsd", steps, shape="linear", fraction=length / steps, min_lr_ratio=r))
  start = steps - length
  s1 = WARM + PEAK * (start - WARMUP) + PEAK * (length - (1 - r) * (length - 1) / 2)
  np.testing.assert_allclose(areas.s1(h, [steps]), [s1], rtol=1e-6)
  drop = PEAK * (1 - r) / length
  # drops at u = 17, 18, 19 count (1 - lam^(20 - u)) / (1 - lam): 1.75, 1.5, 1
  s2 = drop * sum((1 - lam ** j) / (1 - lam) for j in range(1, length))
  np.testing.assert_allclose(areas.s2(h, [steps], lam), [s2], rtol=1e-5)
  np.testing.assert_allclose(quadrature_s2(h, [steps], lam), [s2], rtol=1e-5)


def test_wsd_sqrt_areas_by_hand():
  steps, r, length = 20, 0.1, 4
  h = areas.history(lr_of("wsd", steps, shape="1-sqrt", fraction=length / steps, min_lr_ratio=r))
  cooldown = PEAK * sum(1 - (1 - r) * math.sqrt(j / length) for j in range(length))
  np.testing.assert_allclose(areas.s1(h, [steps]), [WARM + PEAK * (steps - length - WARMUP) +
                                                     cooldown], rtol=1e-6)
  np.testing.assert_allclose(areas.s2(h, [steps], 1e-12), [PEAK * (1 - r) * math.sqrt(0.75)],
                             rtol=1e-5)
  # lambda = 0.5 by hand: drops d_j = PEAK (1 - r)(sqrt(j/4) - sqrt((j-1)/4)) at lags 4 - j.
  s2 = sum(PEAK * (1 - r) * (math.sqrt(j / 4) - math.sqrt((j - 1) / 4)) * (1 - 0.5 ** (4 - j)) / 0.5
           for j in (1, 2, 3))
  np.testing.assert_allclose(quadrature_s2(h, [steps], 0.5), [s2], rtol=1e-5)


@pytest.mark.slow
def test_quadrature_matches_every_drop_on_a_long_cosine():
  lr = lr_of("cosine", 2000, warmup=100)
  h = areas.history(lr)
  steps = np.array([300, 1000, 1700, 2000])
  assert len(h.segments) <= areas.NODES
  # Within 1e-3 of the run's whole annealing (early points, where the drop so far is small, are
  # relatively less exact: 0.24% of S2 and 1.7% of the multi-power drop at step 300 of 2,000).
  want = areas.s2(h, steps, 0.99)
  np.testing.assert_allclose(quadrature_s2(h, steps, 0.99), want, atol=1e-3 * want[-1])
  # The multi-power law's loss drop, against its sum over every update.
  b, c, beta, gamma = np.log(300.0), np.log(2.0), 0.5, 0.6
  nodes = areas.nodes(h, steps)
  with jax.enable_x64(True):
    got = np.asarray(multipower.loss_drop(b, c, beta, gamma, *(np.log(nodes[k]) for k in
                                                               ("eta_hi", "eta_lo", "eta", "area"))))
  want = []
  for t in steps:
    u = np.arange(h.warmup + 1, t)
    drop = h.lr[u - 1] - h.lr[u]
    area = h.cumulative[t] - h.cumulative[u]
    want.append(300 * np.sum(drop * (1 - (2 * h.lr[u] ** -gamma * area + 1) ** -beta)))
  np.testing.assert_allclose(got, want, atol=1e-3 * want[-1])


TRUE = {"L0": 2.0, "A": 0.8, "alpha": 0.5, "C": 5.0, "lambda": 0.95}


def known_curves(law, form_name, runs, n=None, every=4):
  form = forms.get(form_name)
  curves = []
  for name, lr in runs.items():
    h = areas.history(lr)
    steps = np.arange(h.warmup + 2, len(lr) + 1, every)
    loss = fitter.predict(form, law, fit_lib.inputs_of(form, h, steps, n, areas.NODES))
    curves.append(data.Curve(name, n or 1e5, lr, steps, loss))
  return curves


@pytest.mark.slow
def test_tissue_parameters_recovered_and_other_schedules_predicted():
  runs = {"constant": lr_of("constant", 200, warmup=10), "wsd": lr_of("wsd", 200, warmup=10),
          "cosine": lr_of("cosine", 200, warmup=10),
          "wsd_linear": lr_of("wsd", 200, shape="linear", fraction=0.4, warmup=10)}
  curves = known_curves(TRUE, "tissue", runs)
  record = fit_lib.run(curves, ["constant", "wsd"], ["cosine", "wsd_linear"], ["tissue"])
  got = record["forms"]["tissue"]
  for name, value in TRUE.items():
    assert got[name] == pytest.approx(value, rel=1e-4), name
  assert max(p["curve_error_max"] for p in record["predictions"]) < 1e-6
  assert record["best_form"] == "tissue"


@pytest.mark.slow
def test_joint_form_recovers_the_size_term_from_three_sizes():
  law = {"L0": 1.5, "B": 40.0, "beta": 0.4, "A": 0.8, "alpha": 0.5, "C": 5.0, "lambda": 0.9}
  curves = []
  for n in (1e5, 4e5, 1.6e6):
    runs = {f"{s}_{n:g}": lr_of(s, 120, warmup=10) for s in ("constant", "wsd")}
    curves += known_curves(law, "tissue_n", runs, n=n, every=8)
  curves += known_curves(law, "tissue_n", {"cosine": lr_of("cosine", 120, warmup=10)}, n=3e6)
  record = fit_lib.run(curves, [c.run for c in curves[:-1]], ["cosine"], ["tissue_n"])
  for name, value in law.items():
    assert record["forms"]["tissue_n"][name] == pytest.approx(value, rel=1e-3), name
  assert record["predictions"][0]["curve_error_max"] < 1e-5  # a size nobody trained
  # Two sizes fix L0 + B N^-beta only at those sizes: another size is not predicted.
  reason = fit_lib._not_predicted(forms.get("tissue_n"), curves[-1], curves[:4])  # pylint: disable=protected-access
  assert "not a fitted size" in reason


TABLE = "run,n,step,tokens,lr,loss\n" + "".join(
    f"{run},1e5,{s},{s * 1024},{lr},{2 + 1 / s}\n" for run, lr in (("a", 1e-3), ("b", 2e-3))
    for s in (10, 20, 30))


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace("run,n,step,tokens,lr,loss", "run,n,step,tokens,loss").replace(
        ",0.001,", ",").replace(",0.002,", ","), "lacks the column lr"),
    (lambda t: t.replace("a,1e5,20,", "a,1e5,5,"), "does not increase"),
    (lambda t: t.replace(",0.002,2.05", ",-0.002,2.05"), "lr must be finite and >= 0"),
])
def test_bad_tables_are_refused_in_one_line(tmp_path, capsys, edit, words):
  path = tmp_path / "curves.csv"
  path.write_text(edit(TABLE))
  out = tmp_path / "out"
  assert cli.main(["--table", str(path), "--fit", "a", "--out", str(out)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and words in err and str(path) in err, err
  assert not out.exists()


def test_unknown_runs_and_overlaps_are_refused(tmp_path, capsys):
  path = tmp_path / "curves.csv"
  path.write_text(TABLE)
  for argv, words in ((["--fit", "zz"], "--fit zz: no such run"),
                      (["--fit", "a", "--predict", "a"], "both fitted and predicted"),
                      (["--fit", "a", "--forms", "nope"], "not a curve form")):
    assert cli.main(["--table", str(path), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
  assert not (tmp_path / "o").exists()


def test_table_curves_interpolate_the_lr_and_keep_unmeasured_points(tmp_path):
  path = tmp_path / "curves.csv"
  path.write_text("\n".join(TABLE.splitlines()[:-1] + ["b,1e5,30,30720,0.002,"]) + "\n")
  a, b = data.from_table(str(path))
  assert a.total_steps == 30 and a.lr[0] == 1e-3 and b.steps.tolist() == [10, 20]
  assert b.tokens_per_step == 1024 and b.measured


@pytest.mark.slow
def test_the_command_writes_curves_json_and_the_plot(tmp_path):
  runs = {"constant": lr_of("constant", 120, warmup=10), "wsd": lr_of("wsd", 120, warmup=10),
          "cosine": lr_of("cosine", 120, warmup=10), "plan": lr_of("cosine", 150, warmup=10)}
  lines = ["run,n,step,tokens,lr,loss"]
  for c in known_curves(TRUE, "tissue", runs, every=2):
    measured = dict(zip(c.steps.tolist(), c.loss)) if c.run != "plan" else {}
    for s in range(1, c.total_steps + 1):  # every step: the lr between rows is interpolated
      loss = f"{measured[s]:.8f}" if s in measured else ""
      lines.append(f"{c.run},1e5,{s},{s * TPS},{c.lr[s - 1]:.8g},{loss}")
  path = tmp_path / "curves.csv"
  path.write_text("\n".join(lines) + "\n")
  out = tmp_path / "out"
  assert cli.main(["--table", str(path), "--fit", "constant", "wsd", "--out", str(out),
                   "--forms", "tissue"]) == 0
  record = json.loads((out / "curves.json").read_text())
  assert record["best_form"] == "tissue" and os.path.isfile(out / record["plot"])
  by_run = {p["run"]: p for p in record["predictions"]}
  assert set(by_run) == {"cosine", "plan"} and by_run["plan"]["measured_final_loss"] is None
  assert by_run["cosine"]["curve_error_max"] < 1e-6
  assert set(by_run["cosine"]) >= {"run", "form", "predicted_final_loss", "measured_final_loss",
                                   "curve_error_mean", "curve_error_max"}
