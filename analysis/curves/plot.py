"""The figure of `python -m analysis.curves`: measured curves (points) and predicted ones (lines)."""
import io

import numpy as np
from matplotlib.figure import Figure

from core import files

STYLES = ("-", "--", ":", "-.")


def curves_figure(path: str, curves, predictions, fit_runs) -> None:
  """One panel per predicted run (at most 12), each form a line style; fitted runs left out."""
  runs = [r for r in dict.fromkeys(p.run for p in predictions) if r not in fit_runs][:12]
  if not runs:
    return
  by_name = {c.run: c for c in curves}
  form_names = list(dict.fromkeys(p.form for p in predictions))
  cols = min(3, len(runs))
  rows = -(-len(runs) // cols)
  fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
  for k, run in enumerate(runs):
    ax = fig.add_subplot(rows, cols, k + 1)
    curve = by_name[run]
    if curve.measured:
      ax.plot(curve.steps, curve.loss, ".", color="0.5", ms=3, label="measured")
    for p in predictions:
      if p.run == run:
        style = STYLES[form_names.index(p.form) % len(STYLES)]
        error = "" if p.curve_error_mean is None else f" ({100 * p.curve_error_mean:.2f}%)"
        ax.plot(p.steps, p.loss, style, lw=1.2, label=f"{p.form}{error}")
    ax.set_title(run, fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    losses = [p.loss for p in predictions if p.run == run] + ([curve.loss] if curve.measured else [])
    low, high = np.percentile(np.concatenate(losses), [0, 95])
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.legend(fontsize=6)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=110)
  files.write_atomic(path, buffer.getvalue())
