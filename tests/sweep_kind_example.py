"""A sweep kind of the tests' own, registered on import (tests/test_sweep_kinds.py): one model size
at several token budgets; its analysis writes each budget's final loss to DIR/analysis/example.json."""
import os

from core import files, rundir
from core.config import ConfigError
from sweeps import kinds, plan

KEYS = dict(n_params=3e3, tokens=(1280, 2560))


def check(config) -> None:
  if not config.sweep.tokens:
    raise ConfigError("sweep.kind=example needs sweep.tokens")


def plan_example(config, overrides, sweep_dir, workers, may_train):
  del workers, may_train
  run_overrides = plan.run_overrides_of(config, overrides, sweep_dir)
  return plan.numbered([plan.plan_run(config, config.sweep.devices, run_overrides,
                                      config.sweep.n_params, tokens=tokens).row
                        for tokens in config.sweep.tokens])


def analyse(sweep_dir, rows, results, config):
  del rows, config
  losses = {str(result["tokens"]): result["final_eval_loss"] for result in results
            if result["status"] == rundir.COMPLETED}
  path = os.path.join(sweep_dir, "analysis", "example.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  files.write_json_atomic(path, losses)
  print(f"example analysis: {path}")
  return {"example": path, "losses": losses}


kinds.register(kinds.SweepKind("example", KEYS, check, plan_example, analyse))
