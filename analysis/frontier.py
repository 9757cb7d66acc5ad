"""The compute-optimal frontier from every approach, side by side, the inference-aware frontier,
and the extrapolation check.

The frontier is read at the data's own budgets (the planned ones; without a budget column, every
decade inside the runs' range of C and its two ends) plus every decade from 1e18 to 1e24 FLOPs
(where the papers quote tokens per parameter), next to the 20-tokens-per-parameter rule; each row
says how many decades it lies beyond the data. Every approach reads C in the table's own FLOP
convention (`flops_convention`: counted FLOPs for a sweep's results.csv): Approaches 1 and 2 are
power laws through minima in that C, and Approach 3, Kaplan's joint law and the 20x rule are
minimised under C = k N^gamma D with k and gamma fitted on the table's (N, C / D).

The inference-aware frontier (Sardana et al. 2023): for each row's budget C, the Approach 3 model
that reaches the loss of C's compute-optimal model at the least training plus inference cost,
6 N D + 2 N T, for T inference tokens (laws.inference_optimum).

The extrapolation check refits without the largest IsoFLOP budget (all of its runs: a budget split
between the fit and the test would test interpolation; without a budget column, the largest groups
of runs of equal C, whole, until they hold 10% of the runs) and reports how well each law, fitted
on the rest, predicts the held-out final losses: the test a scaling law is for.
"""
import numpy as np

from analysis import approach3
from analysis import isoflop
from analysis import kaplan
from analysis import laws

PUBLISHED_BUDGETS = tuple(10.0 ** k for k in range(18, 25))
MIN_BUDGETS_FOR_CHECK = 3  # holding out the largest leaves 2 to fit a frontier through
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
  label = C_LABELS.get(column) or (
      "6ND FLOPs" if column.startswith("derived") else f"FLOPs as the table's {column!r} column")
  per_token = runs.c / runs.d
  if np.allclose(per_token, 6 * runs.n, rtol=1e-6, atol=0):
    k, gamma = 6.0, 1.0
  else:
    k, gamma = laws.fit_power_law(runs.n, per_token)
  return {"column": column, "label": label, "k": k, "gamma": gamma}


def table(budgets, fit3: approach3.Approach3Fit, approach2=None, approach1=None,
          kaplan_joint=None, data=None, convention=None) -> list[dict]:
  """One row per budget C in the table's FLOP convention (`flops_convention`; 6ND without one):
  Approach 3 at the top level (the contract), then each other approach."""
  per_token = {"k": (convention or {}).get("k", 6.0), "gamma": (convention or {}).get("gamma", 1.0)}
  rows = []
  for flops in budgets:
    row = {"flops": float(flops), **_point(*laws.chinchilla_optimum(
        flops, fit3.A, fit3.B, fit3.alpha, fit3.beta, **per_token))}
    if data:
      row["decades_beyond_data"] = decades_beyond(flops, data)
    if approach2:
      row["approach2"] = _point(*isoflop.optimum(approach2, flops))
    if approach1:
      row["approach1"] = _point(*isoflop.optimum(approach1, flops))
    if kaplan_joint:
      row["kaplan"] = _point(*laws.kaplan_optimum(
          flops, *(kaplan_joint[k] for k in kaplan.PARAMS), **per_token))
    row["rule_20x"] = _point(*laws.rule_optimum(flops, **per_token))
    rows.append(row)
  return rows


def inference_table(rows: list[dict], fit3: approach3.Approach3Fit, tokens: float) -> list[dict]:
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
                **({"decades_beyond_data": row["decades_beyond_data"]}
                   if "decades_beyond_data" in row else {})})
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


def extrapolation_check(runs, held_out) -> dict | str:
  """Fits Approach 3 and Kaplan's joint law on the rest; their errors on the held-out runs."""
  fitted = runs.subset(~held_out)
  if len(fitted) <= 5 or len(np.unique(fitted.n)) < 2 or len(np.unique(fitted.d)) < 2:
    return "extrapolation check: too few runs left after holding out the largest budget"
  test = runs.subset(held_out)
  fit3 = approach3.fit(fitted.n, fitted.d, fitted.loss)
  joint = kaplan.fit_joint(fitted.n_kaplan, fitted.d, fitted.loss)
  predicted3 = laws.chinchilla_loss(test.n, test.d, **fit3.law())
  predicted_kaplan = laws.kaplan_loss(test.n_kaplan, test.d, *(joint[k] for k in kaplan.PARAMS))
  return {"held_out": [str(r) for r in test.run_id], "held_out_flops_min": float(test.c.min()),
          "fitted_flops_max": float(fitted.c.max()), "n_fitted": len(fitted),
          "approach3": {**fit3.law(), **_errors(predicted3, test.loss)},
          "kaplan": {**{k: joint[k] for k in kaplan.PARAMS},
                     **_errors(predicted_kaplan, test.loss)},
          "observed": test.loss.tolist(), "predicted_approach3": predicted3.tolist(),
          "predicted_kaplan": predicted_kaplan.tolist()}
