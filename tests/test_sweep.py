"""sweep.py and sweeps/: plan math, the lock, collection, the Slurm and W&B files, and real local sweeps
(a sweep killed with SIGKILL mid-way and rerun, a run locked by a live process)."""
import csv
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

import sweep
import train
from conftest import ROOT, with_fault
from core import files, rundir
from core.config import COMPILATION_CACHE_ENV, ConfigError, load_config
from sweeps import collect, estimate, kinds, locks, processes, slurm, tables, wandb_agents
from sweeps import branches, plan as sweep_plan, rows as plan_rows
from sweeps.kinds import isoflop
from sweeps.rows import PlanRow
from training import plan as plan_lib

DEFAULT = os.path.join(ROOT, "experiments", "default_sweep.py")
# Micro runs: the smallest shape, 16-token sequences, batches of 4 (64 tokens per step).
# Independent cosine runs of one seed, whatever the default sweep's own choices.
MICRO = ["--config.train.seq_len=16", "--config.train.batch_size=4", "--config.train.eval_tokens=256",
         "--config.train.log_every=10", "--config.wandb.mode=disabled", "--config.sweep.kind=grid",
         "--config.sweep.n_params=(3e3,)", "--config.train.schedule=cosine",
         "--config.sweep.branches=False", "--config.sweep.seeds=()"]
SHORT, LONG = 64 * 20, 64 * 4000  # run 0: 20 steps; run 1: 4000 steps, to be killed in


def micro_config(*overrides):
  overrides = MICRO + list(overrides)
  return load_config(DEFAULT, overrides), overrides


def sweep_command(workdir, *extra):
  return [sys.executable, "sweep.py", "--config", DEFAULT, "--workdir", str(workdir), *MICRO, *extra]


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def write_result(run_dir, **fields):
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "result.json"), "w") as f:
    json.dump(fields, f)


# ------------------------------------------------------------------------------------ plan math

def test_isoflop_sizes_are_log_spaced_around_the_chinchilla_optimum():
  sizes = isoflop.isoflop_sizes(1.2e12, 5, 16.0)
  centre = math.sqrt(1.2e12 / 120)  # 20 tokens per parameter with C = 6ND
  assert math.prod(sizes) ** (1 / 5) == pytest.approx(centre)
  assert sizes[-1] / sizes[0] == pytest.approx(16.0)
  ratios = [b / a for a, b in zip(sizes, sizes[1:])]
  assert ratios == pytest.approx([2.0] * 4)
  assert isoflop.isoflop_sizes(6e10, 1, 4.0, tokens_per_param=5) == pytest.approx([math.sqrt(2e9)])


def test_isoflop_plan_spends_each_budget_in_whole_batches():
  budgets = (2e10, 1e11)
  config, overrides = micro_config("--config.sweep.kind=isoflop", "--config.sweep.span=8.0",
                                   f"--config.sweep.budgets={budgets}",
                                   "--config.sweep.sizes_per_budget=4", "--config.sweep.flops=6nd")
  rows = kinds.plan_sweep(config, overrides)
  assert [row.row for row in rows] == list(range(len(rows)))
  for budget in budgets:
    curve = [row for row in rows if row.budget == budget]
    assert len(curve) == 4
    for row in curve:
      tokens_per_step = row.tokens // row.steps
      assert row.tokens % tokens_per_step == 0 and tokens_per_step == 4 * 16
      # D = C / 6N rounded to whole batches: 6ND is within half a batch of the budget.
      assert abs(row.flops_6nd - budget) <= 3 * row.n_params * tokens_per_step
      assert row.flops_6nd == 6 * row.n_params * row.tokens
      assert row.flops > row.flops_6nd  # counted FLOPs add attention and the logits
      assert row.run_id.startswith(f"n{sweep_plan.short(row.n_params)}_d{sweep_plan.short(row.tokens)}_")
    # Spread around sqrt(C/120) (within the sizing rule's rounding of small shapes).
    n = [row.n_params for row in curve]
    assert math.prod(n) ** (1 / 4) == pytest.approx(math.sqrt(budget / 120), rel=0.35)
    assert n == sorted(n) and n[-1] / n[0] > 4
  # The overrides give train.py exactly the planned run: its hash is the run id's suffix.
  row = rows[0]
  run_config = load_config(DEFAULT, list(row.overrides))
  resolved, _, _, plan = plan_lib.resolve(run_config, 1)
  assert row.run_id.endswith(plan_lib.config_hash(resolved))
  assert (plan.n_params, plan.tokens) == (row.n_params, row.tokens)
  assert "--config.wandb.group=default_sweep" in row.overrides
  assert not any(o.startswith("--config.sweep.") for o in row.overrides)


def test_counted_budgets_equal_the_counted_flops_of_every_run_within_one_batch():
  budgets = (2e10, 1e11)
  config, overrides = micro_config("--config.sweep.kind=isoflop", "--config.sweep.span=8.0",
                                   f"--config.sweep.budgets={budgets}",
                                   "--config.sweep.sizes_per_budget=4")
  assert config.sweep.flops == "counted"  # the default
  rows = kinds.plan_sweep(config, overrides)
  for row in rows:
    tokens_per_step = row.tokens // row.steps
    flops_per_token = row.flops / row.tokens
    assert abs(row.flops - row.budget) <= flops_per_token * tokens_per_step / 2
    assert row.flops > row.flops_6nd
  # The result a run writes counts the same FLOPs: D x the model's counted FLOPs per token.
  run_config = load_config(DEFAULT, list(rows[0].overrides))
  _, _, _, plan = plan_lib.resolve(run_config, 1)
  assert plan.flops_per_token * plan.tokens == pytest.approx(rows[0].flops)


def test_ladder_sizes_are_shared_rungs_around_each_budgets_centre():
  low = isoflop.ladder_sizes(4e10, 5, 16.0, tokens_per_param=30)
  high = isoflop.ladder_sizes(6e11, 5, 16.0, tokens_per_param=30)
  for sizes, budget in ((low, 4e10), (high, 6e11)):
    assert [b / a for a, b in zip(sizes, sizes[1:])] == pytest.approx([2.0] * 4)
    assert all(math.log2(n) == pytest.approx(round(math.log2(n))) for n in sizes)  # rungs 2^j
    centre = math.sqrt(budget / 180)
    assert sizes[0] < centre < sizes[-1] and 0.5 < math.prod(sizes) ** 0.2 / centre < 2
  assert set(low) & set(high)  # budgets reuse sizes


def test_branch_plan_has_one_trunk_per_size_and_a_cooldown_branch_per_budget():
  config, overrides = micro_config("--config.sweep.n_params=(3e3, 2e4)",
                                   "--config.sweep.tokens=(1280, 2560, 5120)",
                                   "--config.sweep.branches=True", "--config.train.schedule=wsd")
  rows = kinds.plan_sweep(config, overrides)
  trunks = [row for row in rows if row.kind == "trunk"]
  runs = [row for row in rows if row.kind != "trunk"]
  assert len(trunks) == 2 and len(runs) == 6
  for trunk in trunks:
    branches_ = [row for row in runs if row.trunk == trunk.run_id]
    assert sorted(row.tokens for row in branches_) == [1280, 2560, 5120]
    # The trunk runs to its longest branch's cooldown and keeps a checkpoint at every branch step.
    assert trunk.steps == max(row.branch_step for row in branches_)
    assert f"checkpoint_steps={tuple(sorted(row.branch_step for row in branches_))}" in (
        shlex.join(trunk.overrides).replace("'", ""))
    for row in branches_:  # 20% cooldowns: branch at 80% of each budget's steps
      assert row.branch_step == row.steps - round(0.2 * row.steps)
      # A branch and its trunk share the warmup and batch of the shortest branch.
      warmup = [o for o in row.overrides if "warmup_tokens" in o]
      assert warmup and warmup[0] in trunk.overrides
  cost = branches.cost(rows)
  independent = sum(row.flops for row in runs)
  assert cost["flops_independent"] == pytest.approx(independent)
  # Per size: a trunk of 0.8 x 5120 tokens + cooldowns of 0.2 x (1280 + 2560 + 5120) = 0.6 x 8960.
  assert cost["ratio"] == pytest.approx((0.8 * 5120 + 0.2 * 8960) / 8960, rel=0.02)
  with pytest.raises(ConfigError, match="schedule=wsd"):
    kinds.plan_sweep(*micro_config(f"--config.sweep.tokens=({SHORT},)",
                                        "--config.sweep.branches=True"))


def test_runs_share_the_compilation_cache_of_their_sweep_directory(tmp_path, monkeypatch):
  monkeypatch.delenv(COMPILATION_CACHE_ENV)  # the test session's own cache (conftest.py)
  config, overrides = micro_config(f"--config.sweep.tokens=({SHORT},)")
  (row,) = kinds.plan_sweep(config, overrides, str(tmp_path))
  assert f"--config.train.compilation_cache={tmp_path / 'compilation_cache'}" in row.overrides
  elsewhere, overrides = micro_config(f"--config.sweep.tokens=({SHORT},)",
                                      "--config.train.compilation_cache=/cache")
  (row_elsewhere,) = kinds.plan_sweep(elsewhere, overrides, str(tmp_path))
  assert "--config.train.compilation_cache=/cache" in row_elsewhere.overrides
  assert str(tmp_path) not in " ".join(row_elsewhere.overrides)
  assert row_elsewhere.run_id == row.run_id  # where programs are cached is not the run's


def test_grid_plan_is_the_product_and_duplicate_shapes_are_dropped():
  config, overrides = micro_config("--config.sweep.n_params=(3e3, 2e4)",
                                   "--config.sweep.tokens=(1280, 2560, 5120)")
  rows = kinds.plan_sweep(config, overrides)
  assert [(r.n_target, r.tokens) for r in rows] == [
      (n, d) for n in (3e3, 2e4) for d in (1280, 2560, 5120)]
  assert all(r.budget is None for r in rows)
  # Sizes that round to one shape are one run.
  config, overrides = micro_config("--config.sweep.n_params=(3.1e3, 3.2e3)",
                                   "--config.sweep.tokens=(1280,)")
  assert len(kinds.plan_sweep(config, overrides)) == 1


def test_wall_time_estimate_interpolates_the_probes_in_log_flops_per_token():
  probes = [{"flops_per_token": 1e5, "flops_per_sec": 1e9, "overhead_s": 4.0},
            {"flops_per_token": 1e7, "flops_per_sec": 1e11, "overhead_s": 8.0}]
  rows = [PlanRow("a", flops=1e5 * 1e6, tokens=10**6, steps=100),  # the small probe's shape
          PlanRow("b", flops=1e6 * 1e6, tokens=10**6, steps=5),    # halfway in log: 1e10 FLOP/s
          PlanRow("c", flops=1e8 * 1e6, tokens=10**6, steps=100)]  # beyond the large one: clamped
  evals = 10 * 1000 / 3  # 10 evaluations of 1,000 tokens, each a third of a training token
  small, middle, large = estimate.estimate_seconds(rows, probes, eval_tokens=1000)
  assert small == pytest.approx(4.0 + (1e11 + evals * 1e5) / 1e9)
  assert middle == pytest.approx(6.0 + (1e12 + 5 / 10 * evals * 1e6) / 1e10)
  assert large == pytest.approx(8.0 + (1e14 + evals * 1e8) / 1e11)


@pytest.mark.slow
def test_dry_run_writes_the_plan_and_estimates_from_a_real_probe(tmp_path, capsys):
  argv = sweep_command(tmp_path, f"--config.sweep.tokens=({SHORT},)", "--dry-run", "--json")[2:]
  assert sweep.main(argv) == 0
  out = capsys.readouterr().out
  summary = json.loads(out.strip().splitlines()[-1])
  plan = read_csv(tmp_path / "plan.csv")
  assert len(plan) == summary["runs"] == 1 and not os.path.exists(tmp_path / "runs")
  assert summary["total_flops"] == pytest.approx(float(plan[0]["flops"]))
  (probe,) = summary["probes"]
  assert probe["run_id"] == plan[0]["run_id"] and probe["tokens_per_sec"] > 0
  assert summary["estimated_seconds"] > probe["overhead_s"] > 0
  assert "estimated wall time" in out


def test_bad_sweep_sections_are_config_errors(capsys):
  config, overrides = micro_config("--config.sweep.kind=spiral")
  # (a test may have registered its own kind: the built-in ones are listed, whatever else is)
  with pytest.raises(ConfigError, match=r"sweep.kind must be one of .*finetune, grid, isoflop, "
                                        r".*lr_transfer.*got 'spiral'"):
    kinds.plan_sweep(config, overrides)
  config, overrides = micro_config("--config.sweep.tokens=(10,)")  # below one batch
  with pytest.raises(ConfigError, match="below one batch"):
    kinds.plan_sweep(config, overrides)
  assert sweep.main(["--config", os.path.join(ROOT, "experiments", "tiny.py"), "--dry-run"]) == 2
  assert "no sweep section" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- locks

def dead_pid():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def write_lock(run_dir, **record):
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, locks.LOCK_NAME), "w") as f:
    json.dump(record, f)


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
  run_dir = str(tmp_path / "run")
  assert locks.acquire_lock(run_dir) is None
  holder = locks.acquire_lock(run_dir)  # held by a live process: this one
  assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
  locks.release_lock(run_dir)
  assert locks.acquire_lock(run_dir) is None
  locks.release_lock(run_dir)
  # A dead process of this host: stale, taken over.
  write_lock(run_dir, host=socket.gethostname(), pid=dead_pid(), start=None)
  assert locks.acquire_lock(run_dir) is None
  assert json.load(open(os.path.join(run_dir, locks.LOCK_NAME)))["pid"] == os.getpid()
  # A live pid whose start time differs is a reused pid: stale too (where /proc exists).
  if os.path.exists(f"/proc/{os.getpid()}/stat"):
    write_lock(run_dir, host=socket.gethostname(), pid=os.getpid(), start="1")
    assert locks.acquire_lock(run_dir) is None
  # Another host's lock cannot be checked: it is trusted.
  write_lock(run_dir, host="elsewhere", pid=dead_pid(), start=None)
  assert locks.acquire_lock(run_dir)["host"] == "elsewhere"
  # A lock cut short while being written: held for a grace period, then stale.
  lock = os.path.join(run_dir, locks.LOCK_NAME)
  open(lock, "w").close()
  assert locks.acquire_lock(run_dir) is not None
  old = time.time() - locks.UNREADABLE_LOCK_GRACE_S - 1
  os.utime(lock, (old, old))
  assert locks.acquire_lock(run_dir) is None


@pytest.mark.slow
def test_a_run_locked_by_a_live_process_is_skipped(tmp_path, capsys):
  """A second sweep on the same directory never trains a run another live process holds."""
  config, overrides = micro_config(f"--config.sweep.tokens=({SHORT},)")
  rows = kinds.plan_sweep(config, overrides)
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    run_dir = processes.run_dir_of(str(tmp_path), rows[0])
    write_lock(run_dir, **locks.lock_record(holder.pid))
    argv = sweep_command(tmp_path, f"--config.sweep.tokens=({SHORT},)", "--json")[2:]
    # The sweep ends while the other process still holds its run: partial, said so, unanalysed.
    assert sweep.main(argv) == sweep.EXIT_PARTIAL
    out = capsys.readouterr().out
    assert f"skip {rows[0].run_id}: locked by host {socket.gethostname()} pid {holder.pid}" in out
    assert not os.path.exists(os.path.join(run_dir, "config.json"))  # train.py never started
    assert json.load(open(os.path.join(run_dir, locks.LOCK_NAME)))["pid"] == holder.pid
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["locked"] == [rows[0].run_id] and summary["not_finished"] == 1
    assert summary["partial"] and summary["held_elsewhere"] == [rows[0].run_id]
    assert ("1 run is still training in other processes; rerun to analyse all (partial: no "
            "analysis of this sweep yet)") in out
    assert not os.path.exists(tmp_path / "analysis")
  finally:
    holder.kill()
    holder.wait()


# ------------------------------------------------------------------------- the real local sweep

def wait_for(predicate, timeout, what):
  deadline = time.time() + timeout
  while not predicate():
    if time.time() > deadline:  # a hang guard (it never happened), not a speed bound
      pytest.fail(f"timed out waiting for {what}")
    time.sleep(0.05)


@pytest.mark.slow
def test_a_sweep_killed_mid_way_and_rerun_loses_and_repeats_nothing(tmp_path, capsys):
  """Issue 7: SIGKILL the sweep while its second run trains; the rerun keeps the first run's result
  (not retrained), resumes the second, and a third invocation trains nothing."""
  tokens = f"--config.sweep.tokens=({SHORT}, {LONG})"
  config, overrides = micro_config(tokens)
  first, second = [processes.run_dir_of(str(tmp_path), row) for row in kinds.plan_sweep(config, overrides)]
  # One worker: the short run completes, then the long one kills the sweep (SIGKILL: no handler
  # runs in it) right after its step 100; only the long run reaches step 100.
  with open(tmp_path / "killed_sweep.log", "w") as log:
    killed = subprocess.run(sweep_command(tmp_path, tokens, "--workers", "1"), cwd=ROOT,
                            env=with_fault("SIGKILL@100:parent"), stdout=log, stderr=log,
                            timeout=600)
  assert killed.returncode == -signal.SIGKILL
  assert os.path.exists(os.path.join(first, "result.json"))
  assert not os.path.exists(os.path.join(second, "result.json"))
  lock = json.load(open(os.path.join(second, locks.LOCK_NAME)))
  plan_written = os.path.getmtime(tmp_path / "plan.csv")
  assert plan_written <= os.path.getmtime(os.path.join(first, "config.json"))  # planned first
  first_result = os.path.getmtime(os.path.join(first, "result.json"))
  # The orphaned run got SIGTERM from the kernel (PR_SET_PDEATHSIG): it checkpoints and exits.
  wait_for(lambda: not locks.holder_alive(lock), 60, "the killed sweep's run to exit")
  assert not os.path.exists(os.path.join(second, "result.json"))

  # The reruns run in this process (the planner is the same code; it saves a JAX import).
  argv = sweep_command(tmp_path, tokens)[2:]
  sweep.main(argv + ["--json"])
  out = capsys.readouterr().out
  assert "1 of 2 runs already finished; 1 to train" in out, out
  assert os.path.getmtime(os.path.join(first, "result.json")) == first_result
  steps = [row["step"] for row in map(json.loads, open(os.path.join(second, "metrics.jsonl")))]
  assert steps == list(range(10, LONG // 64 + 1, 10))  # every logged step once: nothing lost, nothing doubled
  results = {row["run_id"]: row for row in read_csv(tmp_path / "results.csv")}
  assert sorted(results) == sorted(os.path.basename(d) for d in (first, second))
  assert {row["status"] for row in results.values()} == {"completed"}
  assert int(results[os.path.basename(second)]["tokens"]) == LONG
  summary = json.loads(out.strip().splitlines()[-1])
  assert summary["completed"] == 2 and summary["not_finished"] == 0
  # The rerun released its lock; the killed sweep's lock on the first run (if it died before
  # releasing it) names a dead process, so it binds nobody.
  assert not os.path.exists(os.path.join(second, locks.LOCK_NAME))
  if os.path.exists(os.path.join(first, locks.LOCK_NAME)):
    assert not locks.holder_alive(json.load(open(os.path.join(first, locks.LOCK_NAME))))

  mtimes = [os.path.getmtime(os.path.join(d, "result.json")) for d in (first, second)]
  sweep.main(argv)
  assert "2 of 2 runs already finished; 0 to train" in capsys.readouterr().out
  assert [os.path.getmtime(os.path.join(d, "result.json")) for d in (first, second)] == mtimes
  # --row on a finished row (a Slurm task resubmitted) trains nothing either.
  assert sweep.main(argv + ["--row", "1"]) == 0
  assert "already completed" in capsys.readouterr().out


# ------------------------------------------------------------------------------ branch sweeps

BRANCHES = ["--config.sweep.branches=True", "--config.train.schedule=wsd"]
BUDGETS = "--config.sweep.tokens=(1280, 2560, 5120)"  # 20, 40, 80 steps: branches at 16, 32, 64


def final_losses(sweep_dir):
  return {row["run_id"]: row["final_eval_loss"] for row in read_csv(sweep_dir / "results.csv")}


def logged_steps(run_dir):
  return [row["step"] for row in map(json.loads, open(os.path.join(run_dir, "metrics.jsonl")))]


@pytest.fixture(scope="module")
def branch_sweep(tmp_path_factory):
  """An uninterrupted branch sweep: one trunk, three cooldown branches."""
  sweep_dir = tmp_path_factory.mktemp("branches")
  sweep.main(sweep_command(sweep_dir, BUDGETS, *BRANCHES)[2:])  # exit 1: 3 runs fit no law
  assert len(final_losses(sweep_dir)) == 3
  return sweep_dir


@pytest.mark.slow
def test_a_branch_equals_the_independent_wsd_run_of_its_row(branch_sweep, tmp_path):
  rows = plan_rows.read_plan(str(branch_sweep))
  longest = max((row for row in rows if row.kind != "trunk"), key=lambda row: row.tokens)
  assert train.main(["--config", DEFAULT, "--workdir", str(tmp_path / "alone"),
                     *longest.overrides]) == 0
  alone = json.load(open(tmp_path / "alone" / "result.json"))
  assert alone["final_eval_loss"] == float(final_losses(branch_sweep)[longest.run_id])
  cost = json.load(open(branch_sweep / "cost.json"))
  assert cost["ratio"] == pytest.approx((0.8 * 5120 + 0.2 * (1280 + 2560 + 5120)) / 8960, rel=0.02)
  branch = json.load(open(os.path.join(processes.run_dir_of(str(branch_sweep), longest),
                                       "result.json")))
  assert (branch["trunk"], branch["branch_step"]) == (longest.trunk, longest.branch_step)
  assert "trunk" not in alone
  for row in rows:  # every step logged once: trunk rows, then the branch's own
    steps = logged_steps(processes.run_dir_of(str(branch_sweep), row))
    assert steps == sorted(set(steps))


@pytest.mark.slow
# The sweep is SIGKILLed by the first of its runs to finish the step: the trunk at its first
# branch point (no branch started), or the longest branch (steps 65-80 are its own) mid-way, the
# trunk completed and the shorter branches finished or training.
@pytest.mark.parametrize("kill_at", [16, 70], ids=["trunk at 16", "last branch at 70"])
def test_a_branch_sweep_killed_anywhere_and_rerun_loses_and_repeats_nothing(
    branch_sweep, tmp_path, kill_at):
  rows = plan_rows.read_plan(str(branch_sweep))
  trunk_dir = processes.run_dir_of(str(tmp_path), next(r for r in rows if r.kind == "trunk"))
  runs = sorted((r for r in rows if r.kind != "trunk"), key=lambda r: r.tokens)
  run_dirs = [processes.run_dir_of(str(tmp_path), row) for row in runs]
  with open(tmp_path / "killed.log", "w") as log:
    killed = subprocess.run(sweep_command(tmp_path, BUDGETS, *BRANCHES), cwd=ROOT,
                            env=with_fault(f"SIGKILL@{kill_at}:parent"), stdout=log, stderr=log,
                            timeout=600)
  assert killed.returncode == -signal.SIGKILL
  assert os.path.exists(os.path.join(trunk_dir, "checkpoints", "16"))
  assert os.path.exists(os.path.join(trunk_dir, "checkpoints", "64")) == (kill_at > 64)
  finished = {d: os.path.getmtime(os.path.join(d, "result.json"))
              for d in [trunk_dir, *run_dirs] if os.path.exists(os.path.join(d, "result.json"))}
  wait_for(lambda: all(not os.path.exists(os.path.join(d, locks.LOCK_NAME))
                       or not locks.holder_alive(json.load(open(os.path.join(d, locks.LOCK_NAME))))
                       for d in [trunk_dir, *run_dirs]), 60, "the killed sweep's runs to exit")
  sweep.main(sweep_command(tmp_path, BUDGETS, *BRANCHES)[2:])
  assert final_losses(tmp_path) == final_losses(branch_sweep)  # nothing lost or changed
  for run_dir, mtime in finished.items():  # nothing finished was trained again
    assert os.path.getmtime(os.path.join(run_dir, "result.json")) == mtime
  for run_dir in [trunk_dir, *run_dirs]:
    steps = logged_steps(run_dir)
    assert steps == sorted(set(steps)), run_dir  # no step logged twice


@pytest.mark.slow
def test_adding_a_larger_budget_extends_the_trunk_instead_of_retraining_it(branch_sweep, tmp_path):
  sweep.main(sweep_command(tmp_path, "--config.sweep.tokens=(1280, 2560)", *BRANCHES)[2:])
  (trunk_dir,) = [os.path.join(tmp_path, "trunks", name) for name in os.listdir(tmp_path / "trunks")]
  kept = {step: os.stat(os.path.join(trunk_dir, "checkpoints", step)).st_ino for step in ("16", "32")}
  sweep.main(sweep_command(tmp_path, BUDGETS, *BRANCHES)[2:])
  assert os.listdir(tmp_path / "trunks") == [os.path.basename(trunk_dir)]  # the same trunk
  assert {step: os.stat(os.path.join(trunk_dir, "checkpoints", step)).st_ino
          for step in kept} == kept  # steps 1-32 were not trained again
  assert logged_steps(trunk_dir) == sorted(set(logged_steps(trunk_dir)))
  assert final_losses(tmp_path) == final_losses(branch_sweep)


@pytest.mark.slow
def test_branches_train_as_groups_of_replicas_equal_to_their_single_runs(branch_sweep, tmp_path,
                                                                          capsys):
  sweep.main(sweep_command(tmp_path, BUDGETS, *BRANCHES, "--config.sweep.seeds=(0, 1)")[2:])
  out = capsys.readouterr().out
  assert "2 trunks of N=" in out and "2 replicas of N=" in out  # one process per group
  losses, single = final_losses(tmp_path), final_losses(branch_sweep)
  assert len(losses) == 6
  for run_id, loss in single.items():  # seed 0's runs are the single-seed sweep's runs
    assert float(losses[run_id]) == pytest.approx(float(loss), abs=1e-5)


@pytest.mark.slow
def test_runs_differing_in_seed_and_lr_train_as_one_group_of_replicas(tmp_path, capsys,
                                                                      monkeypatch):
  """2 seeds x 2 lrs of one shape and budget: one train.py process trains the four runs as
  replicas, each into the run directory its single run would have, with that run's results."""
  variants = (f"--config.sweep.tokens=({SHORT},)", "--config.sweep.seeds=(0, 1)",
              "--config.sweep.lrs=(0.001, 0.003)")
  config, overrides = micro_config(*variants)
  rows = kinds.plan_sweep(config, overrides)
  assert [(row.seed, row.lr) for row in rows] == [(0, 1e-3), (0, 3e-3), (1, 1e-3), (1, 3e-3)]
  assert len({row.group for row in rows}) == 1 and rows[0].group.startswith("g4_")
  capped, _ = micro_config(*variants, "--config.sweep.max_replicas=3")
  assert [row.group[:3] for row in kinds.plan_sweep(capped, overrides)] == ["g3_"] * 3 + [""]

  with monkeypatch.context() as without:  # the sweep's own cache, not the test session's
    without.delenv(COMPILATION_CACHE_ENV)
    sweep.main(sweep_command(tmp_path, *variants)[2:] + ["--workers", "1"])
  out = capsys.readouterr().out
  assert "4 to train in 1 processes" in out and "start 4 replicas" in out, out
  (group_dir,) = (tmp_path / "groups").iterdir()
  assert any((tmp_path / "compilation_cache").iterdir())  # the sweep's own compilation cache
  assert json.load(open(group_dir / "group.json"))["status"] == "completed"
  for row in rows:
    result = json.load(open(os.path.join(processes.run_dir_of(str(tmp_path), row), "result.json")))
    assert result["status"] == "completed" and row.run_id.endswith(result["config_hash"])
    assert (result["seed"], result["lr"]) == (row.seed, row.lr)
  # The last run trained alone from its plan row equals its replica.
  alone = tmp_path / "alone"
  assert train.main(["--config", DEFAULT, "--workdir", str(alone),
                     *rows[-1].overrides]) == 0
  replica = json.load(open(os.path.join(processes.run_dir_of(str(tmp_path), rows[-1]), "result.json")))
  assert json.load(open(alone / "result.json"))["final_eval_loss"] == pytest.approx(
      replica["final_eval_loss"], abs=1e-5)
  # The fit sees each seed's best lr only.
  assert len(read_csv(tmp_path / "results_best_lr.csv")) == 2
  assert "2 of 4 completed runs have the best lr" in out


def test_an_lr_sweep_is_fitted_on_the_best_lr_of_each_point():
  results = [{"status": "completed", "n_params": 10, "tokens": 100, "seed": 0, "lr": lr,
              "final_eval_loss": loss} for lr, loss in ((1e-3, 3.0), (3e-3, 2.5), (1e-2, 2.8))]
  results += [{"status": "diverged", "n_params": 10, "tokens": 100, "seed": 0, "lr": 1.0,
               "final_eval_loss": 1.0},
              {"status": "completed", "n_params": 10, "tokens": 100, "seed": 1, "lr": 1e-3,
               "final_eval_loss": 3.1}]
  assert [(r["seed"], r["lr"]) for r in collect.best_lr_only(results)] == [(0, 3e-3), (1, 1e-3)]


# ------------------------------------------------------------------------ failures and collection

@pytest.mark.slow
def test_a_failing_run_is_recorded_as_failed_with_its_error(tmp_path):
  run_dir = str(tmp_path / "n1e3_d1e3_0123456789abcdef")
  started = time.time()
  proc = processes.start_run(DEFAULT, run_dir, ["--config.train.tokens=-5"])
  assert proc.wait() == 2
  assert processes.settle(run_dir, proc.returncode, started) == "failed"
  result = json.load(open(os.path.join(run_dir, "result.json")))
  assert result["status"] == "failed" and result["exit_code"] == 2
  assert "train.tokens must be positive" in result["error"]
  assert result["config_hash"] == "0123456789abcdef"


def test_results_are_rebuilt_from_the_run_directories(tmp_path, capsys):
  rows = [PlanRow(f"run{i}", budget=1e11, n_params=1000 * (i + 1), tokens=5000) for i in range(4)]
  write_result(processes.run_dir_of(str(tmp_path), rows[0]), status="completed", n_params=1000,
               tokens=5000, final_eval_loss=3.0, data={"source": "synthetic"})
  write_result(processes.run_dir_of(str(tmp_path), rows[1]), status="diverged", n_params=2000,
               tokens=4000, final_eval_loss=9.0)
  write_result(processes.run_dir_of(str(tmp_path), rows[2]), status="failed", exit_code=1,
               error="Traceback: boom")
  # rows[3] has no result (not started): it is not a row of results.csv.
  with open(os.path.join(tmp_path, "results.csv"), "w") as f:
    f.write("stale,table\n1,2\n")  # rebuilt, never appended to
  results = collect.collect(str(tmp_path), rows)
  table = read_csv(tmp_path / "results.csv")
  assert [r["run_id"] for r in table] == ["run0", "run1", "run2"] == [r["run_id"] for r in results]
  assert [r["status"] for r in table] == ["completed", "diverged", "failed"]
  assert table[0]["budget"] == "100000000000.0" and table[0]["n_planned"] == "1000"
  assert table[0]["data.source"] == "synthetic" and table[2]["final_eval_loss"] == ""
  assert set(tables.RESULT_COLUMNS) <= set(table[0])
  summary, _ = collect.finish(str(tmp_path), rows[1:], None)  # no completed run: no analysis
  out = capsys.readouterr().out
  assert "1 diverged (listed, not fitted)" in out and "1 failed (listed, not fitted)" in out
  assert "run2: Traceback: boom" in out and summary["not_finished"] == 1
  assert summary["diverged"] == ["run1"] and summary["failed"] == ["run2"]


@pytest.mark.slow
def test_the_sweep_ends_with_the_fitted_frontier_of_its_completed_runs(tmp_path, capsys):
  """finish() on runs whose losses follow a known law: the analysis (its real CLI) fits only the
  completed ones, and the sweep prints a, b, tokens per parameter and the report."""
  E, A, B, alpha, beta = 1.8, 400.0, 2000.0, 0.34, 0.37
  rows = []
  for budget in (1e15, 1e16, 1e17):
    for n in isoflop.isoflop_sizes(budget, 5, 16.0):
      n, d = round(n), round(budget / (6 * n))
      rows.append(PlanRow(f"n{n}_d{d}", budget=budget, n_params=n, tokens=d, flops_6nd=6 * n * d))
      write_result(processes.run_dir_of(str(tmp_path), rows[-1]), status="completed", n_params=n,
                   n_params_total=n, tokens=d, flops=6 * n * d, loss_floor=E,
                   final_eval_loss=E + A / n ** alpha + B / d ** beta)
  rows.append(PlanRow("blew_up", budget=1e15, n_params=10**5, tokens=10**6))
  write_result(processes.run_dir_of(str(tmp_path), rows[-1]), status="diverged", n_params=10**5,
               n_params_total=10**5, tokens=10**6, flops=6e11, final_eval_loss=float("nan"))
  summary, analysed = collect.finish(str(tmp_path), rows, lambda rows, results: collect.fit_laws(
      str(tmp_path), rows, results, "disabled"))
  out = capsys.readouterr().out
  assert analysed and "1 diverged (listed, not fitted)" in out
  fit = json.load(open(tmp_path / "analysis" / "fit.json"))
  assert fit["n_points"] == 15 and [x["run_id"] for x in fit["excluded"]] == ["blew_up"]
  assert summary["a"] == pytest.approx(beta / (alpha + beta), abs=0.02)
  assert summary["b"] == pytest.approx(alpha / (alpha + beta), abs=0.02)
  assert [p["flops"] for p in summary["frontier"]] == [1e15, 1e16, 1e17]
  assert f"N_opt ∝ C^{summary['a']:.3f}" in out and " tokens per parameter" in out
  assert "the data's exact floor is 1.800 nats" in out
  assert out.strip().endswith(f"report: {tmp_path / 'analysis' / 'report.md'}")
  assert os.path.exists(tmp_path / "analysis" / "report.md")


# ------------------------------------------------------------------ Slurm and W&B launch files

@pytest.fixture
def planned(tmp_path):
  config, overrides = micro_config("--config.sweep.tokens=(1280, 2560, 5120)",
                                   "--config.sweep.sbatch=('--gpus-per-node=1', '--time=1:00:00')")
  return config, kinds.plan_sweep(config, overrides), tmp_path


def test_sbatch_script_runs_one_plan_row_per_array_task(planned, capsys):
  config, rows, sweep_dir = planned
  path = slurm.write_sbatch(str(sweep_dir), DEFAULT, config, rows)
  script = open(path).read()
  assert script.startswith("#!/bin/bash\n")
  directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
  assert "#SBATCH --array=0-2" in directives
  assert {"#SBATCH --gpus-per-node=1", "#SBATCH --time=1:00:00", "#SBATCH --job-name=default_sweep"} <= set(directives)
  last = [line for line in script.splitlines() if line.startswith("srun ")]
  assert len(last) == 1
  words = shlex.split(last[0])
  assert words[2].endswith("sweep.py") and words[-2:] == ["--row", "$SLURM_ARRAY_TASK_ID"]
  assert words[words.index("--config") + 1] == DEFAULT
  assert words[words.index("--workdir") + 1] == str(sweep_dir)
  assert "jax.distributed.initialize()" in script and "SLURM_NTASKS > 1" in script
  assert subprocess.run(["bash", "-n", path]).returncode == 0
  assert f"sbatch {path}" in capsys.readouterr().out


def test_wandb_sweep_yaml_is_a_grid_over_plan_rows(planned, monkeypatch, capsys):
  monkeypatch.setenv("WANDB_MODE", "offline")  # no server: only the YAML and the commands
  config, rows, sweep_dir = planned
  path = wandb_agents.write_wandb_sweep(str(sweep_dir), DEFAULT, config, rows)
  spec = yaml.safe_load(open(path))
  assert spec["method"] == "grid" and spec["program"] == "sweep.py"
  assert spec["parameters"] == {"row": {"values": [0, 1, 2]}}
  assert spec["project"] == config.wandb.project and spec["name"] == "default_sweep"
  command = spec["command"]
  assert command[:3] == ["${env}", "${interpreter}", "${program}"] and command[-1] == "${args}"
  assert os.path.join(ROOT, command[command.index("--config") + 1]) == DEFAULT
  assert command[command.index("--workdir") + 1] == str(sweep_dir)  # outside the repo: absolute
  out = capsys.readouterr().out
  assert f"wandb sweep {path}" in out and "wandb agent scaling/SWEEP_ID" in out


def test_runs_that_cannot_fit_the_device_are_refused_before_planning(monkeypatch):
  """A CPU reports no memory limit, so an accelerator's (a 1 KiB device here) is stood in for."""
  config, overrides = micro_config(f"--config.sweep.tokens=({SHORT},)")
  monkeypatch.setattr(sweep_plan.memory, "device_memory_limit", lambda: 2**10)
  with pytest.raises(ConfigError, match=r"needs ~.* GiB per device .* but the device has 0\.00 GiB"):
    kinds.plan_sweep(config, overrides)
  monkeypatch.setattr(sweep_plan.memory, "device_memory_limit", lambda: 2**40)
  assert kinds.plan_sweep(config, overrides)


def test_an_agent_hands_its_run_to_its_row_and_a_trunk_on_the_way_leaves_the_sweep(tmp_path,
                                                                                 monkeypatch):
  """Under a sweep wandb.init takes its run id from WANDB_RUN_ID, so the row's train.py gets the
  id its run directory keeps; a branch's trunk trained first gets no sweep variables at all."""
  for name, value in (("WANDB_SWEEP_ID", "sweep1"), ("WANDB_RUN_ID", "agentB")):
    monkeypatch.setenv(name, value)
  monkeypatch.delenv("WANDB_MODE", raising=False)
  fresh, resumed, trunk = (tmp_path / name for name in ("fresh", "resumed", "trunk"))
  for run_dir in (fresh, resumed, trunk):
    run_dir.mkdir()
  rundir.write_wandb_run_id(str(resumed), "agentA")
  assert wandb_agents.hand_off(str(fresh)) == (["--config.wandb.mode=online"],
                                               {"WANDB_RUN_ID": "agentB"})
  assert rundir.read_wandb_run_id(str(fresh)) == "agentB"
  assert wandb_agents.hand_off(str(resumed))[1] == {"WANDB_RUN_ID": "agentA"}
  assert wandb_agents.hand_off(str(trunk), agents_row=False)[1] == {
      "WANDB_SWEEP_ID": None, "WANDB_RUN_ID": None, "WANDB_SWEEP_PARAM_PATH": None}
  assert rundir.read_wandb_run_id(str(trunk)) is None
  monkeypatch.setenv("WANDB_MODE", "offline")
  assert wandb_agents.hand_off(str(fresh))[0] == ["--config.wandb.mode=offline"]
  monkeypatch.delenv("WANDB_SWEEP_ID")
  assert wandb_agents.hand_off(str(fresh)) == ([], {})  # not under an agent: nothing


@pytest.mark.slow
def test_wandb_agent_rows_keep_one_run_per_row_and_every_agent_run_reports(tmp_path, monkeypatch):
  """wandb's own agent code expands wandb_sweep.yaml and runs row 0 three times (offline): agent
  run A trains it and is preempted (SIGTERM), agent run B resumes it under A and reports to B,
  agent run C finds it completed and reports to C."""
  from wandb import wandb_agent
  import wandb_records
  config, overrides = micro_config("--config.sweep.tokens=(25600,)")  # 400 steps, rows every 10
  rows = kinds.plan_sweep(config, overrides)
  plan_rows.write_plan(str(tmp_path), rows)
  monkeypatch.setenv("WANDB_MODE", "offline")  # the agent's environment: rows stay offline
  spec = yaml.safe_load(open(wandb_agents.write_wandb_sweep(str(tmp_path), DEFAULT, config, rows)))
  monkeypatch.chdir(ROOT)  # agents run from the repository (the YAML's paths are relative to it)
  monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  for name, value in (("WANDB_SWEEP_ID", "sweep1"), ("WANDB_DIR", str(tmp_path / "agent")),
                      ("WANDB_RUN_ID", ""), ("WANDB_SWEEP_PARAM_PATH", "")):
    monkeypatch.setenv(name, value)  # the agent sets the last two itself; restored after the test
  agent = wandb_agent.Agent(api=None, queue=None, sweep_id="sweep1")
  agent._sweep_command = spec["command"]

  def agent_starts(run_id):
    agent._command_run({"run_id": run_id, "program": spec["program"],
                        "args": {"row": {"value": 0}}})
    return agent._run_processes[run_id]

  run_dir = processes.run_dir_of(str(tmp_path), rows[0])
  first = agent_starts("agentA")
  wait_for(lambda: files.read_jsonl(os.path.join(run_dir, "metrics.jsonl")), 120, "a first row")
  first.terminate()
  assert first.wait(timeout=120) == rundir.EXIT_PREEMPTED
  assert rundir.read_wandb_run_id(run_dir) == "agentA"
  assert agent_starts("agentB").wait(timeout=300) == 0
  assert rundir.read_status(run_dir) == "completed"
  assert agent_starts("agentC").wait(timeout=120) == 0
  paths = wandb_records.run_files(run_dir)
  by_id = {}
  for path in paths:
    by_id.setdefault(os.path.basename(path)[len("run-"):-len(".wandb")], []).append(path)
  assert sorted(by_id) == ["agentA", "agentB", "agentC"] and len(by_id["agentA"]) == 2
  preempted, resumed = by_id["agentA"]
  assert wandb_records.ending(preempted) == {"preempting": True, "exit_code": 143}
  assert wandb_records.ending(resumed)["exit_code"] == 0
  rows_logged = [r for r in wandb_records.synced_history(by_id["agentA"]) if "train_loss" in r]
  assert [r["step"] for r in rows_logged] == [
      r["step"] for r in files.read_jsonl(os.path.join(run_dir, "metrics.jsonl"))]
  final = rundir.read_result(run_dir)["final_eval_loss"]
  for agent_run in ("agentB", "agentC"):
    (path,) = by_id[agent_run]
    run = wandb_records.run(path)
    assert run["job_type"] == "agent" and run["config"]["row"] == 0
    summary = wandb_records.summary(path)
    assert {k: summary[k] for k in ("status", "wandb_run", "final_eval_loss")} == {
        "status": "completed", "wandb_run": "agentA", "final_eval_loss": final}
