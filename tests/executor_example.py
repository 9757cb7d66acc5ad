"""A test-only executor added in one module (`--executor executor_example`): it trains the plan's
rows here, one process at a time, through the local executor's runner, and says which it ran."""
from core import rundir
from sweeps.executors import Outcome
from sweeps.local import execute_local


def execute(rows, sweep_dir, config_path, config, workers, wait) -> Outcome:
  del config, workers, wait  # one at a time, and it always waits
  outcome = execute_local(rows, sweep_dir, config_path, 1)
  return Outcome({"example_executor": [row.run_id for row in rows]},
                 failed=rundir.FAILED in outcome["statuses"].values(), signal=outcome["signal"])
