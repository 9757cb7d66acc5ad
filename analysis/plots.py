"""The figures, drawn like the papers' (matplotlib, PNG, log axes).

Figures are built with matplotlib's object API (`Figure`, no pyplot), so nothing global changes
and no display is needed. Each function draws one figure to a path, written atomically; `make_all`
draws every figure the fits support and returns {name: file name}. A figure that fails to draw is
a warning in fit.json, never the end of the analysis. CAPTIONS says what each one shows.
"""
import io
import os

import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from analysis import forms
from analysis import isoflop
from analysis import laws
from core import files

CAPTIONS = {
    "loss_vs_flops": "Loss against training FLOPs for every run, coloured by model size N, with the "
                     "lower envelope that Approach 1 reads the optimal N off (Chinchilla Figure 2, "
                     "left; final points only when there are no training curves).",
    "isoflop": "IsoFLOP profiles: final loss against N for each compute budget, the parabola in "
               "log N fitted to the runs near each minimum (filled; hollow: outside the window), "
               "and its minimum (Chinchilla Figure 3, left).",
    "frontier": "The compute-optimal N_opt(C) and D_opt(C) from each approach, with the "
                "20-tokens-per-parameter rule and, with --inference-tokens, the inference-aware "
                "optimum (Sardana et al. 2023) at its own training FLOPs; shaded: beyond the data "
                "(Chinchilla Figure 3, centre and right).",
    "contours": "Contours of the Approach 3 law L(N, D = C/6N) over compute and model size, the "
                "efficient frontier N_opt(C) and the runs (Chinchilla Figure 4, left).",
    "kaplan_loss_vs_n": "Loss against non-embedding N grouped by token count D, with Kaplan's joint "
                        "law L(N, D) at each group's D and the one-variable L(N) fit "
                        "(Kaplan Figure 4, left).",
    "extrapolation": "The extrapolation checks: losses of the largest-compute runs (filled) and of "
                     "the largest model size's runs (hollow) predicted by each law fitted without "
                     "them, against the losses measured.",
}
SIZE_CMAP = "viridis"


def _figure(ncols=1):
  # Fixed margins: matplotlib's constrained layout measured every tick label of every figure
  # and took half the analysis command's time (docs/results/2026-12-02-analysis-speed.md).
  fig = Figure(figsize=(6.4 * ncols, 4.8), dpi=90)
  fig.subplots_adjust(left=0.11 / ncols ** 0.5, right=0.97, bottom=0.11, top=0.92, wspace=0.25)
  return fig, fig.subplots(1, ncols)


def _save(fig, path):
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  files.write_atomic(path, buffer.getvalue())


def _log_axes(ax, xlabel, ylabel, title=None, loss_axis=False):
  ax.set_xscale("log")
  ax.set_yscale("log")
  if loss_axis:  # losses span less than a decade: plain numbers, not 3 x 10^0
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(True, which="major", alpha=0.3)


def _size_colours(fig, ax, n):
  norm = matplotlib.colors.LogNorm(min(n), max(n) * 1.0001)
  mappable = matplotlib.cm.ScalarMappable(norm, SIZE_CMAP)
  fig.colorbar(mappable, ax=ax, label="parameters N")
  return lambda value: mappable.to_rgba(value)


def loss_vs_flops(path, runs, curves, curve_n, envelope, convention=None):
  fig, ax = _figure()
  colour = _size_colours(fig, ax, runs.n)
  if curves:
    for (flops, _, loss), n in zip(curves, curve_n):
      ax.plot(flops, loss, color=colour(n), lw=1, alpha=0.8)
    ax.plot(envelope["flops"], envelope["loss"], color="k", lw=2, label="envelope (min over runs)")
    inside = envelope["interior"]
    ax.scatter(envelope["flops"][inside], envelope["loss"][inside], s=6, color="k", zorder=3,
               label="envelope points used by Approach 1")
  else:
    ax.scatter(runs.c, runs.loss, c=[colour(n) for n in runs.n], s=14)
    order = np.argsort(runs.c)
    best = np.minimum.accumulate(runs.loss[order])
    ax.step(runs.c[order], best, where="post", color="k", lw=1.5,
            label="compute-efficient envelope")
  _log_axes(ax, c_label(convention), "loss", "Loss vs compute", loss_axis=True)
  ax.legend(fontsize=8)
  _save(fig, path)


def isoflop_profiles(path, profiles, max_legend=10, convention=None):
  fig, ax = _figure()
  norm = matplotlib.colors.LogNorm(profiles[0].budget, profiles[-1].budget * 1.0001)
  budget_colour = matplotlib.cm.ScalarMappable(norm, "plasma").to_rgba
  if len(profiles) > max_legend:
    fig.colorbar(matplotlib.cm.ScalarMappable(norm, "plasma"), ax=ax,
                 label=f"budget C ({convention['label'] if convention else 'FLOPs'})")
  for p in profiles:
    colour = budget_colour(p.budget)
    ax.scatter(p.n[p.fitted], p.loss[p.fitted], color=colour, s=14)
    ax.scatter(p.n[~p.fitted], p.loss[~p.fitted], facecolors="none", edgecolors=colour, s=14)
    x = np.linspace(np.log10(p.n[p.fitted].min()) - 0.1, np.log10(p.n[p.fitted].max()) + 0.1, 100)
    ax.plot(10 ** x, np.polyval(p.parabola, x), color=colour, lw=1.2, label=f"C = {p.budget:.2g}")
    ax.scatter([p.n_opt], [p.loss_opt], color=colour, marker="*", s=120, edgecolor="k", zorder=4)
  _log_axes(ax, "parameters N", "final loss", "IsoFLOP profiles (stars: minima)", loss_axis=True)
  if len(profiles) <= max_legend:
    ax.legend(fontsize=8, ncol=2)
  _save(fig, path)


def _exponent(label, value, unidentified=False):
  return f"{label}: exponent not identified" if unidentified else f"{label}: C^{value:.2f}"


def c_label(convention) -> str:
  return f"training FLOPs C ({convention['label']})" if convention else "training FLOPs C"


def _slope(flops, values) -> float:
  """d log values / d log C across the plotted range (the exponent of a power-law frontier)."""
  return float(np.log(values[-1] / values[0]) / np.log(flops[-1] / flops[0]))


def frontier(path, fits, approach2, profiles, approach1, envelope, flops_range, data_max=None,
             unidentified=(), inference_tokens=None, convention=None):
  """`unidentified`: the law forms (by name) whose exponent the data cannot give. Every curve in
  the table's FLOP convention C = k N^gamma D (analysis.frontier)."""
  fig, (ax_n, ax_d) = _figure(2)
  flops = np.geomspace(*flops_range, 100)
  per_token = {"k": (convention or {}).get("k", 6.0), "gamma": (convention or {}).get("gamma", 1.0)}
  lines = []
  styles = iter(("-", "-.", (0, (5, 1)), (0, (1, 1, 3, 1))))
  for form in forms.registered():
    if form.optimum is None or form.name not in fits:
      continue
    n_opt, d_opt = form.optimum(fits[form.name].params, flops, **per_token)
    label = "Approach 3 (parametric)" if form.name == forms.PRIMARY else form.title
    lines.append((form.name, label, next(styles, "-"), (n_opt, d_opt), _slope(flops, n_opt),
                  _slope(flops, d_opt)))
  if inference_tokens:
    fit3 = fits[forms.PRIMARY]
    loss = laws.chinchilla_loss(*lines[0][3], **fit3.law())
    n_inf, d_inf = laws.inference_optimum(loss, inference_tokens, **fit3.law())
    for ax, values in ((ax_n, n_inf), (ax_d, d_inf)):  # at their own training cost
      ax.plot(per_token["k"] * n_inf ** per_token["gamma"] * d_inf, values, color="C4", lw=1.6,
              label=f"inference-aware, T = {inference_tokens:.2g} tokens")
  if approach2:
    lines.append(("approach2", "Approach 2 (IsoFLOP)", "--", isoflop.optimum(approach2, flops),
                  approach2["a"], approach2["b"]))
  if approach1:
    lines.append(("approach1", "Approach 1 (envelope)", ":", isoflop.optimum(approach1, flops),
                  approach1["a"], approach1["b"]))
  for name, label, style, (n_opt, d_opt), a, b in lines:
    open_ = name in unidentified
    ax_n.plot(flops, n_opt, linestyle=style, lw=1.6, label=_exponent(label, a, open_))
    ax_d.plot(flops, d_opt, linestyle=style, lw=1.6, label=_exponent(label, b, open_))
  rule_n, rule_d = laws.rule_optimum(flops, **per_token)
  ax_n.plot(flops, rule_n, color="grey", lw=1, label="20 tokens per parameter")
  ax_d.plot(flops, rule_d, color="grey", lw=1, label="20 tokens per parameter")
  if profiles:
    ax_n.scatter([p.budget for p in profiles], [p.n_opt for p in profiles], color="C1", zorder=3,
                 label="IsoFLOP minima")
    ax_d.scatter([p.budget for p in profiles], [p.d_opt for p in profiles], color="C1", zorder=3,
                 label="IsoFLOP minima")
  if envelope is not None and approach1:
    inside = envelope["interior"]
    ax_n.scatter(envelope["flops"][inside], envelope["n"][inside], s=4, color="C2", alpha=0.5)
    ax_d.scatter(envelope["flops"][inside], envelope["d"][inside], s=4, color="C2", alpha=0.5)
  if data_max and data_max < flops[-1]:
    for ax in (ax_n, ax_d):
      ax.axvspan(data_max, flops[-1], color="grey", alpha=0.12, lw=0)
  ax_n.set_xlim(flops[0], flops[-1])
  ax_d.set_xlim(flops[0], flops[-1])
  _log_axes(ax_n, c_label(convention), "optimal parameters N_opt", "N_opt(C)")
  _log_axes(ax_d, c_label(convention), "optimal tokens D_opt", "D_opt(C)")
  ax_n.legend(fontsize=7)
  ax_d.legend(fontsize=7)
  _save(fig, path)


def contours(path, runs, fit3, identified=True, convention=None):
  fig, ax = _figure()
  flops = np.geomspace(runs.c.min() / 10, runs.c.max() * 100, 200)
  n = np.geomspace(runs.n.min() / 10, runs.n.max() * 10, 200)
  grid_c, grid_n = np.meshgrid(flops, n)
  loss = laws.chinchilla_loss(grid_n, grid_c / (6 * grid_n), **fit3.law())
  levels = np.unique(np.quantile(loss, np.linspace(0.02, 0.9, 12)).round(3))
  lines = ax.contour(grid_c, grid_n, loss, levels=levels, cmap="viridis_r", linewidths=1)
  ax.clabel(lines, fontsize=7, fmt="%.2f")
  n_opt, _ = laws.chinchilla_optimum(flops, fit3.A, fit3.B, fit3.alpha, fit3.beta)
  ax.plot(flops, n_opt, color="C3", lw=2,
          label=(f"efficient frontier N_opt ∝ C^{fit3.a:.2f}" if identified
                 else "efficient frontier (exponent not identified)"))
  ax.scatter(runs.c, runs.n, s=8, color="k", alpha=0.6, label="runs")
  ax.set_ylim(n.min(), n.max())
  _log_axes(ax, c_label(convention), "parameters N", "Approach 3: iso-loss contours")
  ax.legend(fontsize=8, loc="upper left")
  _save(fig, path)


def kaplan_loss_vs_n(path, runs, joint, l_n, n_bins=6):
  fig, ax = _figure()
  log_d = np.log(runs.d)
  edges = np.linspace(log_d.min(), log_d.max() + 1e-9, n_bins + 1)
  bins = np.clip(np.digitize(log_d, edges) - 1, 0, n_bins - 1)
  cmap = matplotlib.colormaps["cividis"]
  n_line = np.geomspace(runs.n_kaplan.min() / 2, runs.n_kaplan.max() * 2, 100)
  for k in np.unique(bins):
    colour = cmap(k / max(1, n_bins - 1))
    d = np.exp(np.mean(log_d[bins == k]))
    ax.scatter(runs.n_kaplan[bins == k], runs.loss[bins == k], color=colour, s=14)
    ax.plot(n_line, laws.kaplan_loss(n_line, d, joint["alpha_N"], joint["alpha_D"], joint["N_c"],
                                     joint["D_c"]), color=colour, lw=1, label=f"D ≈ {d:.2g}")
  if l_n:
    ax.plot(n_line, (l_n["x_c"] / n_line) ** l_n["alpha"], "k--", lw=1,
            label=f"L(N) = (N_c/N)^{l_n['alpha']:.3f}")
  _log_axes(ax, "non-embedding parameters N", "final loss", "Kaplan: loss vs N, by tokens D",
            loss_axis=True)
  ax.legend(fontsize=7, ncol=2)
  _save(fig, path)


def extrapolation(path, check, titles):
  """Predicted against measured losses of the held-out runs: by compute (filled) and, when there
  is one, by size (hollow), for each law form (`titles`: {name: label})."""
  fig, ax = _figure()
  values = []
  for which, marker_fill in ((check, True), (check.get("by_size") or {}, False)):
    if "observed" not in which:
      continue
    observed = np.array(which["observed"])
    for i, (name, label) in enumerate(titles.items()):
      predicted = which.get(f"predicted_{name}")
      if predicted is None:
        continue
      colour = f"C{i}"
      by = "compute" if marker_fill else "size"
      ax.scatter(observed, predicted, s=20, color=colour if marker_fill else "none",
                 edgecolors=colour, label=f"{label}, held out by {by}")
      values += [observed, np.asarray(predicted)]
  values = np.concatenate(values)
  span = [values.min() * 0.97, values.max() * 1.03]
  ax.plot(span, span, "k--", lw=1, label="perfect prediction")
  ax.set_xlabel("measured final loss (held-out runs)")
  ax.set_ylabel("predicted final loss")
  ax.set_title("Extrapolation: laws fitted without the largest C" + (
      f" (<= {check['fitted_flops_max']:.2g})" if "fitted_flops_max" in check else "")
      + " or the largest N")
  ax.legend(fontsize=7)
  _save(fig, path)


def make_all(arrays: dict, fit: dict, out: str) -> dict:
  """Draws every figure the fits support into `out`; returns {name: file name}. A figure that
  fails is left out, with a warning added to fit["warnings"]."""
  runs, fit3 = arrays["runs"], arrays["fit3"]
  budgets = [row["flops"] for row in arrays["frontier"]]
  flops_range = (min(runs.c.min(), min(budgets)) / 3, max(runs.c.max(), max(budgets)))
  # One budget leaves both parametric laws' frontiers open; an exponent near 0, Approach 3's.
  reason = fit["diagnostics"]["unidentified"].get("frontier")
  unidentified = (() if reason is None else tuple(arrays["fits"]) if reason == "one budget"
                  else (forms.PRIMARY,))
  inference = fit.get("inference_frontier", {}).get("inference_tokens")
  convention = fit.get("flops_convention")
  titles = {law["name"]: ("Approach 3" if law["name"] == forms.PRIMARY else law["title"])
            for law in fit.get("laws", ())}
  data_max = max([row["flops"] for row in arrays["frontier"]
                  if not row.get("decades_beyond_data")] + [runs.c.max()])
  figures = {
      "loss_vs_flops": lambda p: loss_vs_flops(p, runs, arrays["curves"], arrays["curve_n"],
                                               arrays["envelope"], convention),
      "isoflop": ((lambda p: isoflop_profiles(p, arrays["profiles"], convention=convention))
                  if arrays["profiles"] else None),
      "frontier": lambda p: frontier(p, arrays["fits"], arrays["approach2"], arrays["profiles"],
                                     arrays["approach1"], arrays["envelope"], flops_range,
                                     data_max, unidentified, inference, convention),
      "contours": lambda p: contours(p, runs, fit3, forms.PRIMARY not in unidentified,
                                     convention),
      "kaplan_loss_vs_n": ((lambda p: kaplan_loss_vs_n(p, runs, arrays["fits"]["kaplan"].params,
                                                       arrays["l_n"]))
                           if "kaplan" in arrays["fits"] else None),
      "extrapolation": ((lambda p: extrapolation(p, fit["extrapolation"], titles))
                        if "observed" in fit["extrapolation"]
                        or "observed" in fit["extrapolation"].get("by_size", {}) else None),
  }
  made = {}
  for name, draw in figures.items():
    if draw is None:
      continue
    try:
      with np.errstate(all="ignore"):
        draw(os.path.join(out, f"{name}.png"))
      made[name] = f"{name}.png"
    except Exception as e:  # pylint: disable=broad-except  (a figure is optional; see above)
      fit["warnings"].append(f"figure {name} not drawn ({type(e).__name__}: {e})")
  return made
