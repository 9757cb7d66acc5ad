"""Approach 1 on branch sweeps (analysis/cooled.py): cooled-down losses predicted along each trunk by
a curve law, against curves drawn from a known law; the envelope's slope against the law's; the
fallback when the law cannot be fitted; runs that are not branches keep their curves."""
import json
import os
import warnings

import numpy as np
import pytest

from analysis import cooled
from analysis import envelope
from analysis import fitter
from analysis import forms
from analysis.curves import areas
from analysis.curves import data
from analysis.curves import fit as fit_lib
from analysis.runs import AnalysisWarning
from core import defaults, rundir

TPS = 16 * 64  # tokens per step
PEAK = 1e-2


def config_of(warmup_steps=2):
  c = defaults.get_config()
  c.train.batch_size, c.train.seq_len, c.train.tokens = 16, 64, 100 * TPS
  c.train.lr, c.train.warmup_tokens, c.train.schedule = PEAK, warmup_steps * TPS, "wsd"
  c.train.cooldown_shape, c.train.cooldown_fraction, c.train.min_lr_ratio = "1-sqrt", 0.2, 0.1
  return c


def family_of(law, n, totals, config, every=4, flops_per_step=None):
  """A Family whose branches (of `totals` steps) follow the tissue law `law` exactly."""
  form = forms.get("tissue")
  flops_per_step = flops_per_step or 6 * n * TPS
  curves, endpoints = [], []
  for total in sorted(totals):
    lr = cooled.schedule_of(config, total)
    h = areas.history(lr)
    steps = np.unique(np.append(np.arange(h.warmup + 2, total + 1, every), total))
    loss = fitter.predict(form, law, fit_lib.inputs_of(form, h, steps, None, areas.NODES))
    curves.append(data.Curve(f"n{n:g}_t{total}", n, lr, steps, loss, TPS))
    endpoints.append((total * flops_per_step, total * TPS, float(loss[-1])))
  totals = sorted(totals)
  return cooled.Family(f"trunk_n{n:g}", n, np.arange(len(totals)), tuple(curves),
                       tuple(t - round(0.2 * t) for t in totals), tuple(endpoints), config,
                       float(flops_per_step))


def law_final(law, config, total):
  form = forms.get("tissue")
  h = areas.history(cooled.schedule_of(config, total))
  return float(fitter.predict(form, law, fit_lib.inputs_of(form, h, [total], None,
                                                           fit_lib.node_size([h])))[0])


@pytest.mark.slow
def test_cooled_losses_predicted_along_a_trunk_equal_the_laws():
  law = {"L0": 2.0, "A": 0.8, "alpha": 0.5, "C": 5.0, "lambda": 0.95}
  config = config_of()
  fam = family_of(law, 1e5, (60, 120, 240), config)
  (flops, tokens, loss), predicted, errors, _ = cooled.cooled_curve(fam)
  np.testing.assert_allclose(errors, 0, atol=1e-4)
  assert predicted.sum() >= 20 and (~predicted).sum() == 3  # the 3 measured endpoints kept
  assert np.all(np.diff(flops) > 0)
  steps = np.round(tokens / TPS).astype(int)
  assert steps[0] == 30 and steps[-1] == 240
  for s, got in zip(steps[predicted], loss[predicted]):
    assert got == pytest.approx(law_final(law, config, s), rel=1e-4), s


@pytest.mark.slow
def test_the_cooled_envelope_recovers_the_laws_compute_optimal_exponent():
  # Per size n: L(s) = E + B n^-beta + A S1^-alpha - C S2 (Chinchilla's additive N and data
  # terms, S1 ~ peak * steps); FLOPs 6 n tokens. A short warmup and a fast annealing response
  # (lambda 0.5) keep S1 proportional to the steps and C S2 the same at every length, so the
  # cooled loss is E' + B n^-beta + A' D^-alpha: N_opt ~ C^(alpha / (alpha + beta)) = 0.4.
  # Approach 1 reads N off discrete sizes, and a size's cooled curve spans only its branches'
  # budgets, so the design spans N_opt over many sizes (a sqrt(2) ladder over 64x; budgets 4x
  # apart over 16,384x, each size's branches where they last 20 to 2,000 steps, 100x).
  e, b, beta, a, alpha = 1.0, 30.0, 0.6, 0.05, 0.4
  config = config_of(warmup_steps=1)
  budgets = 6 * TPS * 1e4 * 25 * 4.0 ** np.arange(8)
  fams = []
  for n in 1e4 * 2.0 ** (np.arange(13) / 2):
    totals = sorted(int(round(c / (6 * n * TPS))) for c in budgets)
    totals = [t for t in totals if 20 <= t <= 2000]
    if totals:
      law = {"L0": e + b * n ** -beta, "A": a, "alpha": alpha, "C": 0.5, "lambda": 0.5}
      fams.append(family_of(law, n, totals, config, every=8))
  curves = [c[0] for c in cooled.cooled_curves(fams)]
  grid = envelope.flops_grid_of(curves)
  loss, tokens = envelope.loss_grid(curves, grid)
  fit = envelope.fit_envelope(envelope.envelope([f.n for f in fams], loss, tokens, grid))
  assert fit["n_sizes"] >= 6
  assert fit["a"] == pytest.approx(alpha / (alpha + beta), abs=0.03)


def test_a_trunk_the_law_cannot_fit_keeps_its_measured_endpoints():
  law = {"L0": 2.0, "A": 0.8, "alpha": 0.5, "C": 5.0, "lambda": 0.95}
  fam = family_of(law, 1e5, (12, 16), config_of(), every=50)  # 2 points a curve
  (flops, _, loss), reason, errors, _ = cooled.cooled_curve(fam)
  assert errors is None
  assert "measured points after the warmup" in reason
  np.testing.assert_allclose(flops, [e[0] for e in fam.endpoints])
  np.testing.assert_allclose(loss, [e[2] for e in fam.endpoints])


def test_family_weights_count_a_trunk_when_any_branch_is_drawn():
  counts = np.array([[0, 2, 1, 0], [0, 0, 0, 3]])
  got = cooled.family_weights([np.array([0, 1]), np.array([2]), np.array([3])], counts)
  np.testing.assert_array_equal(got, [[2, 1, 0], [0, 0, 3]])


def _run_dir(root, run_id, steps, branch=None):
  path = os.path.join(root, run_id)
  os.makedirs(path)
  config = config_of()
  config.train.tokens = steps * TPS
  rundir.write_config(path, config)
  rundir.write_result(path, {"n_params_total": 1000})
  with open(rundir.path(path, rundir.METRICS), "w") as f:
    for step in range(10, steps + 1, 10):
      f.write(json.dumps({"step": step, "tokens": step * TPS, "flops": 6e3 * step * TPS,
                          "train_loss": 3.0 - 1e-3 * step}) + "\n")
  if branch:
    with open(rundir.path(path, rundir.BRANCH), "w") as f:
      json.dump({"trunk": os.path.join(root, "..", "trunks", branch[0]), "step": branch[1]}, f)


def test_branches_get_cooled_curves_and_other_runs_keep_theirs(tmp_path):
  root = str(tmp_path)
  _run_dir(root, "b1", 30, ("trunk_a", 24))
  _run_dir(root, "b2", 40, ("trunk_a", 32))
  _run_dir(root, "solo", 50)
  ids = np.array(["b1", "b2", "solo"])
  curves = [envelope.curve_of(envelope.read_metrics(os.path.join(root, r))) for r in ids]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out, n, members, record = cooled.envelope_curves(ids, np.array([1e3, 1e3, 2e3]), root, curves)
  # The trunk's 3 points and b1's 1 past its branch step: too few for tissue's 5 parameters.
  assert record["points"] == "cooled_predicted"
  assert record["families"][0]["fallback"] == "measured_endpoints"
  assert any("could not be fitted on trunk trunk_a" in str(w.message) for w in caught
             if issubclass(w.category, AnalysisWarning))
  assert [list(m) for m in members] == [[0, 1], [2]]
  np.testing.assert_allclose(out[0][2], [curves[0][2][-1], curves[1][2][-1]])
  assert out[1] is curves[2] and list(n) == [1e3, 2e3]
  assert cooled.envelope_curves(ids[2:], np.array([2e3]), root, curves[2:])[3] == {
      "points": "training_curves"}
