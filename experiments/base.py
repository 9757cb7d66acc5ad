"""The base config every experiment starts from: core/defaults.py's, re-exported so experiment
files keep `from experiments import base`. The keys and their meanings are documented there."""
from core import defaults


def get_config():
  return defaults.get_config()  # looked up at call time, so a patched default reaches experiments


sweep_section = defaults.sweep_section
finetune_sweep_section = defaults.finetune_sweep_section
