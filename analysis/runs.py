"""The table of runs: read a CSV, pick the columns, check the values, group runs into budgets.

Any table works: a sweep's results.csv (run_id, status, n_params, n_params_total, tokens, flops,
final_eval_loss, budget, ...) or a published one (Epoch's Chinchilla extraction: `Model Size`,
`Training FLOP`, `loss`). Columns not named on the command line are detected from the candidates
below, first match wins. Conventions:
- N for the Chinchilla approaches is total parameters when the table has them (Hoffmann et al.;
  Pearce & Song 2024 show the choice explains much of the Kaplan/Chinchilla gap), and the Kaplan
  fits use non-embedding N (`n_params`) when present, as Kaplan et al. did.
- D missing: D = C/(6N). C missing: C = 6ND.
- Rows whose `status` is not `completed` are excluded from every fit and listed in the report.
Bad values (missing, NaN, non-positive) in the rows that are fitted are errors, never dropped
silently: the message names the rows.
"""
import csv
import dataclasses
import math
import os

import numpy as np

N_COLUMNS = ("n_params_total", "n_params", "Model Size", "N", "params", "parameters")
KAPLAN_N_COLUMNS = ("n_params",)
D_COLUMNS = ("tokens", "D", "Training Tokens", "n_tokens")
C_COLUMNS = ("flops", "Training FLOP", "C", "compute", "flops_6nd")
LOSS_COLUMNS = ("final_eval_loss", "loss", "eval_loss", "final_train_loss", "L")
BUDGET_TOL = 0.10  # runs whose C lie within 10% of a group's smallest C share an IsoFLOP budget


class DataError(ValueError):
  """A table that cannot be fitted as asked; the message says what to fix, in one line."""


class AnalysisWarning(UserWarning):
  """Something left out of a fit (a budget, a curve line); collected into fit.json and the report."""


@dataclasses.dataclass(frozen=True)
class Runs:
  """The completed runs that are fitted (arrays aligned by row) and what was left out."""
  run_id: np.ndarray
  n: np.ndarray          # parameters, Chinchilla approaches
  d: np.ndarray          # tokens
  c: np.ndarray          # training FLOPs
  loss: np.ndarray
  n_kaplan: np.ndarray   # parameters, Kaplan fits
  budget: np.ndarray     # planned IsoFLOP budget of each run; NaN when none
  columns: dict          # role -> column used ("derived: ..." when computed)
  source: str
  excluded: tuple = ()   # (run_id, status, reason) of rows not completed
  dropped: tuple = ()    # run_ids dropped by --drop-top-loss
  loss_floor: float | None = None  # a known irreducible loss (the synthetic source's exact floor)

  def __len__(self):
    return len(self.loss)

  def subset(self, mask) -> "Runs":
    arrays = {f: getattr(self, f)[mask] for f in ("run_id", "n", "d", "c", "loss", "n_kaplan",
                                                   "budget")}
    return dataclasses.replace(self, **arrays)


def _pick(columns, given, candidates, flag, path, required=True):
  if given:
    if given not in columns:
      raise DataError(f"column {given!r} ({flag}) is not in {path}; its columns are: "
                      f"{', '.join(columns)}")
    return given
  lower = {c.lower(): c for c in columns}
  for candidate in candidates:
    if candidate in columns:
      return candidate
    if candidate.lower() in lower:
      return lower[candidate.lower()]
  if required:
    raise DataError(f"{path} has none of the columns {', '.join(candidates)}; name one with {flag} "
                    f"(columns: {', '.join(columns)})")
  return None


def _floats(rows, column, ids, what, path):
  """The column as floats; raises naming the rows that are missing, NaN or not positive."""
  values = []
  for row in rows:
    try:
      values.append(float(row[column]))
    except (TypeError, ValueError):
      values.append(math.nan)
  values = np.array(values, np.float64)
  bad = ~(values > 0)  # NaN fails too
  if bad.any():
    shown = ", ".join(f"{ids[i]}={rows[i][column]!r}" for i in np.flatnonzero(bad)[:5])
    raise DataError(f"{what} column {column!r} of {path} has {bad.sum()} missing, NaN or "
                    f"non-positive values in fitted rows ({shown}); fix or exclude those rows")
  return values


def load(path: str, n_col=None, d_col=None, c_col=None, loss_col=None, kaplan_n_col=None,
         drop_top_loss: int = 0, family=None) -> Runs:
  """Reads and checks a table of runs; see the module docstring for the conventions."""
  if not os.path.isfile(path):
    raise DataError(f"results file {path} does not exist")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    columns = list(reader.fieldnames or [])
    rows = list(reader)
  if not rows:
    raise DataError(f"{path} has no rows")
  ids = [row.get("run_id") or f"row {i + 1}" for i, row in enumerate(rows)]
  excluded = []
  if "status" in columns:
    keep = [i for i, row in enumerate(rows) if row["status"] == "completed"]
    for i in sorted(set(range(len(rows))) - set(keep)):
      reason = rows[i].get("error") or f"final train loss {rows[i].get('final_train_loss') or '-'}"
      excluded.append((ids[i], rows[i]["status"] or "no status", reason))
    rows, ids = [rows[i] for i in keep], [ids[i] for i in keep]
  if family and "family" not in columns:
    raise DataError(f"--family {family} given, but {path} has no family column")
  if "family" in columns:
    families = sorted({row["family"] for row in rows})
    if family:
      if family not in families:
        raise DataError(f"no completed runs of family {family!r} in {path} (families: "
                        f"{', '.join(families)})")
      keep = [i for i, row in enumerate(rows) if row["family"] == family]
      rows, ids = [rows[i] for i in keep], [ids[i] for i in keep]
    elif len(families) > 1:
      raise DataError(f"{path} mixes model families {', '.join(families)}; fit one at a time with "
                      "--family")
  if not rows:
    raise DataError(f"{path} has no completed runs to fit ({len(excluded)} rows not completed)")

  n_name = _pick(columns, n_col, N_COLUMNS, "--n-col", path)
  loss_name = _pick(columns, loss_col, LOSS_COLUMNS, "--loss-col", path)
  d_name = _pick(columns, d_col, D_COLUMNS, "--d-col", path, required=False)
  c_name = _pick(columns, c_col, C_COLUMNS, "--c-col", path, required=False)
  kaplan_name = _pick(columns, kaplan_n_col, KAPLAN_N_COLUMNS, "--kaplan-n-col", path,
                      required=False) or n_name
  if d_name is None and c_name is None:
    raise DataError(f"{path} has neither a token column ({', '.join(D_COLUMNS)}) nor a FLOP column "
                    f"({', '.join(C_COLUMNS)}); name one with --d-col or --c-col")
  n = _floats(rows, n_name, ids, "parameter", path)
  loss = _floats(rows, loss_name, ids, "loss", path)
  n_kaplan = _floats(rows, kaplan_name, ids, "parameter", path)
  d = _floats(rows, d_name, ids, "token", path) if d_name else None
  c = _floats(rows, c_name, ids, "FLOP", path) if c_name else None
  used = {"n": n_name, "loss": loss_name, "n_kaplan": kaplan_name,
          "d": d_name or f"derived: {c_name} / (6 {n_name})",
          "c": c_name or f"derived: 6 {n_name} {d_name}"}
  d = c / (6 * n) if d is None else d
  c = 6 * n * d if c is None else c
  budget = np.full(len(rows), np.nan)
  if "budget" in columns:
    budget = np.array([float(row["budget"]) if row["budget"] not in ("", None) else np.nan
                       for row in rows])
    used["budget"] = "budget"
  floors = {row.get("loss_floor") for row in rows} - {None, ""}
  loss_floor = float(floors.pop()) if len(floors) == 1 else None

  runs = Runs(np.array(ids), n, d, c, loss, n_kaplan, budget, used, path, tuple(excluded),
              loss_floor=loss_floor)
  if drop_top_loss:
    if not 0 < drop_top_loss < len(runs):
      raise DataError(f"--drop-top-loss {drop_top_loss} must be between 0 and the {len(runs)} "
                      "completed runs")
    top = np.argsort(runs.loss, kind="stable")[-drop_top_loss:]
    keep = np.ones(len(runs), bool)
    keep[top] = False
    runs = dataclasses.replace(runs.subset(keep), dropped=tuple(runs.run_id[top]))
  return runs


def check_fittable(runs: Runs, n_params: int = 5):
  """Raises unless the runs can identify a law with n_params parameters in N and D."""
  if len(runs) <= n_params:
    raise DataError(f"{len(runs)} completed runs cannot determine the {n_params}-parameter law "
                    f"L(N, D); need at least {n_params + 1}")
  if len(np.unique(group_log(runs.n, 1e-3))) < 2:
    raise DataError(f"all {len(runs)} runs have one model size (N = {runs.n[0]:.4g}); the laws "
                    "need runs at several sizes")
  if len(np.unique(group_log(runs.d, 1e-3))) < 2:
    raise DataError(f"all {len(runs)} runs have one token count (D = {runs.d[0]:.4g}); the laws "
                    "need runs at several D")


def group_log(values, tol: float) -> np.ndarray:
  """Group ids for positive values: walking up in sorted order, a value joins the current group
  while it is within a factor (1 + tol) of the group's smallest value (so no group spans more)."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="stable")
  labels = np.empty(len(values), int)
  group, start = -1, -np.inf
  for i in order:
    if values[i] > start * (1 + tol):
      group, start = group + 1, values[i]
    labels[i] = group
  return labels


def isoflop_groups(runs: Runs, tol: float = BUDGET_TOL):
  """(labels, budgets): each run's IsoFLOP group (-1: none) and each group's budget C.

  The `budget` column, where a sweep wrote it, defines the groups exactly; without it runs whose
  C lie within a factor (1 + tol) of each other form a group, whose budget is their geometric mean C.
  """
  planned = np.isfinite(runs.budget)
  if planned.any():
    budgets = np.unique(runs.budget[planned])
    labels = np.where(planned, np.searchsorted(budgets, runs.budget), -1)
    return labels, budgets
  labels = group_log(runs.c, tol)
  budgets = np.array([np.exp(np.mean(np.log(runs.c[labels == g])))
                      for g in range(labels.max() + 1)])
  return labels, budgets
