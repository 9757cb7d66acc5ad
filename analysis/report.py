"""report.md and a self-contained report.html from fit.json.

The report is built once as a list of blocks (heading, paragraph, table, list, figure) and rendered
twice, to Markdown (figures linked) and to HTML (figures embedded as base64 PNG, one file to mail).
It opens with the sweep's configuration and provenance (analysis/report_provenance.py), then the
verdict, so a reader meets what is unreliable before any number. PUBLISHED: the quoted numbers.
"""
import base64, html, json, os

from analysis import plots
from analysis.report_provenance import provenance_block
from analysis import summary
from core import files

# Hoffmann et al. 2022 (Chinchilla; Approach 3 from their section 3.3, a and b from Table 2),
# Besiroglu et al. 2024 (Epoch's replication of Chinchilla's Figure 4 runs: their grid fit),
# Kaplan et al. 2020 (equations 1.1, 1.2, 1.3 and 1.7 / Figure 14 for N_opt ∝ C^0.73).
PUBLISHED = {
    "chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
                   "approach1_a": 0.50, "approach2_a": 0.49, "approach3_a": 0.46,
                   "tokens_per_param": 20.0},
    "epoch": {"E": 1.8172, "A": 477.8, "B": 2143.8, "alpha": 0.3473, "beta": 0.3672,
              "approach3_a": 0.5139, "tokens_per_param_1e18": 26.0, "tokens_per_param_1e24": 18.0},
    "kaplan": {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13, "alpha_C": 0.050,
               "n_opt_exponent": 0.73},
}


def fmt(value) -> str:
  if value is None:
    return "–"
  if isinstance(value, bool):
    return "yes" if value else "NO"
  if isinstance(value, str):
    return value
  if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
    return f"{value:.3g}"
  return f"{value:.4g}"


def fmt_ci(ci) -> str:
  """An interval; every interval is the bootstrap's, so none means no bootstrap ran."""
  return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "no bootstrap run"


BESPOKE = ("chinchilla_approach3", "kaplan")  # forms whose sections have their own blocks below


def _param_rows(section: dict, names) -> list:
  ci = section.get("ci95") or {}
  return [[name, fmt(section.get(name)), fmt_ci(ci.get(name))] for name in names]


def _verdict_block(fit: dict) -> list:
  d = fit.get("diagnostics")
  if not d:
    return []
  out = [("h2", "How far to trust this fit"), ("p", f"Verdict: {d['verdict']}.")]
  if d["problems"]:
    out += [("p", "Problems (each makes some result unreliable):"), ("list", d["problems"])]
  if d["unidentified"]:
    names = {"frontier": "the frontier exponent and the frontier beyond the data"}
    out.append(("p", "Not identified by these runs, so not reported as numbers in the summaries: "
                     + "; ".join(f"{names.get(k, k)} ({why})"
                                 for k, why in d["unidentified"].items()) + "."))
  out += [("p", "Checks:"), ("list", d["checks"])]
  if d["budgets"]:
    out.append(("table", ["budget C", "runs", "sizes", "lowest-loss N", "lowest loss interior",
                          "used by approach 2"],
                [[fmt(b["flops"]), str(b["runs"]), str(b["sizes"]), fmt(b["lowest_loss_n"]),
                  "–" if b["interior"] is None else fmt(b["interior"]), fmt(b["approach2"])]
                 for b in d["budgets"]]))
  return out


def _exponents_in(fit: dict) -> str:
  """The frontier exponents in the table's C (fit.json's flops_convention), when not 6ND's."""
  exponents, convention = fit["chinchilla_approach3"].get("frontier_exponents"), fit.get(
      "flops_convention") or {"gamma": 1.0}
  return ("" if not exponents or convention["gamma"] == 1.0 else f"; in the table's C "
          f"({convention['label']}): a = {fmt(exponents['a'])}, b = {fmt(exponents['b'])}")


def _tokens_at(fit: dict, flops: float) -> str:
  """Tokens per parameter at a published budget, only where the data's budgets reach it."""
  row = next((r for r in fit["frontier"] if r["flops"] == flops), {})
  far = row.get("decades_beyond_data")
  return f"– ({far:.1f} decades beyond the data)" if far else fmt(row.get("tokens_per_param"))


def _fit_blocks(fit: dict) -> list:
  blocks = []
  a3 = fit["chinchilla_approach3"]
  blocks += [
      ("h2", "Chinchilla Approach 3: L(N, D) = E + A/N^alpha + B/D^beta"),
      ("p", f"Huber (delta {a3['huber_delta']}) on log L, L-BFGS from the {a3.get('n_starts_run', a3['n_starts'])} "
            f"best of {a3['n_starts']} grid points in float64; {a3['n_starts_converged']} converged, {a3['n_starts_at_best']} "
            f"reached the best objective ({fmt(a3['objective'])}). Converged: "
            f"{fmt(a3['converged'])}. N_opt = G (C/6)^a, D_opt = (C/6)^b / G: a, b and G here "
            "are for C = 6ND" + _exponents_in(fit) + "."),
      ("table", ["parameter", "value", "95% CI"],
       _param_rows(a3, ("E", "A", "B", "alpha", "beta", "a", "b", "G")))]
  if fit.get("loss_floor") is not None:
    blocks.append(("p", f"The data's known loss floor is {fmt(fit['loss_floor'])} nats; the fitted "
                        f"irreducible loss E is {fmt(a3['E'])}."))
  a2 = fit.get("chinchilla_approach2")
  if a2:
    blocks += [
        ("h2", "Chinchilla Approach 2: IsoFLOP profiles"),
        ("p", f"N_opt ∝ C^a, D_opt ∝ C^b through the minima of {len(a2['budgets'])} parabolas, "
              "each fitted in log N to "
              + (f"the runs within a factor {fmt(a2['window'])} in N of its lowest loss (at "
                 "least 3 sizes)." if a2.get("window") else "the whole curve.")),
        ("table", ["parameter", "value", "95% CI"], _param_rows(a2, ("a", "b"))),
        ("table", ["budget C", "runs", "fitted", "N_opt", "D_opt", "D_opt/N_opt", "min loss"],
         [[fmt(p["flops"]), str(p["n_runs"]), str(p.get("n_fitted", p["n_runs"])),
           fmt(p["n_opt"]), fmt(p["d_opt"]), fmt(p["d_opt"] / p["n_opt"]), fmt(p["loss_opt"])]
          for p in a2["profiles"]])]
  a1 = fit.get("chinchilla_approach1")
  if a1:
    blocks += [
        ("h2", "Chinchilla Approach 1: envelope of the training curves"),
        ("p", f"{a1['n_curves']} training curves{a1.get('note', '')}; {a1['n_points']} envelope points over "
              f"{a1['n_sizes']} interior model sizes."),
        ("table", ["parameter", "value", "95% CI"], _param_rows(a1, ("a", "b")))]
  k = fit["kaplan"]
  rows = _param_rows(k, ("alpha_N", "alpha_D", "N_c", "D_c"))
  rows.append(["N_opt exponent of the joint law", fmt(k["n_opt_exponent"]),
               fmt_ci((k.get("ci95") or {}).get("n_opt_exponent"))])
  for name, keys in (("L_N", ("alpha_N", "N_c")), ("L_D", ("alpha_D", "D_c")),
                     ("L_C", ("alpha_C", "C_c"))):
    if name in k:
      rows += [[f"{key} of {name.replace('_', '(')})", fmt(k[name][key]),
                fmt_ci((k[name].get("ci95") or {}).get(key))] for key in keys]
  blocks += [
      ("h2", "Kaplan et al. (2020)"),
      ("p", f"Joint L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, least squares on log L "
            f"(rms error {fmt(k['rms_log_error'])}, converged: {fmt(k['converged'])}); "
            "one-variable laws through the best loss per size and per token count; L(C) through "
            f"the compute-efficient envelope ({k.get('L_C', {}).get('envelope', '–')})."),
      ("table", ["parameter", "value", "95% CI"], rows)]
  for law in summary.laws_of(fit):  # every other form: its parameters
    if law["section"] in BESPOKE:
      continue
    section = fit[law["section"]]
    blocks += [("h2", f"{law['title']}: {law['formula']}"),
               ("p", f"L-BFGS from {section.get('n_starts_run', section['n_starts'])} starting points "
                     f"in float64; converged: "
                     f"{fmt(section['converged'])}; objective {fmt(section['objective'])}."),
               ("table", ["parameter", "value", "95% CI"], _param_rows(section, law["params"]))]
  return blocks + _goodness_block(fit)


def _held_out_error(check: dict, name: str) -> str:
  errors = (check or {}).get(name)
  rel = (errors or {}).get("mean_abs_rel_error")  # null where the refit's prediction overflowed
  return (f"{fmt(errors['mean_abs_error'])} ({fmt(None if rel is None else 100 * rel)}%)"
          if errors else "–")


def _goodness_block(fit: dict) -> list:
  """Per law form: R^2 of log L, RMS of the log residual, and the held-out errors."""
  check = fit.get("extrapolation", {})
  rows = [[law["title"], fmt(fit[law["section"]].get("r2_log")),
           fmt(fit[law["section"]].get("rms_log_residual")), _held_out_error(check, law["name"]),
           _held_out_error(check.get("by_size"), law["name"])]
          for law in summary.laws_of(fit)]
  return [("h2", "Goodness of fit"),
          ("p", "Per law, on every run: R^2 of log L and the RMS of log L minus the law's; held "
                "out: the mean absolute error (nats, and relative) on the runs of the largest "
                "budget and of the largest model size, predicted by the law refitted without "
                "them (see the extrapolation check)."),
          ("table", ["law", "R^2 (log L)", "RMS log residual", "held-out error, largest C",
                     "held-out error, largest N"], rows)]


def _comparison_block(fit: dict) -> list:
  a3, k = fit["chinchilla_approach3"], fit["kaplan"]
  chin, epoch, kap = PUBLISHED["chinchilla"], PUBLISHED["epoch"], PUBLISHED["kaplan"]
  label = (fit.get("flops_convention") or {}).get("label", "6ND FLOPs")
  rows = [[name, fmt(a3[name]), fmt(chin[name]), fmt(epoch[name]), "–"]
          for name in ("E", "A", "B", "alpha", "beta")]
  rows += [
      [f"a (N_opt ∝ C^a, C in {label}), Approach 3",
       fmt(a3.get("frontier_exponents", a3)["a"]), fmt(chin["approach3_a"]),
       fmt(epoch["approach3_a"]), "–"],
      ["a, Approach 2", fmt(fit.get("chinchilla_approach2", {}).get("a")),
       fmt(chin["approach2_a"]), "–", "–"],
      ["a, Approach 1", fmt(fit.get("chinchilla_approach1", {}).get("a")),
       fmt(chin["approach1_a"]), "–", "–"],
      ["tokens per parameter at 1e18", _tokens_at(fit, 1e18), fmt(chin["tokens_per_param"]),
       fmt(epoch["tokens_per_param_1e18"]), "–"],
      ["tokens per parameter at 1e24", _tokens_at(fit, 1e24), fmt(chin["tokens_per_param"]),
       fmt(epoch["tokens_per_param_1e24"]), "–"]]
  rows += [[name, fmt(k[name]), "–", "–", fmt(kap[name])]
           for name in ("alpha_N", "alpha_D", "N_c", "D_c")]
  rows += [["alpha_C (L(C) envelope)", fmt(k.get("L_C", {}).get("alpha_C")), "–", "–",
            fmt(kap["alpha_C"])],
           ["Kaplan N_opt exponent", fmt(k["n_opt_exponent"]), "–", "–",
            fmt(kap["n_opt_exponent"])]]
  return [
      ("h2", "Comparison with published numbers"),
      ("p", "Chinchilla: Hoffmann et al. 2022; Epoch: Besiroglu et al. 2024 (grid fit of the "
            "Chinchilla runs); Kaplan: Kaplan et al. 2020 (its N_opt exponent comes from its "
            "L(N, S) analysis, not from the joint law). Losses, A, B, N_c and D_c depend on the "
            "data and tokenizer; exponents are what carries across setups."),
      ("table", ["quantity", "this analysis", "Chinchilla", "Epoch", "Kaplan"], rows)]


def _frontier_block(fit: dict) -> list:
  names = [n for n in ["approach2", "approach1"] + [law["name"] for law in summary.laws_of(fit)]
           if n in fit["frontier"][0] and n != "approach3"]
  convention = fit.get("flops_convention") or {"label": "6ND FLOPs", "k": 6.0, "gamma": 1.0}
  header = [f"C ({convention['label']})", "A3 N_opt", "A3 D_opt", "A3 D/N [95% CI]"]
  header += [f"{n.replace('approach', 'A')} {q}" for n in names for q in ("N_opt", "D/N")]
  header += ["20x N", "20x D", "range"]
  rows, shown = [], summary.shown_rows(fit["frontier"])
  for row in shown:
    cells = [fmt(row["flops"]), fmt(row["n_opt"]), fmt(row["d_opt"]),
             f"{fmt(row['tokens_per_param'])} {fmt_ci(row.get('tokens_per_param_ci95'))}"]
    cells += [fmt(row[n][q]) for n in names for q in ("n_opt", "tokens_per_param")]
    cells += [fmt(row["rule_20x"]["n_opt"]), fmt(row["rule_20x"]["d_opt"]), _range(row)]
    rows.append(cells)
  return [("h2", "Compute-optimal frontier"),
          ("p", "At the budgets inside the data's range"
                + (" and the verification run's (range: how far past the data's budgets it "
                   "extrapolates)" if any(r.get("verification") for r in shown) else "")
                + f"; {len(fit['frontier']) - len(shown)} rows further out are in fit.json only. "
                f"Every C in one convention: {convention['label']}. "
                "A1 and A2 extend the power laws through their minima in that C; A3, Kaplan and "
                "the 20x rule minimise under C = k N^gamma D, the FLOPs per token fitted on the "
                f"table: {fmt(convention['k'])} N^{fmt(convention['gamma'])}."),
          ("table", header, rows)]


def _range(row: dict) -> str:
  far = row.get("decades_beyond_data")
  what = "verification, " if row.get("verification") else ""
  return "–" if far is None else "data" if not far else f"{what}extrapolated {far:.1f} decades"


def _inference_block(fit: dict) -> list:
  inference = fit.get("inference_frontier")
  if not inference:
    return []
  rows = [[fmt(r["flops"]), fmt(r["target_loss"]), fmt(r["n_opt"]), fmt(r["d_opt"]),
           fmt(r["tokens_per_param"]), fmt(r["training_flops"]), fmt(r["total_flops"]),
           fmt(r["chinchilla_total_flops"]), f"{fmt(100 * r['saving'])}%" if r["saving"] is not
           None else "–", _range(r)] for r in summary.shown_rows(inference["rows"])]
  return [("h2", f"Inference-aware frontier (T = {fmt(inference['inference_tokens'])} inference "
                 "tokens)"),
          ("p", "Sardana et al. (2023): for each budget C, the Approach 3 model that reaches the "
                "loss of C's compute-optimal model at the least training plus inference cost, "
                "6 N D + 2 N T. Smaller models trained on more tokens pay for their extra training "
                "by serving cheaper."),
          ("table", ["C", "target loss", "N", "D", "D/N", "training FLOPs", "total FLOPs",
                     "Chinchilla-optimal total", "saving", "range"], rows)]


def _check_rows(fit: dict, check: dict) -> list:
  return [[law["title"], fmt(check[law["name"]]["mean_abs_error"]),
           fmt(check[law["name"]]["max_abs_error"]), fmt(check[law["name"]]["mean_error"]),
           fmt(check[law["name"]]["mean_abs_rel_error"])]
          for law in summary.laws_of(fit) if law["name"] in check]


ERROR_HEADER = ["law", "mean abs error", "max abs error", "mean error", "mean abs relative error"]


def _extrapolation_block(fit: dict) -> list:
  check = fit["extrapolation"]
  out = [("h2", "Extrapolation check")]
  if "skipped" in check:
    out.append(("p", check["skipped"]))
  else:
    budget = ("the held-out budget" + ("s " if len(check["held_out_budgets"]) > 1 else " ")
              + ", ".join(fmt(b) for b in check["held_out_budgets"]) + ", "
              if "held_out_budgets" in check else "")
    out += [("p", f"By compute: refitted on the {check['n_fitted']} runs with C <= "
                  f"{fmt(check['fitted_flops_max'])}, then predicted the {len(check['held_out'])} "
                  f"runs of {budget}all held out (C >= {fmt(check['held_out_flops_min'])})."),
            ("table", ERROR_HEADER, _check_rows(fit, check))]
  by_size = check.get("by_size")
  if by_size and "skipped" in by_size:
    out.append(("p", by_size["skipped"]))
  elif by_size:
    out += [("p", f"By size: refitted on the {by_size['n_fitted']} runs with N <= "
                  f"{fmt(by_size['fitted_n_max'])}, then predicted the {len(by_size['held_out'])} "
                  f"runs of the largest models, N >= {fmt(by_size['held_out_n_min'])}, at all "
                  "their budgets."),
            ("table", ERROR_HEADER, _check_rows(fit, by_size))]
  return out


def blocks(fit: dict) -> list:
  """The report as blocks: (h1|h2|p, text), (table, header, rows), (list, items),
  (figure, file, caption)."""
  out = [("h1", "Scaling-law analysis")] + provenance_block(fit) + _verdict_block(fit) + [
         ("h2", "Data"),
         ("p", f"{fit['n_points']} runs from {os.path.basename(fit['source'])}."),
         ("table", ["role", "column"], [[k, v] for k, v in fit["columns"].items()])]
  if fit["excluded"]:
    out += [("p", f"{len(fit['excluded'])} runs not completed, excluded from every fit:"),
            ("table", ["run", "status", "reason"],
             [[e["run_id"], e["status"], e["reason"]] for e in fit["excluded"]])]
  if fit.get("predicted"):  # a predicting branch sweep's (sweeps/predict.py, curves.json)
    out.append(("p", f"Predicted by a curve law, not measured: {', '.join(fit['predicted'])}."))
  if fit["dropped_top_loss"]:
    out.append(("p", f"Dropped as the {len(fit['dropped_top_loss'])} highest losses: "
                     f"{', '.join(fit['dropped_top_loss'])}."))
  if fit["warnings"]:
    out += [("h2", "Warnings"), ("list", fit["warnings"])]
  out += _fit_blocks(fit) + _comparison_block(fit) + _frontier_block(fit) + _inference_block(fit)
  out += _extrapolation_block(fit)
  if fit.get("verify"):  # added by the sweep once it planned its verification run (sweeps/verify)
    out += [("h2", "Verification run: predicted, then trained"),
            ("p", "Planned from this fit at a budget past the data's, its loss predicted (95% "
                  "bootstrap interval) before it trained; held out of every fit."),
            ("table", ["quantity", "value"], summary.verify_rows(fit["verify"]))]
  info = fit["bootstrap"]
  if info["n_samples"]:
    failed = ", ".join(f"{k} of {name}" for name, k in info.get("failed", {}).items() if k)
    out.append(("p", f"95% intervals: {info['n_samples']} bootstrap resamples by "
                     f"{info.get('unit', 'point')} ({info.get('n_units', '–')} units; seed "
                     f"{info['seed']}); refits that failed numerically were dropped: "
                     f"{failed or 'none'}."))
  out.append(("h2", "Figures"))
  out += [("figure", file, plots.CAPTIONS[name]) for name, file in fit["plots"].items()]
  wandb = fit.get("wandb") or {}
  if wandb.get("report_spec"):
    out += [("h2", "Weights & Biases"),
            ("p", f"Analysis run: {wandb.get('run') or '–'} (mode {wandb['mode']}). Report: "
                  f"{wandb.get('report_url') or wandb['report_spec']}; publish it with: "
                  f"{wandb['publish_command']}")]
  return out


def to_markdown(blocks_) -> str:
  lines = []
  for block in blocks_:
    kind = block[0]
    if kind == "h1":
      lines += [f"# {block[1]}", ""]
    elif kind == "h2":
      lines += [f"## {block[1]}", ""]
    elif kind == "p":
      lines += [block[1], ""]
    elif kind == "list":
      lines += [f"- {item}" for item in block[1]] + [""]
    elif kind == "table":
      lines += ["| " + " | ".join(h.replace("|", "/") for h in block[1]) + " |",
                "|" + "---|" * len(block[1])]
      lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in block[2]]
      lines.append("")
    elif kind == "figure":
      lines += [f"![{block[1]}]({block[1]})", "", f"*{block[2]}*", ""]
  return "\n".join(lines)


def to_html(blocks_, out: str) -> str:
  body = []
  for block in blocks_:
    kind = block[0]
    if kind in ("h1", "h2", "p"):
      body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
    elif kind == "list":
      body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block[1]) + "</ul>")
    elif kind == "table":
      head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
      rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                     for row in block[2])
      body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    elif kind == "figure":
      with open(os.path.join(out, block[1]), "rb") as f:
        data = base64.b64encode(f.read()).decode()
      body.append(f'<figure><img alt="{html.escape(block[1])}" src="data:image/png;base64,{data}">'
                  f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
  style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
           "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
           "th{background:#f3f3f3}img{max-width:100%}figcaption{font-style:italic}")
  return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Scaling-law analysis</title>"
          f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write(fit: dict, out: str):
  """Writes out/report.md and out/report.html."""
  report = blocks(fit)
  files.write_atomic(os.path.join(out, "report.md"), to_markdown(report))
  files.write_atomic(os.path.join(out, "report.html"), to_html(report, out))


def print_outcome(lines: list[str], report_path: str, payload: dict, as_json: bool) -> int:
  """An analysis command's last words: its summary lines, where the report is, and with --json
  the whole result as one JSON line; returns the exit code 0."""
  for line in lines:
    print(line)
  print(f"report: {report_path}")
  if as_json:
    print(json.dumps(payload))
  return 0
