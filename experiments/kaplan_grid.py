"""A Kaplan-style grid as a branch sweep: 4 model sizes x 6 token budgets 2x apart, on the synthetic
source, each size one WSD trunk with a 20% cooldown branched off at every budget.

  python sweep.py --config experiments/kaplan_grid.py --dry-run    # the plan, its cost and wall time
  python sweep.py --config experiments/kaplan_grid.py

24 runs for 0.61 of their independent cost (DIR/cost.json): a trunk to 80% of the largest budget
and six cooldowns per size. Fits L(N, D) (Approach 3 and Kaplan's joint law) over a grid that is
not an IsoFLOP plan; the batch is fixed at 8 sequences for the reason in default_sweep.py.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "kaplan_grid"
  c.train.batch_size = 8
  c.train.eval_tokens = 16_384
  c.train.schedule = "wsd"
  c.sweep = base.sweep_section(kind="grid", n_params=(3e3, 1.2e4, 5e4, 2e5),
                               tokens=(1.25e5, 2.5e5, 5e5, 1e6, 2e6, 4e6), branches=True, workers=2)
  return c
