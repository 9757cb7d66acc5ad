"""Fine-tuning at scale: full fine-tuning and LoRA at two ranks, from base models of three sizes,
at four fine-tuning budgets, on a related synthetic language (sweeps/kinds/finetune.py plans it).

  python sweep.py --config experiments/finetune_sweep.py [--workdir DIR]
  python sweep.py --config experiments/finetune_sweep.py --config.sweep.base_sweep=PRETRAINING_DIR

Base models: the completed decoder runs of the pre-training sweep named by sweep.base_sweep, one
per size; by default DIR/base, trained first from experiments/finetune_base_sweep.py (12K, 28K and
99K parameters on 2M tokens) and found complete when the sweep is rerun.

Fine-tuning data: the synthetic language with 512 new topics (new chains over the same 64 tokens,
the same construction) taking half the topic mixture, so half the fine-tuning sequences come from
topics the base never saw; its exact floor is known as the original's is (data/synthetic.py).
Forgetting is measured on the original language's eval sequences, before and after.

Runs: every base x D_f in (125K, 250K, 500K, 1M) tokens x (full, LoRA r = 2, LoRA r = 8; alpha = r,
adapters on every attention and MLP matrix): 36 runs. Peak learning rates are the base run's
times 1 (full) and 3 (LoRA), the better of the scales tried. Warmup and cosine decay follow the
rules for each run's own D_f; batches of 8 as the base sweep.

`python -m analysis.finetune` then fits L(N, D_f) = A N^-alpha D_f^-beta + E per method (Zhang et
al. 2024) and writes the cost and forgetting tables and the plots into DIR/analysis.

The lrs tried, the wall time (minutes on 2 CPU cores) and the results:
docs/results/2026-11-27-finetune-sweep.md.
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "finetune_sweep"
  c.train.batch_size = 8
  c.train.eval_tokens = 16_384
  c.data.synthetic.new_topics = 512
  c.data.synthetic.new_topic_weight = 0.5
  c.sweep = base.finetune_sweep_section(tokens=(1.25e5, 2.5e5, 5e5, 1e6), lora_ranks=(2, 8),
                                        full_lr_scale=1.0, lora_lr_scale=3.0, workers=2)
  return c
