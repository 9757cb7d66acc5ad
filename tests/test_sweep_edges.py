"""Typed plan rows and their dependency edges (sweeps/rows.py, sweeps/deps.py): plan.csv gives back
equal rows, and the edges drive the local ready queue, Slurm's afterok order and agent rows' wait."""
import csv
import dataclasses
import itertools
import json
import os

from conftest import ROOT
from core.config import load_config
from sweeps import deps, kinds, local, locks, slurm
from sweeps.processes import run_dir_of
from sweeps.rows import TRUNK, Dependency, PlanRow, by_id, read_plan, write_plan

DEFAULT = os.path.join(ROOT, "experiments", "default_sweep.py")
MICRO = ["--config.train.seq_len=16", "--config.train.batch_size=4", "--config.wandb.mode=disabled",
         "--config.sweep.kind=grid", "--config.sweep.n_params=(3e3, 2e4)",
         "--config.sweep.tokens=(1280, 2560, 5120)", "--config.sweep.branches=True",
         "--config.train.schedule=wsd", "--config.sweep.seeds=(0, 1)"]


def branch_plan():
  return kinds.plan_sweep(load_config(DEFAULT, MICRO), MICRO)


def test_plan_csv_gives_back_equal_rows_for_every_column(tmp_path):
  rows = branch_plan() + kinds.plan_sweep(load_config(DEFAULT, MICRO[:3]), MICRO[:3])
  assert {row.kind for row in rows} == {"", TRUNK} and any(row.budget for row in rows)
  assert any(row.group for row in rows) and all(row.after for row in rows if row.trunk)
  write_plan(str(tmp_path), rows)
  assert read_plan(str(tmp_path)) == rows
  types = lambda row: [type(getattr(row, field.name)) for field in dataclasses.fields(PlanRow)]
  back = read_plan(str(tmp_path))
  assert [types(row) for row in back] == [types(row) for row in rows]  # every column typed back
  for row in back:
    assert row.after == ((Dependency(row.trunk, row.branch_step),) if row.trunk else ())
    assert all(type(dep.step) is int for dep in row.after)


def test_a_plan_csv_written_before_the_edges_reads_them_from_trunk_and_branch_step(tmp_path):
  rows = branch_plan()
  write_plan(str(tmp_path), rows)
  with open(tmp_path / "plan.csv", newline="") as f:
    cells = list(csv.DictReader(f))
  with open(tmp_path / "plan.csv", "w", newline="") as f:  # the old columns: no `after`
    writer = csv.DictWriter(f, [column for column in cells[0] if column != "after"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(cells)
  assert read_plan(str(tmp_path)) == rows


def checkpoint(sweep_dir, row, step):
  os.makedirs(os.path.join(run_dir_of(sweep_dir, row), "checkpoints", str(step)), exist_ok=True)


def trunk_and_branch():
  trunk = PlanRow("trunk_a", kind=TRUNK, steps=64)
  branch = PlanRow("run_b", row=1, steps=80, trunk="trunk_a", branch_step=32,
                   after=(Dependency("trunk_a", 32),))
  return trunk, branch


def test_the_edges_drive_the_local_ready_queue(tmp_path):
  sweep_dir = str(tmp_path)
  trunk, branch = trunk_and_branch()
  rows = [trunk, branch]
  # The trunk is still to train here: the branch waits, its trunk goes first.
  assert local.next_ready(sweep_dir, rows, [[branch], [trunk]], {}) == [trunk]
  assert local.next_ready(sweep_dir, rows, [[branch]], {1: (None, [trunk])}) is None
  checkpoint(sweep_dir, trunk, 16)
  assert local.next_ready(sweep_dir, rows, [[branch]], {1: (None, [trunk])}) is None
  checkpoint(sweep_dir, trunk, 32)  # the edge is met: the branch may start, seeded from it
  assert local.next_ready(sweep_dir, rows, [[branch]], {1: (None, [trunk])}) == [branch]
  # A trunk nobody trains any more (ended short of the step) breaks the edge: train alone.
  other = dataclasses.replace(branch, run_id="run_c", branch_step=48,
                              after=(Dependency("trunk_a", 48),))
  assert deps.state(sweep_dir, other, by_id(rows), lambda run_id: False) == deps.BROKEN
  assert local.next_ready(sweep_dir, [trunk, other], [[other]], {}) == [other]
  # A trunk is trained while a branch without checkpoints of its own waits on it.
  assert deps.needed(sweep_dir, trunk, [trunk, other])
  assert not deps.needed(sweep_dir, trunk, [trunk, branch])


def test_the_edges_order_the_slurm_arrays(monkeypatch, capsys):
  submitted, job_ids = [], itertools.count(101)

  def submit_array(script, task_ids, after=()):
    submitted.append((sorted(task_ids), tuple(after)))
    return str(next(job_ids))

  monkeypatch.setattr(slurm, "submit_array", submit_array)
  rows = branch_plan()
  trunk_job = slurm.submit_in_order("sweep.sbatch", rows, {"jobs": []}, set())[0]
  trunk_rows = [row for row in rows if row.kind == TRUNK]
  (trunks, after), *stages = submitted
  assert after == () and trunks == sorted(slurm.array_tasks(trunk_rows))
  assert len(trunk_rows) == 4 and len(trunks) == 2  # 2 sizes x 2 seeds, a group per size
  for tasks, after in stages:  # each array after the array task training its branches' trunks
    assert len(after) == 1 and after[0].startswith(f"{trunk_job}_")
  assert sorted(t for tasks, _ in stages for t in tasks) == sorted(
      slurm.array_tasks([row for row in rows if row.kind != TRUNK]))
  # A chain a <- b <- c: three arrays, each after the one before.
  chain = [PlanRow("a"), PlanRow("b", row=1, after=(Dependency("a", 1),)),
           PlanRow("c", row=2, after=(Dependency("b", 1),))]
  submitted.clear()
  slurm.submit_in_order("sweep.sbatch", chain, {"jobs": []}, set())
  assert submitted == [([0], ()), ([1], ("104_0",)), ([2], ("105_1",))]
  # A dependency queued by an earlier submission: its task is the one waited for.
  record = {"jobs": [{"job_id": "99", "tasks": {"0": ["a"]}}]}
  submitted.clear()
  slurm.submit_in_order("sweep.sbatch", chain[1:], record, {"a"})
  assert submitted == [([1], ("99_0",)), ([2], ("107_1",))]
  capsys.readouterr()


def test_an_agent_row_waits_on_its_edge_or_trains_the_dependency(tmp_path):
  """sweeps/task.py's wait (deps.wait_for), with the sleep stood in for: no clock in the test."""
  sweep_dir = str(tmp_path)
  trunk, branch = trunk_and_branch()
  rows_by_id = by_id([trunk, branch])
  trained, sleeps = [], []

  def never_train(row):
    raise AssertionError(f"{row.run_id} is trained elsewhere")

  # Another live process (this one) holds the trunk: wait; it reaches the step meanwhile.
  trunk_dir = run_dir_of(sweep_dir, trunk)
  os.makedirs(trunk_dir)
  with open(os.path.join(trunk_dir, locks.LOCK_NAME), "w") as f:
    json.dump(locks.lock_record(os.getpid()), f)

  def sleep(seconds):
    sleeps.append(seconds)
    if len(sleeps) == 2:
      checkpoint(sweep_dir, trunk, 32)

  assert deps.wait_for(sweep_dir, branch, rows_by_id, never_train, sleep) == (deps.READY, 0)
  assert sleeps == [deps.WAIT_POLL_S] * 2
  # Nobody trains it: this process trains it first (once), then the edge is met.
  os.remove(os.path.join(trunk_dir, locks.LOCK_NAME))
  other = dataclasses.replace(branch, run_id="run_c", after=(Dependency("trunk_a", 48),))

  def train(row):
    trained.append(row.run_id)
    checkpoint(sweep_dir, row, 48)
    return 0

  assert deps.wait_for(sweep_dir, other, rows_by_id, train, sleep) == (deps.READY, 0)
  assert trained == ["trunk_a"] and len(sleeps) == 2
  # Trained here and still short of the step (it diverged): broken, the row trains alone; a
  # dependency stopped by a signal stops the row with its exit code.
  late = dataclasses.replace(branch, run_id="run_d", after=(Dependency("trunk_a", 60),))
  assert deps.wait_for(sweep_dir, late, rows_by_id, lambda row: 0, sleep) == (deps.BROKEN, 0)
  assert deps.wait_for(sweep_dir, late, rows_by_id, lambda row: 143, sleep) == (deps.WAIT, 143)
