"""The embedded default (`python sweep.py`): a small IsoFLOP branch sweep on the synthetic source.

4 compute budgets (8e10..1.2e12 counted FLOPs) x 5 model sizes from one 2x ladder x 2 seeds: 40
runs trained as 14 warmup-stable-decay trunks with a 20% cooldown branched off at every budget,
in a few minutes on 2 CPU cores, analysis included. Why these choices (budgets far above the
floor, minima inside every curve, branches for 0.71 of the FLOPs, a fixed batch of 8 so big models
get enough steps, 16K eval tokens, 2 workers), and the sweep's figures before and after them:
docs/results/2026-11-27-default-sweep.md. Its language's topics follow Zipf weights of exponent 1.4,
not the source's default 1.1: with 1.1 the losses of these sizes fall too slowly for the Chinchilla
law to tell the floor from the Zipf tail, and approaches 2 and 3 disagree
(docs/results/2026-12-03-default-source.md).

The `sweep` keys are documented in sweeps/plan.py (PRETRAINING_KEYS) and sweeps/kinds/.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "default_sweep"
  c.train.batch_size = 8
  c.train.eval_tokens = 16_384
  c.train.schedule = "wsd"
  c.data.synthetic.zipf_exponent = 1.4
  c.sweep = base.sweep_section(budgets=(8e10, 2e11, 4.8e11, 1.2e12), tokens_per_param=30.0,
                               branches=True, seeds=(0, 1), workers=2)
  return c
