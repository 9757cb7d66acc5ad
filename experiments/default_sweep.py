"""The embedded default (`python sweep.py`): a small IsoFLOP sweep on the synthetic source.

4 compute budgets x 5 model sizes (3K..230K non-embedding parameters, 0.1M..8M tokens), sized to
finish in about 6 minutes on 2 CPU cores, analysis included. Choices, each measured on this source:
- budgets 4e10..6e11 FLOPs (C = 6ND, N non-embedding), 2.4-2.5x apart: the best loss falls from
  ~3.2 to ~2.7 nats across them, far above the source's 0.92 floor (docs/design.md, "The synthetic source").
  Each budget is picked so the sizing rule's coarse grid of small shapes (3.1K, 6.2K, 12K, 25-28K,
  49-56K, 77K, ...) gives five sizes about 2x apart, with no two nearly equal;
- sizes a factor 2 apart (span 16), centred on 30 tokens per parameter rather than Chinchilla's 20:
  at these budgets the IsoFLOP minima sit at 40-160 tokens per parameter (the optimum grows
  with compute at this scale), and this centre keeps them inside every curve while the smallest
  budget's smallest model is still the smallest shape there is (1 layer, d_model 16: 3,120);
- a fixed batch of 8 sequences (1,024 tokens): the batch rule's larger batches leave the big
  models of such tiny budgets ~110 optimiser steps, which cost them 0.1+ nats and pushed the
  minima to the smallest models; with 8, the largest model of the 6e11 budget takes 423 steps
  instead of 106 (every run takes at least 117);
- 16K held-out tokens per evaluation (evaluating costs a third of a training token per token, and
  the default 64K would add 20-60% to the smallest runs);
- 2 workers: a run keeps about one core busy (88% CPU measured), so two runs at once use both.

Measured on 2 idle CPU cores (2 workers): 5.8 min wall and 10.4 CPU-minutes with an empty
compilation cache, 5.2 min when the shapes are already compiled (14.7 min before the CPU speed-ups
of issue 6, with other jobs loading the machine). Every IsoFLOP curve has an interior minimum;
the best loss per budget is 3.22, 3.06, 2.92, 2.73 nats; approach 3 gives a = 0.24 (approach 2:
0.33, approach 1: 0.26), 40 -> 160 tokens per parameter across the budgets, E = 2.14 nats against
the source's exact floor of 0.917 (the floor is far below anything these budgets reach).

The `sweep` keys are documented in experiments/base.py (`sweep_section`).
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "default_sweep"
  c.train.batch_size = 8
  c.train.eval_tokens = 16_384
  c.sweep = base.sweep_section(budgets=(4e10, 1e11, 2.4e11, 6e11), tokens_per_param=30.0,
                               workers=2)
  return c
