"""The compute-optimal frontier from every approach, side by side, the inference-aware frontier,
and the extrapolation check.

The frontier is read at the data's own budgets (the planned ones; without a budget column, every
decade inside the runs' range of C and its two ends) plus every decade from 1e18 to 1e24 FLOPs
(where the papers quote tokens per parameter) and a verification run's budget, next to the
20-tokens-per-parameter rule; each row says how many decades it lies beyond the data (the
summary and the report show only the rows inside the data's range and the verification's). Every approach reads C in the table's own FLOP
convention (`flops_convention`: counted FLOPs for a sweep's results.csv): Approaches 1 and 2 are
power laws through minima in that C, and Approach 3, Kaplan's joint law and the 20x rule are
minimised under C = k N^gamma D with k and gamma fitted on the table's (N, C / D).

The inference-aware frontier (Sardana et al. 2023): for each row's budget C, the Approach 3 model
that reaches the loss of C's compute-optimal model at the least training plus inference cost,
6 N D + 2 N T, for T inference tokens (laws.inference_optimum).

The extrapolation check refits without the largest IsoFLOP budget (all of its runs: a budget split
between the fit and the test would test interpolation; without a budget column, the largest groups
of runs of equal C, whole, until they hold 10% of the runs) and reports how well each law form,
fitted on the rest, predicts the held-out final losses: the test a scaling law is for. The same
check by size holds out every run of the largest N (all its budgets): a table that trains the
same sizes longer (an over-training grid) passes the check by compute without ever predicting a
larger model.
"""
import numpy as np

from analysis import fitter
from analysis import forms
from analysis import isoflop
from analysis import laws
from analysis import runs as runs_lib

PUBLISHED_BUDGETS = tuple(10.0 ** k for k in range(18, 25))
MIN_BUDGETS_FOR_CHECK = 3  # holding out the largest leaves 2 to fit a frontier through
MIN_SIZES_FOR_CHECK = 3
HOLDOUT_FRACTION = 0.10  # without planned budgets, whole C groups are held out up to this share


def data_budgets(runs, budgets) -> list[float]:
  """The budgets the data covers: the planned ones; one C group's budget; else every decade
  inside the runs' range of C and the range's two ends (2 significant digits)."""
  planned = runs.budget[np.isfinite(runs.budget)]
  if len(planned):
    return sorted(set(planned.tolist()))
  if len(budgets) == 1:
    return [float(budgets[0])]
  low, high = runs.c.min(), runs.c.max()
  decades = [10.0 ** k for k in range(int(np.ceil(np.log10(low))),
                                      int(np.floor(np.log10(high))) + 1)]
  return sorted({float(f"{low:.2g}"), float(f"{high:.2g}"), *decades})


def budgets_for(data: list[float], extrapolate: bool = True) -> list[float]:
  """The frontier's budgets: the data's, and the published decades unless the frontier cannot
  be extrapolated (its exponent is not identified)."""
  return sorted(set(data) | (set(PUBLISHED_BUDGETS) if extrapolate else set()))


def decades_beyond(flops, data: list[float]) -> float:
  """How many decades C lies outside the data's budgets (0 inside)."""
  return float(max(0.0, np.log10(flops / max(data)), np.log10(min(data) / flops)))


def _point(n_opt, d_opt) -> dict:
  return {"n_opt": float(n_opt), "d_opt": float(d_opt), "tokens_per_param": float(d_opt / n_opt)}


# What a table's C column means, by its name (a sweep's results.csv has both).
C_LABELS = {"flops": "counted FLOPs (Chinchilla Appendix F)",
            "flops_6nd": "6ND FLOPs (N non-embedding)"}


def flops_convention(runs) -> dict:
  """The table's C: its column, what it counts, and C per token as a power of N fitted on the
  runs (C / D = k N^gamma), so every frontier is read in that one convention (6ND: k 6, gamma 1)."""
  column = runs.columns["c"]
  per_token = runs.c / runs.d
  six_nd = bool(np.allclose(per_token, 6 * runs.n, rtol=1e-6, atol=0))
  if six_nd:  # the values say what the column holds, whatever it is called
    label = (C_LABELS["flops_6nd"] if column == "flops_6nd" else "6ND FLOPs" if
             column.startswith("derived") else f"6ND FLOPs (the table's {column!r} column)")
    k, gamma = 6.0, 1.0
  else:
    label = C_LABELS.get(column) or f"FLOPs as the table's {column!r} column"
    k, gamma = laws.fit_power_law(runs.n, per_token)
  return {"column": column, "label": label, "k": k, "gamma": gamma}


def table(budgets, fits: dict, approach2=None, approach1=None, data=None,
          convention=None) -> list[dict]:
  """One row per budget C in the table's FLOP convention (`flops_convention`; 6ND without one):
  the primary form (Approach 3) at the top level (the contract), then Approaches 2 and 1 and each
  other form with a compute-optimal allocation, under its name."""
  per_token = {"k": (convention or {}).get("k", 6.0), "gamma": (convention or {}).get("gamma", 1.0)}
  primary = forms.get(forms.PRIMARY)
  others = [form for form in forms.registered()
            if form.optimum and form.name in fits and form.name != forms.PRIMARY]
  rows = []
  for flops in budgets:
    row = {"flops": float(flops),
           **_point(*primary.optimum(fits[forms.PRIMARY].params, flops, **per_token))}
    if data:
      row["decades_beyond_data"] = decades_beyond(flops, data)
    if approach2:
      row["approach2"] = _point(*isoflop.optimum(approach2, flops))
    if approach1:
      row["approach1"] = _point(*isoflop.optimum(approach1, flops))
    for form in others:
      row[form.name] = _point(*form.optimum(fits[form.name].params, flops, **per_token))
    row["rule_20x"] = _point(*laws.rule_optimum(flops, **per_token))
    rows.append(row)
  return rows


def inference_table(rows: list[dict], fit3: fitter.LawFit, tokens: float) -> list[dict]:
  """For each frontier row: the loss of C's compute-optimal model, and the (N, D) reaching it at
  the least 6 N D + 2 N T, with both models' total cost."""
  out = []
  for row in rows:
    loss = laws.chinchilla_loss(row["n_opt"], row["d_opt"], **fit3.law())
    n, d = laws.inference_optimum(loss, tokens, **fit3.law())
    total, chinchilla_total = 6 * n * d + 2 * n * tokens, row["flops"] + 2 * row["n_opt"] * tokens
    out.append({"flops": row["flops"], "target_loss": float(loss), **_point(n, d),
                "training_flops": float(6 * n * d), "inference_flops": float(2 * n * tokens),
                "total_flops": float(total), "chinchilla_total_flops": float(chinchilla_total),
                "saving": float(np.round(1 - total / chinchilla_total, 12)) + 0.0,  # no -0.0
                **{key: row[key] for key in ("decades_beyond_data", "verification")
                   if key in row}})
  return out


def holdout_mask(labels, planned: bool = True) -> np.ndarray | str:
  """The runs held out (labels from runs.isoflop_groups): the largest planned budget; without a
  budget column, the largest C groups, whole, until they hold HOLDOUT_FRACTION of the runs.
  A string says why none is held out."""
  used = np.unique(labels[labels >= 0])
  if len(used) < MIN_BUDGETS_FOR_CHECK:
    return (f"extrapolation check: needs runs at {MIN_BUDGETS_FOR_CHECK} or more budgets (the "
            f"largest is held out, the frontier fitted through the rest); the data has {len(used)}")
  held_out = labels == used[-1]
  for group in used[-2:0:-1]:  # always leave at least 2 budgets to fit
    if planned or held_out.sum() >= HOLDOUT_FRACTION * len(labels):
      break
    held_out |= labels == group
  return held_out


def _errors(predicted, actual) -> dict:
  error = predicted - actual
  return {"mean_abs_error": float(np.mean(np.abs(error))),
          "max_abs_error": float(np.max(np.abs(error))),
          "mean_error": float(np.mean(error)),
          "mean_abs_rel_error": float(np.mean(np.abs(error) / actual))}


def size_holdout_mask(runs) -> np.ndarray | str:
  """The runs of the largest models, held out whole (all their budgets): sizes from the largest
  down until they hold HOLDOUT_FRACTION of the runs, leaving at least 2 sizes to fit. One size is
  not always enough: on Gadre et al.'s grids the single largest model is a few runs that a law
  fitted on the rest happens to meet. A string says why none is held out."""
  sizes = runs_lib.group_log(runs.n, 1e-3)
  if sizes.max() + 1 < MIN_SIZES_FOR_CHECK:
    return (f"extrapolation check by size: needs {MIN_SIZES_FOR_CHECK} or more model sizes (the "
            f"largest are held out); the data has {sizes.max() + 1}")
  held_out = sizes == sizes.max()
  for size in range(sizes.max() - 1, 1, -1):
    if held_out.sum() >= HOLDOUT_FRACTION * len(runs):
      break
    held_out |= sizes == size
  return held_out


def extrapolation_check(runs, held_out, fits: dict, by: str = "compute") -> dict | str:
  """Refits every form of `fits` on the rest and returns their errors on the held-out runs. A
  refit starts from the full fit's distinct minima (LawFit.alternates), as a bootstrap refit
  does: holding out a budget or a size moves the optimum, not the basins the full grid found."""
  fitted = runs.subset(~held_out)
  if len(fitted) <= 5 or len(np.unique(fitted.n)) < 2 or len(np.unique(fitted.d)) < 2:
    return (f"extrapolation check{' by size' if by == 'size' else ''}: too few runs left after "
            f"holding out the largest {'models' if by == 'size' else 'budget'}")
  test = runs.subset(held_out)
  out = {"held_out": [str(r) for r in test.run_id]}
  if by == "size":
    out.update(held_out_n_min=float(test.n.min()), fitted_n_max=float(fitted.n.max()))
  else:
    out.update(held_out_flops_min=float(test.c.min()), fitted_flops_max=float(fitted.c.max()))
  out["n_fitted"] = len(fitted)
  predicted = {}
  for form in forms.registered():
    if form.name not in fits:
      continue
    law_fit = fitter.fit(form, fitted.inputs(form.inputs), fitted.loss,
                         starts=fits[form.name].alternates)
    predicted[form.name] = fitter.predict(form, law_fit.params, test.inputs(form.inputs))
    out[form.name] = {**law_fit.params, **_errors(predicted[form.name], test.loss)}
  out["observed"] = test.loss.tolist()
  for name, values in predicted.items():
    out[f"predicted_{name}"] = values.tolist()
  return out
