"""A data-constrained sweep on the synthetic source (sweeps/kinds/data_constrained.py): 2 model
sizes x pools of 16K and 64K unique tokens x 1, 4, 16 and 32 epochs, with a fresh-data run of
every N and D: 24 runs.

  python sweep.py --config experiments/data_constrained.py --dry-run   # the plan and its cost
  python sweep.py --config experiments/data_constrained.py --workdir DIR

Fitted by `python -m analysis.data_constrained` (DIR/analysis/data_constrained.json and
data_constrained.png). Figures: docs/results/2026-12-03-finite-data.md.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "data_constrained"
  c.train.seq_len = 64
  c.train.batch_size = 8
  c.train.eval_tokens = 8_192
  c.sweep = base.sweep_section(kind="data_constrained", n_params=(3e3, 1.2e4),
                               unique_tokens=(16_384, 65_536), epochs=(1, 4, 16, 32),
                               workers=2)
  return c
