"""The Slurm executor's file: DIR/sweep.sbatch, one array task per plan row (`sweep.py --row K`)."""
import os
import shlex
import sys

from core import files
from sweeps import ROOT


def write_sbatch(sweep_dir: str, config_path: str, config, rows) -> str:
  sweep_dir, config_path = os.path.abspath(sweep_dir), os.path.abspath(config_path)
  row_command = shlex.join([sys.executable, os.path.join(ROOT, "sweep.py"), "--config",
                            config_path, "--workdir", sweep_dir, "--row"])
  collect_command = shlex.join(["python", "sweep.py", "--config", config_path, "--workdir",
                                sweep_dir, "--executor", "slurm"])
  options = "".join(f"#SBATCH {option}\n" for option in config.sweep.sbatch)
  script = f"""#!/bin/bash
# Sweep {config.name}: one Slurm array task per row of {sweep_dir}/plan.csv ({len(rows)} rows).
# Submit with `sbatch {sweep_dir}/sweep.sbatch`. Each task runs `sweep.py --row $SLURM_ARRAY_TASK_ID`,
# which trains that row into {sweep_dir}/runs/RUN_ID: a finished row exits at once and an interrupted
# one resumes from its checkpoint, so resubmitting the script (or requeueing a task) is safe.
# When the array is done, collect results.csv and the analysis with:
#   {collect_command}
#
# Multi-node runs (one model on several nodes): raise --nodes and set --ntasks-per-node to the
# GPUs per node (one JAX process per GPU), set sweep.devices to the total GPU count so batches are
# planned as its multiples, and keep the `srun` below: every task then runs the row, train.py
# calls jax.distributed.initialize() because SLURM_NTASKS > 1 (JAX reads the coordinator, process
# count and process id from Slurm's environment), and the data-parallel mesh spans all processes.
#SBATCH --job-name={config.name}
#SBATCH --array=0-{len(rows) - 1}
#SBATCH --output={sweep_dir}/slurm/%A_%a.out
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
{options}
set -euo pipefail
cd {shlex.quote(ROOT)}
srun {row_command} "$SLURM_ARRAY_TASK_ID"
"""
  os.makedirs(os.path.join(sweep_dir, "slurm"), exist_ok=True)
  path = os.path.join(sweep_dir, "sweep.sbatch")
  files.write_atomic(path, script)
  print(f"wrote {path} ({len(rows)} array tasks); submit it with:\n  sbatch {path}")
  return path
