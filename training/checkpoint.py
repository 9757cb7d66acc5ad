"""The train state's orbax checkpoints: the state plus a little JSON metadata, saved asynchronously.

Saves are asynchronous (training continues while the files are written) and always awaited before
the process exits: an async save still in flight at exit is lost. A save cut short by a kill leaves
a `*.orbax-checkpoint-tmp*` directory that `latest_step()` ignores, so resuming uses the previous one.
Reading a trained model's parameters for inference is model/loading.py's job.
"""
import contextlib
import os

import orbax.checkpoint as ocp

from core import rundir


@contextlib.contextmanager
def manager(workdir: str, keep: int, keep_steps=()):
  """An orbax CheckpointManager for RUN_DIR/checkpoints, waited for and closed on exit. It keeps
  the newest `keep` checkpoints and every one at `keep_steps` (a trunk's branch points)."""
  policies = [ocp.checkpoint_managers.LatestN(max(1, keep))]
  if keep_steps:
    policies.append(ocp.checkpoint_managers.CustomSteps(list(keep_steps)))
  options = ocp.CheckpointManagerOptions(
      enable_async_checkpointing=True, create=True,
      preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies))
  mgr = ocp.CheckpointManager(os.path.abspath(rundir.path(workdir, rundir.CHECKPOINTS)),
                              options=options)
  try:
    yield mgr
  finally:
    mgr.wait_until_finished()
    mgr.close()


def save(mgr: ocp.CheckpointManager, step: int, state, meta: dict) -> None:
  """Saves the train state and `meta` (host-side counters the run needs to resume exactly)."""
  mgr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"step": step, **meta})))


def restore_latest(mgr: ocp.CheckpointManager, abstract_state):
  """(state, meta) from the newest complete checkpoint onto the given shardings, or (None, {})."""
  step = mgr.latest_step()
  if step is None:
    return None, {}
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return restored["state"], restored["meta"]
