"""An IsoFLOP sweep for one GPU: budgets 1e15..1e18 FLOPs (C = 6ND), models ~1M..300M non-embedding.

  python sweep.py --config experiments/gpu_sweep.py --dry-run     # the plan and a measured wall time
  python sweep.py --config experiments/gpu_sweep.py               # train, then analyse

4 budgets x 5 sizes spread 16x around Chinchilla's N = sqrt(C/120): at 1e18 the curve runs from
23M to 365M parameters on 1.8B tokens at its centre. The sweep spends about 5.6e18 FLOPs (6ND,
dominated by the top budget): some 8 hours on one H100 at 20% MFU, a quarter of that for the
three smaller budgets alone (--config.sweep.budgets="(1e15,1e16,1e17)"). `--dry-run` measures it.

Data: the synthetic language (no download, unlimited tokens, an exactly known loss floor for the
fitted E to be checked against), made harder than the CPU default (4,096 topics instead of 512) so
that the largest models still have a Zipf tail to learn, with 512-token contexts. For text, add
  --config.data.source=tfds --config.data.tfds_name=lm1b --config.data.tokenizer=sentencepiece
(tfds prepares lm1b once, which needs the network) or --config.data.source=text --config.data.path=DIR.
Batch size, learning rate and warmup follow the rules of N in model/recipe.py; bfloat16 compute.
On a Slurm cluster: --executor slurm and --config.sweep.sbatch="('--gpus-per-node=1','--time=12:00:00')".
"""
from experiments import base


def get_config():
  c = base.get_config()
  c.name = "gpu_sweep"
  c.data.synthetic.n_topics = 4096
  c.train.seq_len = 512
  c.train.eval_tokens = 262_144
  # Budgets as 6ND (N non-embedding), the convention the figures above were planned and measured in.
  c.sweep = base.sweep_section(budgets=(1e15, 1e16, 1e17, 1e18), flops="6nd")
  return c
