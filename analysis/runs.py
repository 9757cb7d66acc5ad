"""The table of runs: read a CSV, pick the columns, check the values, group runs into budgets.

Any table works: a sweep's results.csv (run_id, status, n_params, n_params_total, tokens, flops,
final_eval_loss, budget, ...) or a published one (Epoch's Chinchilla extraction: `Model Size`,
`Training FLOP`, `loss`). Columns not named on the command line are detected from the candidates
below, first match wins. Conventions:
- N for the Chinchilla approaches is total parameters when the table has them (Hoffmann et al.;
  Pearce & Song 2024 show the choice explains much of the Kaplan/Chinchilla gap), and the Kaplan
  fits use non-embedding N (`n_params`) when present, as Kaplan et al. did.
- D missing: D = C/(6N). C missing: C = 6ND.
- Rows whose `status` is not `completed` are excluded from every fit and listed in the report;
  with `predicted` (--predicted), rows whose status is `predicted` (a branch sweep's branches whose
  loss a curve law predicted, sweeps/predict.py) are fitted too and listed as such.
- Rows that share a training run (a WSD trunk's branches: `trunk_id`) are not independent; the
  bootstrap resamples them together (`source_run`, from `--run-col` or RUN_COLUMNS).
Bad values (missing, not a number, NaN, infinite, non-positive) in the rows that are fitted are
errors, never dropped silently: the one-line message names the file, the line and the column.
A byte-order mark, spaces after the commas and empty lines are tolerated.
"""
import csv
import dataclasses
import os

import numpy as np

N_COLUMNS = ("n_params_total", "n_params", "Model Size", "N", "params", "parameters")
KAPLAN_N_COLUMNS = ("n_params",)
D_COLUMNS = ("tokens", "D", "Training Tokens", "n_tokens")
C_COLUMNS = ("flops", "Training FLOP", "C", "compute", "flops_6nd")
LOSS_COLUMNS = ("final_eval_loss", "loss", "eval_loss", "final_train_loss", "L")
# The training run a row's loss comes from: a WSD branch names its trunk; otherwise the row's run.
RUN_COLUMNS = ("trunk_id", "trunk", "run_id")
BOOTSTRAP_UNITS = ("run", "point", "budget")  # what a bootstrap resample draws (bootstrap.py)
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
  source_run: np.ndarray | None = None  # the training run of each row (None: each row its own)
  predicted: tuple = ()  # run_ids of fitted rows whose loss is predicted, not measured

  def __len__(self):
    return len(self.loss)

  def inputs(self, names) -> tuple:
    """The columns a law form reads (forms.Form.inputs), in its order."""
    return tuple(getattr(self, name) for name in names)

  def subset(self, mask) -> "Runs":
    arrays = {f: getattr(self, f)[mask] for f in ("run_id", "n", "d", "c", "loss", "n_kaplan",
                                                   "budget")}
    if self.source_run is not None:
      arrays["source_run"] = self.source_run[mask]
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


def read_table(path: str) -> tuple[list, list, list]:
  """(columns, rows as {column: text}, the file line of each row) of a CSV file.

  Tolerates what spreadsheets and hand edits leave: a UTF-8 byte-order mark, spaces around names
  and cells, empty lines. Raises DataError naming the line of anything else it cannot read.
  """
  if not os.path.isfile(path):
    raise DataError(f"results file {path} does not exist")
  line = 1
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      columns = [name.strip() for name in next(reader, [])]
      twice = sorted({c for c in columns if c and columns.count(c) > 1})
      if twice:
        raise DataError(f"{path}, line 1: the header names column {twice[0]!r} twice")
      rows, lines = [], []
      for cells in reader:
        line = reader.line_num
        if not cells:
          continue
        if not any(cell.strip() for cell in cells):
          raise DataError(f"{path}, line {line}: the line holds only whitespace or empty cells; "
                          "delete it")
        if len(cells) > len(columns):
          raise DataError(f"{path}, line {line}: {len(cells)} cells, but the header (line 1) "
                          f"names {len(columns)} columns")
        rows.append({c: (cells[i].strip() if i < len(cells) else "")
                     for i, c in enumerate(columns)})
        lines.append(line)
  except UnicodeDecodeError as e:
    raise DataError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
  except csv.Error as e:
    raise DataError(f"{path}, line {line + 1}: {e}") from None
  except OSError as e:
    raise DataError(f"{path} cannot be read: {e.strerror}") from None
  return columns, rows, lines


@dataclasses.dataclass(frozen=True)
class _Table:
  """The rows being fitted, with their ids and file lines, for messages that point at a cell."""
  path: str
  rows: list
  lines: list
  ids: list

  def subset(self, keep) -> "_Table":
    return _Table(self.path, [self.rows[i] for i in keep], [self.lines[i] for i in keep],
                  [self.ids[i] for i in keep])

  def where(self, i: int, column: str) -> str:
    return f"{self.path}, line {self.lines[i]}, column {column!r}"

  def numbers(self, column: str) -> np.ndarray:
    """The column as floats (NaN for an empty cell); raises at the first cell that is not a
    number."""
    values = np.full(len(self.rows), np.nan)
    for i, row in enumerate(self.rows):
      text = row.get(column, "")
      try:
        values[i] = float(text)
      except ValueError:
        if text:
          raise DataError(f"{self.where(i, column)}: {text!r} is not a number") from None
    return values

  def positive(self, column: str, what: str) -> np.ndarray:
    """The column as positive finite floats; raises naming the first bad row's line and column."""
    values = self.numbers(column)
    for bad, kind in ((~(values > 0), "missing, NaN or non-positive"),  # NaN fails `> 0` too
                      (np.isinf(values), "infinite")):
      if bad.any():
        first = int(np.flatnonzero(bad)[0])
        shown = ", ".join(f"{self.ids[i]}={self.rows[i].get(column, '')!r}"
                          for i in np.flatnonzero(bad)[:5])
        raise DataError(f"{self.where(first, column)}: the {what} column has {bad.sum()} {kind} "
                        f"values in fitted rows ({shown}); fix or exclude those rows")
    return values

  def finite(self, values, what: str, formula: str) -> np.ndarray:
    """A derived column, checked: positive and finite (6ND can overflow, C/(6N) underflow)."""
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
      first = int(np.flatnonzero(bad)[0])
      raise DataError(f"{self.path}, line {self.lines[first]}: the derived {what} {formula} = "
                      f"{values[first]:.3g} is not a positive finite number")
    return values


def _select(table: _Table, columns: list, path: str, family,
            predicted: bool = False) -> tuple[_Table, list]:
  """The completed rows (of `family`; and the predicted ones with `predicted`), and (run_id,
  status, reason) of the rows left out."""
  excluded = []
  if "status" in columns:
    fitted = ("completed", "predicted") if predicted else ("completed",)
    keep = [i for i, row in enumerate(table.rows) if row["status"] in fitted]
    for i in sorted(set(range(len(table.rows))) - set(keep)):
      row = table.rows[i]
      reason = row.get("error") or f"final train loss {row.get('final_train_loss') or '-'}"
      if row["status"] == "predicted":
        reason = "its loss is predicted by a curve law, not measured (--predicted fits it)"
      excluded.append((table.ids[i], row["status"] or "no status", reason))
    table = table.subset(keep)
  if family and "family" not in columns:
    raise DataError(f"--family {family} given, but {path} has no family column")
  if "family" in columns:
    families = sorted({row["family"] for row in table.rows})
    if family:
      if family not in families:
        raise DataError(f"no completed runs of family {family!r} in {path} (families: "
                        f"{', '.join(families)})")
      table = table.subset([i for i, row in enumerate(table.rows) if row["family"] == family])
    elif len(families) > 1:
      raise DataError(f"{path} mixes model families {', '.join(families)}; fit one at a time with "
                      "--family")
  if not table.rows:
    raise DataError(f"{path} has no completed runs to fit ({len(excluded)} rows not completed)")
  return table, excluded


def _ids(rows, lines) -> list[str]:
  return [row.get("run_id") or f"line {line}" for row, line in zip(rows, lines)]


def write_deduplicated(path: str, out_path: str) -> tuple[int, int]:
  """Writes the table at `path` to `out_path` with one row per run id, the last of each kept
  (a rerun's row replaces the earlier one) in the file's order; returns (rows dropped, run ids
  they belonged to). Raises DataError, writing nothing, when the table cannot be read."""
  columns, rows, lines = read_table(path)
  ids = _ids(rows, lines)
  last = {run_id: i for i, run_id in enumerate(ids)}
  kept = sorted(last.values())
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  with open(out_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows[i] for i in kept)
  return len(rows) - len(kept), sum(ids.count(run_id) > 1 for run_id in last)


def load(path: str, n_col=None, d_col=None, c_col=None, loss_col=None, kaplan_n_col=None,
         drop_top_loss: int = 0, family=None, run_col=None, predicted: bool = False) -> Runs:
  """Reads and checks a table of runs; see the module docstring for the conventions."""
  columns, rows, lines = read_table(path)
  if not rows:
    raise DataError(f"{path} has no rows")
  ids = _ids(rows, lines)
  first = {}
  for run_id, line in zip(ids, lines):  # a run counted twice would weigh twice in every fit
    if first.setdefault(run_id, line) != line:
      raise DataError(f"{path}, line {line}: run {run_id!r} is there already (line "
                      f"{first[run_id]}); keep one row per run (--dedupe keeps the last)")
  table, excluded = _select(_Table(path, rows, lines, ids), columns, path, family, predicted)
  predicted_ids = tuple(i for i, row in zip(table.ids, table.rows)
                        if row.get("status") == "predicted")

  n_name = _pick(columns, n_col, N_COLUMNS, "--n-col", path)
  loss_name = _pick(columns, loss_col, LOSS_COLUMNS, "--loss-col", path)
  d_name = _pick(columns, d_col, D_COLUMNS, "--d-col", path, required=False)
  c_name = _pick(columns, c_col, C_COLUMNS, "--c-col", path, required=False)
  kaplan_name = _pick(columns, kaplan_n_col, KAPLAN_N_COLUMNS, "--kaplan-n-col", path,
                      required=False) or n_name
  run_name = _pick(columns, run_col, RUN_COLUMNS, "--run-col", path, required=False)
  if d_name is None and c_name is None:
    raise DataError(f"{path} has neither a token column ({', '.join(D_COLUMNS)}) nor a FLOP column "
                    f"({', '.join(C_COLUMNS)}); name one with --d-col or --c-col")
  n = table.positive(n_name, "parameter")
  loss = table.positive(loss_name, "loss")
  n_kaplan = table.positive(kaplan_name, "parameter")
  d = table.positive(d_name, "token") if d_name else None
  c = table.positive(c_name, "FLOP") if c_name else None
  used = {"n": n_name, "loss": loss_name, "n_kaplan": kaplan_name,
          "d": d_name or f"derived: {c_name} / (6 {n_name})",
          "c": c_name or f"derived: 6 {n_name} {d_name}"}
  with np.errstate(all="ignore"):
    d = table.finite(c / (6 * n), "token count", f"{c_name} / (6 {n_name})") if d is None else d
    c = table.finite(6 * n * d, "FLOP count", f"6 {n_name} {d_name}") if c is None else c
  budget = np.full(len(n), np.nan)
  if "budget" in columns:
    budget = table.numbers("budget")
    bad = ~(np.isnan(budget) | (np.isfinite(budget) & (budget > 0)))
    if bad.any():
      first = int(np.flatnonzero(bad)[0])
      raise DataError(f"{table.where(first, 'budget')}: {table.rows[first]['budget']!r} is not a "
                      "positive FLOP budget (leave the cell empty for a run outside any budget)")
    used["budget"] = "budget"
  source_run = None
  if run_name:
    source_run = np.array([row[run_name] or i for row, i in zip(table.rows, table.ids)])
    used["run"] = run_name
  floors = table.numbers("loss_floor") if "loss_floor" in columns else []
  floors = set(np.asarray(floors)[np.isfinite(floors)].tolist())
  loss_floor = floors.pop() if len(floors) == 1 else None

  runs = Runs(np.array(table.ids), n, d, c, loss, n_kaplan, budget, used, path, tuple(excluded),
              loss_floor=loss_floor, source_run=source_run, predicted=predicted_ids)
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
