"""The base config every experiment starts from: core/defaults.py's, re-exported so experiment
files keep `from experiments import base`; the keys and their meanings are documented there. A
sweep's section comes from its kind (sweeps/kinds/), which documents its keys."""
from core import defaults


def get_config():
  return defaults.get_config()  # looked up at call time, so a patched default reaches experiments


def sweep_section(**values):
  """The `sweep` section of a pre-training sweep config, kind isoflop (model sizes per compute
  budget) or grid (every n_params x tokens); its keys are documented in sweeps/plan.py."""
  from sweeps import kinds  # pylint: disable=g-import-not-at-top  (sweeps imports core, not this)
  return kinds.section(**{"kind": "isoflop", **values})


def finetune_sweep_section(**values):
  """The `sweep` section of a fine-tuning sweep; its keys are documented in sweeps/kinds/finetune.py."""
  from sweeps import kinds  # pylint: disable=g-import-not-at-top  (sweeps imports core, not this)
  return kinds.section("finetune", **values)
