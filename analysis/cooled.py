"""Approach 1 on a branch sweep: the cooled-down loss of every trunk point, from a curve law.

In a branch sweep (sweeps/branches.py) a run's curve up to its branch step is its trunk's, at
the constant peak lr: a point there is a loss no run that stops at that compute would have (it has
not cooled down), so an envelope read along those curves leans to small models. Here each trunk
(`Family`: the branches seeded from one trunk, read from their branch.json) gets a curve law
(analysis/curves, form FORM) fitted on its trunk (the longest branch's rows up to its branch step)
and every branch's cooldown; the law then predicts, at POINTS log-spaced lengths T, the final loss
of a branch with the sweep's own schedule (the longest branch's config with train.tokens of T
steps: its cooldown fraction and shape) that would leave the trunk where that schedule says.
A family's cooled curve is those predictions with its branches' measured final losses (the
smoothed end of each branch's curve, envelope.curve_of) put in their place, so the envelope reads
losses of cooled-down runs only. Lengths run from half the shortest branch to the longest.
The first trunk (most branches) is fitted from the form's grid, each next one from the distinct
minima of the last WARM fitted (trunks of one sweep share the schedule, so their minima are
near each other; a whole grid per trunk costs several times more), on at most FIT_POINTS points
of its trunk and of each cooldown.
A family whose law cannot be fitted keeps its measured branch endpoints alone (AnalysisWarning).
Runs that are not branches (no branch.json) keep their whole curves, as before.
"""
import dataclasses
import os
import warnings

import numpy as np

from analysis import fitter
from analysis import forms
from analysis.runs import AnalysisWarning, DataError
from core import rundir

FORM = "tissue"
POINTS = 24
FIT_POINTS = 64  # per fitted curve (trunk, each cooldown)
WARM = 3  # trunks after the first start from the distinct minima of the last WARM fitted


@dataclasses.dataclass(frozen=True)
class Family:
  """The branches (rows of the runs table with curves) of one trunk."""
  trunk: str
  n: float
  rows: np.ndarray       # indices into the runs with curves
  curves: tuple          # analysis.curves.data.Curve of each branch (trunk rows included)
  branch_steps: tuple    # each branch's branch step
  endpoints: tuple       # each branch's (flops, tokens, loss) at its end, envelope.curve_of's
  config: object         # the longest branch's config.json (the sweep's schedule)
  flops_per_step: float  # counted FLOPs per step (from the longest branch's metrics)


def families(run_ids, n, curves_dir: str, envelope_curves: list) -> list[Family]:
  """The trunks of the runs that are branches (an empty list when none is); `envelope_curves`
  are envelope.load_curves' curves of `run_ids` (same order)."""
  from analysis.curves import data  # pylint: disable=g-import-not-at-top (JAX)
  members: dict = {}
  for i, run_id in enumerate(run_ids):
    branch = rundir.read_branch(os.path.join(curves_dir, str(run_id)))
    if branch:
      members.setdefault(os.path.basename(os.path.normpath(branch["trunk"])), []).append(
          (i, int(branch["step"])))
  out = []
  for trunk, rows in members.items():
    rows.sort(key=lambda r: r[1])
    index = np.array([i for i, _ in rows])
    curves = tuple(data.from_run_dir(os.path.join(curves_dir, str(run_ids[i]))) for i in index)
    flops, tokens, _ = envelope_curves[index[-1]]
    per_step = float(flops[-1] / tokens[-1]) * curves[-1].tokens_per_step
    out.append(Family(trunk, float(n[index[0]]), index, curves, tuple(s for _, s in rows),
                      tuple(tuple(c[k][-1] for k in range(3)) for c in
                            (envelope_curves[i] for i in index)),
                      rundir.read_config(os.path.join(curves_dir, str(run_ids[index[-1]]))),
                      per_step))
  return out


def fit_curves(family: Family, leave_out: int | None = None) -> list:
  """The curves the law is fitted on: the trunk (the longest branch up to its branch step) and
  every branch's cooldown (its points past its branch step); `leave_out` drops one branch's."""
  keep = [k for k in range(len(family.curves)) if k != leave_out]
  out = []
  for k in keep:
    curve, step = family.curves[k], family.branch_steps[k]
    after = curve.steps > step
    out.append(dataclasses.replace(curve, steps=curve.steps[after], loss=curve.loss[after]))
  longest = family.curves[-1]
  upto = longest.steps <= family.branch_steps[-1]
  trunk = dataclasses.replace(longest, run=f"{family.trunk} (trunk)", steps=longest.steps[upto],
                              loss=longest.loss[upto])
  return [_thinned(c) for c in [trunk] + out if len(c.steps)]


def _thinned(curve):
  """At most FIT_POINTS of the curve's points, evenly by index (the fit's cost is per point)."""
  if len(curve.steps) <= FIT_POINTS:
    return curve
  keep = np.round(np.linspace(0, len(curve.steps) - 1, FIT_POINTS)).astype(int)
  return dataclasses.replace(curve, steps=curve.steps[keep], loss=curve.loss[keep])


def fit_law(curves, form_name: str = FORM, starts=None):
  """(form, LawFit) of the curve law on `curves` (from its grid, or `starts`); raises DataError
  when it cannot be fitted."""
  from analysis.curves import areas, fit  # pylint: disable=g-import-not-at-top (JAX)
  form = forms.get(form_name)
  law_fit = fit.fit_form(form, curves, [areas.history(c.lr) for c in curves], starts)
  if not np.all(np.isfinite(law_fit.raw)):
    raise DataError(f"{form_name}: the fit did not reach finite parameters")
  return form, law_fit


def schedule_of(config, steps: int) -> np.ndarray:
  """The lr at every update of a run of `config` lasting `steps` steps (its cooldown included)."""
  from analysis.curves import areas  # pylint: disable=g-import-not-at-top (JAX)
  config = config.copy_and_resolve_references()
  config.train.tokens = int(steps * config.train.batch_size * config.train.seq_len)
  return areas.lr_of_config(config)


def predict_final(form, law_fit, lr, n=None) -> float:
  """The law's loss at the last step of the schedule `lr`."""
  return float(predict_finals(form, law_fit, [lr], n)[0])


def predict_finals(form, law_fit, schedules, n=None) -> np.ndarray:
  """The law's loss at the last step of each schedule (one evaluation for all)."""
  from analysis.curves import areas, fit  # pylint: disable=g-import-not-at-top (JAX)
  histories = [areas.history(lr) for lr in schedules]
  size = fit.node_size(histories)
  parts = [fit.inputs_of(form, h, [h.steps], n, size) for h in histories]
  inputs = tuple(np.concatenate([p[k] for p in parts]) for k in range(len(form.inputs)))
  return np.exp(fitter.predict_log(form, law_fit.raw, inputs))


def lengths(family: Family, points: int = POINTS) -> np.ndarray:
  """The run lengths (steps) the cooled loss is predicted at."""
  shortest, longest = family.curves[0].total_steps, family.curves[-1].total_steps
  return np.unique(np.round(np.geomspace(max(2, shortest // 2), longest, points)).astype(int))


def cooled_curve(family: Family, form_name: str = FORM, points: int = POINTS, starts=None):
  """((flops, tokens, loss) of the family's cooled curve, its predicted mask, the law's relative
  error at each measured endpoint, the LawFit), or (the measured endpoints alone, the reason the
  law could not be fitted, None, None). `starts`: the fit's (default: the form's grid)."""
  measured = np.array(family.endpoints, np.float64)
  try:
    form, law_fit = fit_law(fit_curves(family), form_name, starts)
  except DataError as e:
    return measured.T, str(e), None, None
  steps = lengths(family, points)
  ends = {c.total_steps for c in family.curves}
  steps = steps[[s not in ends for s in steps]]
  tokens_per_step = family.curves[-1].tokens_per_step
  loss = predict_finals(form, law_fit, [c.lr for c in family.curves] +
                        [schedule_of(family.config, s) for s in steps], family.n)
  errors = list(loss[:len(measured)] / measured[:, 2] - 1)
  loss = loss[len(measured):]
  flops = np.concatenate([steps * family.flops_per_step, measured[:, 0]])
  tokens = np.concatenate([steps * tokens_per_step, measured[:, 1]])
  loss = np.concatenate([loss, measured[:, 2]])
  predicted = np.concatenate([np.ones(len(steps), bool), np.zeros(len(measured), bool)])
  order = np.argsort(flops)
  keep = np.isfinite(loss[order]) & (loss[order] > 0)
  return ((flops[order][keep], tokens[order][keep], loss[order][keep]), predicted[order][keep],
          errors, law_fit)


def cooled_curves(fams: list) -> list:
  """cooled_curve of each family (in order): the one with most branches fitted from the form's
  grid, each next one from the distinct minima of the last WARM fitted."""
  out, warm = {}, []
  for k in sorted(range(len(fams)), key=lambda k: (-len(fams[k].rows), fams[k].n)):
    # Always WARM x N_ALTERNATES starts (rows repeated): one shape, one compiled fit.
    starts = (np.resize(np.concatenate(warm[-WARM:]), (WARM * fitter.N_ALTERNATES,
                                                       warm[0].shape[1])) if warm else None)
    out[k] = cooled_curve(fams[k], starts=starts)
    if out[k][3] is not None:
      warm.append(out[k][3].alternates)
  return [out[k] for k in range(len(fams))]


def envelope_curves(run_ids, n, curves_dir: str, curves: list):
  """(curves, their n, row of each curve in `curves`' runs per curve, record) for approach 1:
  every branch family's cooled curve and every other run's own curve; record is fit.json's
  `points` and per-family notes. The row of a family's curve is its first branch (the bootstrap
  weighs a family by its branches, see `family_weights`)."""
  fams = families(run_ids, n, curves_dir, curves)
  if not fams:
    return curves, np.asarray(n, np.float64), None, {"points": "training_curves"}
  in_family = np.zeros(len(curves), bool)
  out, out_n, members, record = [], [], [], {"points": "cooled_predicted", "form": FORM,
                                             "families": []}
  for fam, (curve, predicted, errors, _) in zip(fams, cooled_curves(fams)):
    in_family[fam.rows] = True
    note = {"trunk": fam.trunk, "n": fam.n, "branches": len(fam.rows)}
    if isinstance(predicted, str):
      warnings.warn(f"approach 1: the curve law {FORM} could not be fitted on trunk {fam.trunk} "
                    f"({predicted}); its envelope uses its {len(fam.rows)} measured branch "
                    "endpoints alone", AnalysisWarning)
      note.update(fallback="measured_endpoints", reason=predicted, n_predicted=0)
    else:
      note.update(n_predicted=int(predicted.sum()), endpoint_rel_errors=errors)
    record["families"].append(note)
    if len(curve[0]) >= 2:
      out.append(curve)
      out_n.append(fam.n)
      members.append(fam.rows)
  fell_back = sum("fallback" in f for f in record["families"])
  record["note"] = (f" (branches: the envelope of cooled-down losses predicted along {len(fams)} "
                    f"trunks by the curve law {FORM}, measured endpoints kept; {fell_back} "
                    "trunk(s) on measured endpoints alone)")
  for i in np.flatnonzero(~in_family):
    out.append(curves[i])
    out_n.append(float(n[i]))
    members.append(np.array([i]))
  return out, np.array(out_n), members, record


def family_weights(members, counts) -> np.ndarray:
  """[resamples, curves] bootstrap counts of the envelope's curves from those of the runs with
  curves: a family's curve is in a resample when one of its branches is."""
  counts = np.asarray(counts)
  return np.stack([counts[:, rows].max(1) for rows in members], 1)


def sweep_families(sweep_dir: str) -> tuple[list, np.ndarray, list]:
  """(whole curves, their N, trunk families) of the runs of a sweep directory's results.csv that
  have curves under DIR/runs: what benchmarks/ read a branch sweep through."""
  from analysis import envelope, runs as runs_lib  # pylint: disable=import-outside-toplevel
  runs = runs_lib.load(os.path.join(sweep_dir, "results.csv"))
  curves_dir = os.path.join(sweep_dir, "runs")
  by_run = envelope.load_curves(runs.run_id, curves_dir)
  ids = [r for r in runs.run_id if r in by_run]
  n = runs.n[[r in by_run for r in runs.run_id]]
  whole = [by_run[r] for r in ids]
  return whole, n, families(ids, n, curves_dir, whole)
