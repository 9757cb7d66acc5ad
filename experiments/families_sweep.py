"""The default IsoFLOP sweep, once per model family on the same data, to compare their laws.

A sweep trains one family (model.family), so each family sweeps into its own directory, and
analysis/families.py then puts the three frontiers side by side:

  for family in decoder encoder encoder_decoder; do
    python sweep.py --config experiments/families_sweep.py --config.model.family=$family \\
        --workdir sweeps/families/$family
  done
  python -m analysis.families --results sweeps/families/*/results.csv --out sweeps/families

What is held equal: the data (the default synthetic source, the same train order and the same eval
sequences), the budgets (counted FLOPs: each family's runs spend them, whatever its FLOPs per
token) and the ladder of sizes,
the sizing rule of model/sizing.py (the encoder-decoder gets equal encoder and decoder stacks), and
the hyperparameter rules of N (model/recipe.py). What differs is only the family and its objective
(model/objectives.py); every loss is a mean per target token of that objective, so the fitted laws
are comparable, though their E are the floors of different tasks.

The sweep is the default one (experiments/default_sweep.py: a branch sweep of budgets 8e10..1.2e12
counted FLOPs, 5 sizes 2x apart around 30 tokens per parameter, batches of 8 sequences, 2 workers)
with one seed instead of two, so the decoder's runs are the default sweep's seed-0 runs. Its
smallest size on the smallest budget (3.1e3 parameters) is below the smallest encoder-decoder
(1 + 1 layers of width 16: 7,280), so that family has 4 sizes there.
"""
from experiments import default_sweep


def get_config():
  c = default_sweep.get_config()
  c.name = "families_sweep"
  c.sweep.seeds = ()
  return c
