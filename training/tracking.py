"""Tracking a run: metrics.jsonl (the authoritative record) mirrored to W&B (training/wandb_run.py),
and the progress bar (tokens/s and MFU are training/mfu.py's)."""
import json
import weakref

import jax

from core import files, rundir


class MetricsLog:
  """One model's metrics.jsonl, mirrored to its W&B run (a wandb_run.Tracker) when there is one;
  a context manager that ends the W&B run with exit code 1 on an error."""

  def __init__(self, workdir: str | None, resumed_step: int, wandb_run):
    """workdir None: a process that is not the primary keeps the last row but writes nothing."""
    self.last_row, self.file, self.wandb_run = {}, None, wandb_run
    if workdir is None:
      return
    path = rundir.path(workdir, rundir.METRICS)
    # Rows past the checkpoint we resume from (and any line cut short by a crash) are dropped and
    # rewritten by the resumed run.
    kept = [row for row in rundir.read_metrics(workdir) if row.get("step", 0) <= resumed_step]
    files.write_jsonl_atomic(path, kept)
    self.last_row = kept[-1] if kept else {}
    self.file = open(path, "a")
    if self.wandb_run is not None:  # W&B may have lost them with a killed segment
      for row in kept:
        self.wandb_run.log(row)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    self.close(exit_code=1 if exc_type else 0)

  def write(self, row: dict) -> None:
    self.last_row = row
    if self.file is not None:
      try:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
      except OSError as error:  # a full disk: say which file (a rerun drops the torn line)
        error.filename = error.filename or self.file.name
        raise
    if self.wandb_run is not None:
      self.wandb_run.log(row)

  def summarise(self, result: dict) -> None:
    """The run's final figures (result.json's scalars) in the W&B run's summary."""
    if self.wandb_run is not None:
      self.wandb_run.summarise(result)

  def close(self, exit_code: int = 0):
    """Ends the file and the W&B run (exit code rundir.EXIT_PREEMPTED: preempted by SIGTERM)."""
    if self.file is not None:
      self.file.close()
      self.file = None
    if self.wandb_run is not None:
      self.wandb_run.finish(exit_code)
      self.wandb_run = None


_bars = weakref.WeakSet()  # the progress bars still open


def progress_bar(total_steps: int, first_step: int):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=total_steps, initial=first_step, unit="step", mininterval=1.0,
             disable=jax.process_index() != 0, dynamic_ncols=True)
  _bars.add(bar)
  return bar


def close_progress_bars() -> None:
  """Ends the bars an error left open, so that the error's line is the last one printed (rather
  than the bar, redrawn as the process exits)."""
  for bar in list(_bars):
    bar.close()
