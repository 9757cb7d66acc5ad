"""The local executor's progress line: runs done and left, FLOPs done and left, and the time left
estimated from the runs this sweep has trained so far (`time_left`, a pure function).

On a terminal the line is rewritten in place (the start and end lines of runs print above it);
otherwise, as in a log file, each new state is a plain line of its own.
"""
import sys

from sweeps import branches

# A job is one train.py process: a run, or a group of replicas trained together.


def job_flops(job) -> float:
  """The counted FLOPs a job's process trains (a branch: its cooldown only)."""
  return sum(row.flops * branches.trained_fraction(row) for row in job)


def fit_cost(finished: list[tuple[float, float]]) -> tuple[float, float]:
  """(seconds of fixed cost per job, seconds per FLOP) fitted to the (FLOPs, wall seconds) of the
  jobs finished so far: least squares of seconds = fixed + FLOPs x rate, with the fixed cost at
  least 0; with one job, or jobs of one size, all of their time is rate (no fixed cost)."""
  n = len(finished)
  mean_f = sum(f for f, _ in finished) / n
  mean_t = sum(t for _, t in finished) / n
  spread = sum((f - mean_f) ** 2 for f, _ in finished)
  if spread > 0:
    rate = sum((f - mean_f) * (t - mean_t) for f, t in finished) / spread
    fixed = mean_t - rate * mean_f
    if fixed >= 0 and rate > 0:
      return fixed, rate
    if rate <= 0:  # time does not grow with FLOPs here: all of it is the fixed cost
      return mean_t, 0.0
  return 0.0, sum(t for _, t in finished) / sum(f for f, _ in finished)


def time_left(finished: list[tuple[float, float]], left: list[tuple[float, float]],
              workers: int) -> float | None:
  """Seconds until the jobs of `left`, (FLOPs, seconds already spent: 0 for one not started),
  are trained, each costing fit_cost's fixed cost plus its FLOPs at its rate less what it has
  spent, shared by `workers` (but never less than the longest job left). None until a job has
  finished (nothing to estimate from); 0 when nothing is left."""
  if not left:
    return 0.0
  if not finished or sum(f for f, _ in finished) <= 0:
    return None
  fixed, rate = fit_cost(finished)
  remaining = [max(0.0, fixed + flops * rate - spent) for flops, spent in left]
  return max(sum(remaining) / max(1, min(workers, len(remaining))), max(remaining))


def duration(seconds: float | None) -> str:
  if seconds is None:
    return "time left unknown until a run finishes"
  if seconds < 90:
    return f"about {seconds:.0f} s left"
  if seconds < 5400:
    return f"about {seconds / 60:.0f} min left"
  return f"about {seconds / 3600:.1f} h left"


def line(runs_done: int, runs_left: int, training: int, flops_done: float, flops_left: float,
         seconds_left: float | None, estimated_from: int, elsewhere: int = 0) -> str:
  """The progress line's text; `elsewhere`: runs another process holds (not counted as done)."""
  return (f"progress: {runs_done} of {runs_done + runs_left + elsewhere} runs done, {runs_left} "
          "left" + (f" ({training} training)" if training else "")
          + (f", {elsewhere} in other processes" if elsewhere else "")
          + f"; {flops_done:.3g} of {flops_done + flops_left:.3g} FLOPs done, {flops_left:.3g} "
          f"left; {duration(seconds_left)}"
          + (f" (from {estimated_from} run{'s' * (estimated_from > 1)} so far)"
             if seconds_left and estimated_from else ""))


class Progress:
  """Prints the executor's lines (`say`) and its progress line (`show`): in place on a tty."""

  def __init__(self, stream=None):
    self.stream = stream or sys.stdout
    self.tty = self.stream.isatty()
    self.shown = ""

  def _clear(self):
    if self.tty and self.shown:
      self.stream.write("\r\033[K")

  def say(self, text: str) -> None:
    self._clear()
    self.stream.write(text + "\n")
    if self.tty and self.shown:
      self.stream.write(self.shown)
    self.stream.flush()

  def show(self, text: str) -> None:
    if text == self.shown:
      return
    self._clear()
    self.shown = text
    self.stream.write(text if self.tty else text + "\n")
    self.stream.flush()

  def close(self) -> None:
    if self.tty and self.shown:
      self.stream.write("\n")
      self.stream.flush()
    self.shown = ""
