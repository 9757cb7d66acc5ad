"""Loss curves as data: each run's schedule (the lr at every update) and its measured points.

Two sources, one record (`Curve`):
- a table (CSV) with the columns `run, n, step, tokens, lr, loss`, one row per logged point, so
  published curves can be fitted too. Steps increase within a run; lr >= 0; n > 0, one per run;
  an empty loss cell is a point to predict, not measured (a run with no loss at all is a schedule
  nobody trained). The lr between logged steps is linear (areas.lr_of_points).
- run directories (the run-directory contract, core/rundir.py): the schedule from config.json
  through training/schedules/ (the lr of every update, as the training step computes it), the
  points from metrics.jsonl's `train_loss` (the mean over the updates since the previous row, put
  at the middle of that window) or `eval_loss`, N from result.json (`n_params_total`). A
  directory with config.json and no metrics is a run nobody trained: its curve is predicted.
Anything else is a DataError (one line, naming the file, line and column where there is one).
"""
import dataclasses
import os

import numpy as np

from analysis import runs as runs_lib
from analysis.curves import areas
from analysis.runs import DataError
from core import rundir

COLUMNS = ("run", "n", "step", "tokens", "lr", "loss")
LOSSES = ("train_loss", "eval_loss")


@dataclasses.dataclass(frozen=True)
class Curve:
  """One run: its schedule and the points measured on it (steps empty when none were)."""
  run: str
  n: float | None         # parameters (total), None when unknown
  lr: np.ndarray          # [T] the lr of every update
  steps: np.ndarray       # measured points' steps (int)
  loss: np.ndarray        # measured losses there
  tokens_per_step: float | None = None

  @property
  def total_steps(self) -> int:
    return len(self.lr)

  @property
  def measured(self) -> bool:
    return len(self.steps) > 0


def from_table(path: str) -> list[Curve]:
  """The curves of a table (see the module docstring); raises DataError at the first bad cell."""
  columns, rows, lines = runs_lib.read_table(path)
  missing = [c for c in COLUMNS if c not in columns]
  if missing:
    raise DataError(f"{path} lacks the column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}; a curve table has {', '.join(COLUMNS)}")
  if not rows:
    raise DataError(f"{path} has no rows")
  table = runs_lib._Table(path, rows, lines, [r["run"] for r in rows])  # pylint: disable=protected-access
  for i, row in enumerate(rows):
    if not row["run"]:
      raise DataError(f"{table.where(i, 'run')}: empty run name")
  step = table.numbers("step")
  lr = table.numbers("lr")
  n = table.positive("n", "n")
  tokens = table.numbers("tokens")
  loss = table.numbers("loss")
  for column, values, ok in (
      ("step", step, (step >= 1) & (step == np.round(step))),
      ("lr", lr, np.isfinite(lr) & (lr >= 0)),
      ("tokens", tokens, np.isfinite(tokens) & (tokens > 0)),
      ("loss", loss, np.isnan(loss) | (np.isfinite(loss) & (loss > 0)))):
    if not ok.all():
      i = int(np.flatnonzero(~ok)[0])
      rule = {"step": "a whole number >= 1", "lr": "finite and >= 0", "tokens": "positive",
              "loss": "empty (not measured) or positive"}[column]
      raise DataError(f"{table.where(i, column)}: {rows[i][column]!r}; {column} must be {rule}")
  order: dict = {}
  for i, row in enumerate(rows):
    order.setdefault(row["run"], []).append(i)
  curves = []
  for run, index in order.items():
    index = np.array(index)
    bad = np.flatnonzero(np.diff(step[index]) <= 0)
    if len(bad):
      i = index[bad[0] + 1]
      raise DataError(f"{table.where(i, 'step')}: step {int(step[i])} of run {run!r} does not "
                      f"increase (the run's previous row has step {int(step[index[bad[0]]])})")
    if np.ptp(n[index]) > 0:
      raise DataError(f"{table.where(index[np.argmax(n[index] != n[index[0]])], 'n')}: run "
                      f"{run!r} has more than one n")
    if lr[index].max() <= 0:
      raise DataError(f"{table.where(index[0], 'lr')}: run {run!r} has no positive lr")
    total = int(step[index[-1]])
    measured = index[np.isfinite(loss[index])]
    curves.append(Curve(run, float(n[index[0]]),
                        areas.lr_of_points(step[index], lr[index], total),
                        step[measured].astype(int), loss[measured],
                        float(tokens[index[-1]] / total)))
  return curves


def _is_run(path: str) -> bool:
  return os.path.isfile(rundir.path(path, rundir.CONFIG))


def run_dirs(paths) -> list[str]:
  """The run directories named: a directory holding config.json is one; any other directory
  contributes the run directories among its children and grandchildren (a sweep's runs/, trunks/)."""
  found = []
  for path in paths:
    if not os.path.isdir(path):
      raise DataError(f"--runs {path}: not a directory")
    if _is_run(path):
      found.append(path)
      continue
    inside = []
    for child in sorted(os.listdir(path)):
      child = os.path.join(path, child)
      if _is_run(child):
        inside.append(child)
      elif os.path.isdir(child):
        inside += [os.path.join(child, g) for g in sorted(os.listdir(child))
                   if _is_run(os.path.join(child, g))]
    if not inside:
      raise DataError(f"--runs {path}: no run directory (with config.json) in it or below it")
    found += [p for p in inside if p not in found]
  return found


def from_run_dir(path: str, loss_key: str = "train_loss") -> Curve:
  """One run directory's curve (see the module docstring)."""
  try:
    config = rundir.read_config(path)
    lr = areas.lr_of_config(config)
  except (OSError, ValueError, KeyError, AttributeError) as e:
    raise DataError(f"{rundir.path(path, rundir.CONFIG)}: cannot rebuild the run's schedule "
                    f"({e})") from None
  result = rundir.read_result(path) or {}
  n = result.get("n_params_total")
  tokens_per_step = float(config.train.batch_size * config.train.seq_len)
  steps, loss, previous = [], [], 0
  metrics = rundir.path(path, rundir.METRICS)
  for row in (rundir.read_metrics(path) if os.path.isfile(metrics) else []):
    step, value = row.get("step"), row.get(loss_key)
    if not isinstance(step, int) or step <= previous or step > len(lr):
      continue
    if isinstance(value, (int, float)) and np.isfinite(value) and value > 0:
      # A train_loss row is the mean over the updates since the previous row: its middle.
      middle = max(1, step - (step - previous + 1) // 2)
      steps.append(middle if loss_key == "train_loss" else step)
      loss.append(float(value))
    previous = step
  return Curve(os.path.basename(os.path.normpath(path)), float(n) if n else None, lr,
               np.array(steps, int), np.array(loss, np.float64), tokens_per_step)


def from_runs(paths, loss_key: str = "train_loss") -> list[Curve]:
  curves = [from_run_dir(p, loss_key) for p in run_dirs(paths)]
  names = [c.run for c in curves]
  twice = sorted({name for name in names if names.count(name) > 1})
  if twice:
    raise DataError(f"two run directories are named {twice[0]!r}; name runs apart")
  return curves
