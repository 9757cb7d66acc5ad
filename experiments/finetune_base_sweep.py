"""The pre-training sweep experiments/finetune_sweep.py fine-tunes when it is given no other.

Three sizes (12K, 28K and 99K non-embedding parameters) each pre-trained on 2M tokens of the
synthetic source, batches of 8 sequences and 16K held-out tokens per evaluation as in
experiments/default_sweep.py, with the rules of N for everything else. Trained into
DIR/base of the fine-tuning sweep by sweeps/kinds/finetune.py; on its own:

  python sweep.py --config experiments/finetune_base_sweep.py --workdir DIR
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "finetune_base_sweep"
  c.train.batch_size = 8
  c.train.eval_tokens = 16_384
  c.sweep = base.sweep_section(kind="grid", n_params=(1e4, 3e4, 1e5), tokens=(2e6,), workers=2)
  return c
