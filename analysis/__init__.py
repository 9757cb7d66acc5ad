"""Scaling-law analysis: fit Kaplan and Chinchilla laws to a table of runs, report the frontier.

  python -m analysis --results CSV --out DIR [--bootstrap B] ...   (see __main__.py)

Modules, each one obvious place: runs (read and check the table, IsoFLOP groups), laws (the laws
as pure functions), lbfgs (batched L-BFGS), approach3 / isoflop / curves / kaplan (the fits),
bootstrap (intervals), frontier (the frontier tables, extrapolation check), diagnostics (the
verdict: how far to trust a fit), plots, report (md and html), wandb_report (W&B run and Report),
pipeline (all of it: `pipeline.run_analysis`).
"""
