"""A Chinchilla-style IsoFLOP study (Hoffmann et al. 2022, Figure 3 and Approach 2) at small scale.

  python sweep.py --config experiments/chinchilla_repro.py --dry-run   # the plan and its wall time
  python sweep.py --config experiments/chinchilla_repro.py

Like the paper: 9 model sizes per budget, spread evenly in log N over a 64x span (neighbours 1.68x
apart) around N = sqrt(C/120), so every IsoFLOP curve reaches well past its minimum on both sides;
4 budgets a half decade apart (the paper's 9 budgets span 6e18..3e21 FLOPs); a cosine schedule
fitted to each run's own token budget (decaying to 10% exactly at D); parabolas in log N through
each curve give N_opt(C) (Approach 2) and the parametric fit L(N, D) = E + A/N^alpha + B/D^beta
gives Approach 3. The synthetic source's exact loss floor is the true E to hold the fit against.

32 runs (small targets at the two lowest budgets round to the same smallest shapes and are run
once), 1.2e13 FLOPs as 6ND and 1.9e13 counted: tens of minutes on 2 CPU cores, minutes on a GPU
(`--dry-run` estimates it; docs/results/2026-11-23-chinchilla-repro-estimate.md). The batch is
fixed at 8 sequences for the reason in docs/results/2026-11-27-default-sweep.md.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "chinchilla_repro"
  c.train.batch_size = 8
  c.train.eval_tokens = 32_768
  # A run keeps about one CPU core busy, so two run at once.
  # Budgets as 6ND (N non-embedding), as Chinchilla planned them and the figures above were measured.
  c.sweep = base.sweep_section(budgets=(3e10, 1e11, 3e11, 1e12), sizes_per_budget=9, span=64.0,
                               workers=2, flops="6nd")
  return c
