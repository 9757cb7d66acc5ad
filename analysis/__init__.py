"""Scaling-law analysis: fit Kaplan and Chinchilla laws to a table of runs, report the frontier.

  python -m analysis --results CSV --out DIR [--bootstrap B] ...   (see __main__.py)

Modules, each one obvious place: runs (read and check the table, IsoFLOP groups), laws (the laws
as pure functions), lbfgs (batched L-BFGS), forms/ (the law forms, one module each, registered by
name) and fitter (one fitter for all of them), isoflop / envelope / kaplan (Approaches 2 and 1,
Kaplan's one-variable laws), bootstrap (intervals), frontier (the frontier tables, extrapolation
checks), diagnostics (the verdict: how far to trust a fit), summary (the printed lines), plots,
report (md and html), wandb_report (W&B run and Report), pipeline (all of it:
`pipeline.run_analysis`).
"""
