"""An lr-transfer sweep on the synthetic source (sweeps/kinds/lr_transfer.py): sp, mup and
completep, widths 32..256 (8x) at 2 layers and depths 2..8 (4x) at width 64, 4 heads, each shape
at 5 peak lrs (one group of replicas) for 80 steps of 8 x 64 tokens: 90 runs in 18 groups.

  python sweep.py --config experiments/lr_transfer.py --dry-run   # the plan and its cost
  python sweep.py --config experiments/lr_transfer.py --workdir DIR

Fitted by `python -m analysis.lr_transfer` (DIR/analysis/lr_transfer.json, lr_transfer.png).
Figures: docs/results/2026-12-03-mup.md.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "lr_transfer"
  c.model.n_layer, c.model.d_model, c.model.n_heads = 2, 64, 4
  c.train.seq_len = 64
  c.train.batch_size = 8
  c.train.eval_tokens = 4_096
  c.sweep = base.sweep_section(kind="lr_transfer", lrs=(1e-3, 3.2e-3, 1e-2, 3.2e-2, 1e-1),
                               tokens=(40_960,), workers=2)
  return c
