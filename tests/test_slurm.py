"""sweep.py --executor slurm through a real single-node Slurm cluster (sweeps/slurm_cluster.sh):
an array of groups of replicas equal to the local executor, a requeued (and a cancelled, then
requeued) task, a task cut by its time limit and a requeued two-task job (one model) resuming to
the uninterrupted loss, a failing task reported with its logs, an array after another waiting.

The tests start the cluster when they can (root on a Debian machine) and skip, saying why, when
they cannot; CI (.ci/run) starts it first and sets SCALING_REQUIRE_SLURM=1, which turns the skip
into a failure. A run is held mid-way by SIGSTOP (Slurm sends SIGCONT before its SIGTERM), so a
short run is surely interrupted and a task waiting for its time limit costs no CPU.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

import sweep
import train
from conftest import ROOT
from core import files, rundir
from core.config import COMPILATION_CACHE_ENV, load_config
from sweeps import kinds, locks, slurm, slurm_queue
from sweeps.rows import write_plan
from sweeps.processes import run_dir_of
from training.loop import FAULT_ENV

pytestmark = pytest.mark.slow  # a real scheduler running real train.py processes

CLUSTER = os.path.join(ROOT, "sweeps", "slurm_cluster.sh")
DEFAULT = os.path.join(ROOT, "experiments", "default_sweep.py")
# Micro runs: the smallest shape, 16-token sequences, batches of 4 (64 tokens per step);
# independent cosine runs of one seed, whatever the default sweep's own choices.
MICRO = ["--config.train.seq_len=16", "--config.train.batch_size=4", "--config.train.eval_tokens=256",
         "--config.train.log_every=10", "--config.wandb.mode=disabled", "--config.sweep.kind=grid",
         "--config.sweep.n_params=(3e3,)", "--config.train.schedule=cosine",
         "--config.sweep.branches=False", "--config.sweep.seeds=()"]
LONG = "--config.sweep.tokens=(64000,)"  # 1000 steps: held by SIGSTOP at its first row
HALF_LONG = "--config.sweep.tokens=(12800,)"  # 200 steps
TIME_LIMIT = "--config.sweep.sbatch=('--time=1',)"  # one minute, Slurm's smallest
KEYS = ("step", "tokens", "train_loss", "lr", "eval_loss")
SUBMITTED = []  # job ids, cancelled when the module ends (a held task of a failed test)


def cluster_status() -> bool:
  return subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def cluster():
  """The cluster, started here (and stopped afterwards) when it is not running already."""
  started = False
  if not cluster_status():
    done = subprocess.run([CLUSTER, "start"], capture_output=True, text=True)
    if done.returncode != 0:
      reason = f"no Slurm cluster and {CLUSTER} could not start one: {done.stderr.strip()}"
      if os.environ.get("SCALING_REQUIRE_SLURM"):
        pytest.fail(reason)
      pytest.skip(reason)
    started = "already running" not in done.stderr  # it was only busy
  yield
  if SUBMITTED:
    subprocess.run(["scancel", *SUBMITTED], capture_output=True)
  if started:
    subprocess.run([CLUSTER, "stop"], capture_output=True)


@pytest.fixture(scope="module")
def cache():
  """The test session's compilation cache (conftest.py) for every sweep here, named on the command
  line as well (a task's environment is Slurm's to pass on): each shape compiles once."""
  return f"--config.train.compilation_cache={os.environ[COMPILATION_CACHE_ENV]}"


def sweep_args(workdir, cache, *extra):
  return ["--config", DEFAULT, "--workdir", str(workdir), *MICRO, cache, *extra]


def run_sweep(capsys, *args):
  """sweep.main in this process; returns (exit code, output, its --json summary)."""
  code = sweep.main([*args, "--json"])
  out = capsys.readouterr().out
  summary = json.loads(out.strip().splitlines()[-1])
  SUBMITTED.extend(summary.get("slurm_jobs", []))
  return code, out, summary


def note(capsys, message):
  """A timing for the log (pytest -s), past the captured output the assertions read."""
  with capsys.disabled():
    print(message)


def planned_rows(*overrides):
  config_overrides = MICRO + list(overrides)
  return kinds.plan_sweep(load_config(DEFAULT, config_overrides), config_overrides)


def rows_of(run_dir, keys=KEYS):
  return [{k: row.get(k) for k in keys} if keys else row
          for row in files.read_jsonl(os.path.join(run_dir, "metrics.jsonl"))]


def result(run_dir):
  with open(os.path.join(run_dir, "result.json")) as f:
    return json.load(f)


def wait_for(predicate, timeout, what, every=0.01):
  deadline = time.time() + timeout
  while not predicate():
    if time.time() > deadline:  # a hang guard (the scheduler never got there), not a speed bound
      pytest.fail(f"timed out waiting for {what}")
    time.sleep(every)


def hold_at_row_past(run_dir, step: int = 0) -> None:
  """SIGSTOPs the run's train.py once it has logged a row past `step`."""
  wait_for(lambda: any(row["step"] > step for row in rows_of(run_dir)), 180,
           f"a metrics row past step {step} in {run_dir}")
  pid = json.load(open(os.path.join(run_dir, locks.LOCK_NAME)))["pid"]
  assert "train.py" in open(f"/proc/{pid}/cmdline").read()
  os.kill(pid, signal.SIGSTOP)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache):
  """The LONG run trained in one go, in this process, from its plan row."""
  (row,) = planned_rows(LONG)
  workdir = tmp_path_factory.mktemp("uninterrupted")
  assert train.main(["--config", DEFAULT, "--workdir", str(workdir), cache,
                     *row.overrides]) == 0
  return str(workdir)


@pytest.fixture(scope="module")
def time_limited(cluster, cache, tmp_path_factory):
  """The LONG run submitted with a one-minute time limit and held at its first row: Slurm ends
  it 60-90 s later. The first test asks for it, so that wait overlaps the other tests."""
  sweep_dir = tmp_path_factory.mktemp("time_limited")
  started = time.time()
  assert sweep.main(sweep_args(sweep_dir, cache, LONG, TIME_LIMIT, "--executor", "slurm")) == 0
  SUBMITTED.extend(job["job_id"] for job in slurm_queue.read_record(str(sweep_dir))["jobs"])
  (row,) = planned_rows(LONG)
  hold_at_row_past(run_dir_of(str(sweep_dir), row))
  return sweep_dir, row, started


@pytest.mark.usefixtures("time_limited")  # submitted first: its minute runs beside these tests
def test_an_array_of_replica_groups_equals_the_local_executor(cluster, cache, tmp_path, capsys):
  """2 budgets x 2 seeds: two groups of two replicas, two array tasks; the same results as the
  local executor's. A second call submits nothing and collects."""
  variants = ("--config.sweep.tokens=(1280, 2560)", "--config.sweep.seeds=(0, 1)")
  started = time.time()
  code, out, summary = run_sweep(capsys, *sweep_args(tmp_path / "on_slurm", cache, *variants),
                                 "--executor", "slurm", "--wait")
  note(capsys, f"Slurm array sweep: {time.time() - started:.1f} s")
  assert "array tasks 0,2 (4 runs)" in out, out
  record = slurm_queue.read_record(str(tmp_path / "on_slurm"))
  (job,) = record["jobs"]
  assert job["job_id"] == summary["slurm_job"] and job["states"] == {"0": "COMPLETED", "2": "COMPLETED"}
  assert [len(runs) for runs in job["tasks"].values()] == [2, 2]
  assert summary["completed"] == 4 and summary["slurm_unfinished"] == {}
  for task in job["tasks"]:
    assert "start 2 replicas" in open(tmp_path / "on_slurm" / "slurm" / f"{job['job_id']}_{task}.out").read()

  run_sweep(capsys, *sweep_args(tmp_path / "local", cache, *variants), "--workers", "2")
  for row in planned_rows(*variants):
    on_slurm = result(run_dir_of(str(tmp_path / "on_slurm"), row))
    here = result(run_dir_of(str(tmp_path / "local"), row))
    assert on_slurm["status"] == here["status"] == "completed"
    assert on_slurm["final_eval_loss"] == here["final_eval_loss"]
    assert (rows_of(run_dir_of(str(tmp_path / "on_slurm"), row))
            == rows_of(run_dir_of(str(tmp_path / "local"), row)))

  code, out, summary = run_sweep(capsys, *sweep_args(tmp_path / "on_slurm", cache, *variants),
                                 "--executor", "slurm")
  assert "4 of 4 runs finished, 0 in queued or running Slurm jobs, 0 to submit" in out, out
  assert "slurm_job" not in summary and summary["completed"] == 4


def test_a_branch_sweep_array_equals_the_local_executor(cluster, cache, tmp_path, capsys):
  """WSD trunks and cooldown branches: an array of trunks, then the branches' array after the
  trunk task (afterok), so no branch waits in a slot; the results are the local executor's."""
  variants = ("--config.sweep.tokens=(1280, 2560)", "--config.sweep.branches=True",
              "--config.train.schedule=wsd")
  started = time.time()
  _, out, summary = run_sweep(capsys, *sweep_args(tmp_path / "on_slurm", cache, *variants),
                              "--executor", "slurm", "--wait")
  note(capsys, f"Slurm branch sweep: {time.time() - started:.1f} s")
  trunk_job, branch_job = summary["slurm_jobs"]
  assert "array tasks 2 (1 runs)" in out and summary["slurm_unfinished"] == {}, out
  assert f"submitted Slurm job {branch_job}: array tasks 0-1 (2 runs) after {trunk_job}_2" in out
  run_sweep(capsys, *sweep_args(tmp_path / "local", cache, *variants))
  for row in planned_rows(*variants):
    on_slurm = result(run_dir_of(str(tmp_path / "on_slurm"), row))
    assert on_slurm["status"] == "completed"
    assert on_slurm["final_eval_loss"] == result(run_dir_of(str(tmp_path / "local"), row))[
        "final_eval_loss"]


def interrupt(run_dir, task, *commands):
  """Holds the run's train.py at its next row, runs the Slurm `commands` on its task (Slurm sends
  SIGCONT, SIGTERM), waits for the run to checkpoint and let go; returns its rows by then."""
  hold_at_row_past(run_dir, max([row["step"] for row in rows_of(run_dir)], default=0))
  for command in commands:
    subprocess.run([*command, task], check=True)
  wait_for(lambda: not os.path.exists(os.path.join(run_dir, locks.LOCK_NAME)), 60, "the lock")
  assert not os.path.exists(os.path.join(run_dir, "result.json"))
  return rows_of(run_dir, keys=None)


def test_a_requeued_task_resumes_to_the_loss_of_an_uninterrupted_run(cluster, cache, uninterrupted,
                                                                     tmp_path, capsys):
  """`scontrol requeue` of the running task (what preemption with PreemptMode=REQUEUE does), then
  `scancel` and `scontrol requeue` of the cancelled task: each time SIGTERM, the run checkpoints,
  the task restarts, resumes from the checkpoint and appends to its output."""
  started = time.time()
  _, out, summary = run_sweep(capsys, *sweep_args(tmp_path, cache, LONG), "--executor", "slurm")
  task = f"{summary['slurm_job']}_0"
  assert "not waiting" in out
  (row,) = planned_rows(LONG)
  run_dir = run_dir_of(str(tmp_path), row)
  first = interrupt(run_dir, task, ["scontrol", "requeue"])
  second = interrupt(run_dir, task, ["scancel"], ["scontrol", "requeue"])
  _, out, summary = run_sweep(capsys, *sweep_args(tmp_path, cache, LONG), "--executor", "slurm",
                              "--wait")
  note(capsys, f"requeued twice: {time.time() - started:.1f} s")
  assert "1 in queued or running Slurm jobs, 0 to submit" in out, out  # (one run: no fit, exit 1)
  assert result(run_dir)["final_eval_loss"] == result(uninterrupted)["final_eval_loss"]
  assert rows_of(run_dir) == rows_of(uninterrupted)
  # Resumed, not restarted: the rows of each segment are kept as they were written.
  final = rows_of(run_dir, keys=None)
  assert first and len(second) > len(first) and len(final) > len(second)
  assert second[:len(first)] == first and final[:len(second)] == second
  log = open(tmp_path / "slurm" / f"{task}.out").read()
  assert "requeued this task 1 time(s): resuming" in log and "2 time(s)" in log
  assert log.count("start n3.1e3") == 3 and "completed n3.1e3" in log  # every segment, appended
  assert open(os.path.join(run_dir, "train.log")).read().count("SIGTERM: checkpoint saved") == 2
  note(capsys, f"requeued run final eval loss {result(run_dir)['final_eval_loss']!r}, "
       f"uninterrupted {result(uninterrupted)['final_eval_loss']!r}")


def test_a_failing_task_is_reported_failed_with_its_logs(cluster, cache, tmp_path, capsys):
  """The run directory holds another config's run, so train.py refuses it (exit 2): the task
  FAILS and the sweep reports the run as failed with both logs, and exits 1."""
  short = "--config.sweep.tokens=(1280,)"
  (row,) = planned_rows(short)
  run_dir = run_dir_of(str(tmp_path), row)
  os.makedirs(run_dir)
  rundir.write_config(run_dir, load_config(DEFAULT, MICRO + ["--config.seed=99"]))
  code, out, summary = run_sweep(capsys, *sweep_args(tmp_path, cache, short), "--executor", "slurm",
                                 "--wait")
  assert code == 1
  failed = summary["slurm_unfinished"][row.run_id]
  assert failed["status"] == "failed" and failed["slurm_state"] == "FAILED"
  assert failed["log"] == os.path.join(run_dir, "train.log")
  assert failed["slurm_log"] == str(tmp_path / "slurm" / f"{summary['slurm_job']}_0.out")
  assert (f"failed {row.run_id} (Slurm job {summary['slurm_job']}_0: FAILED); log: "
          f"{run_dir}/train.log (Slurm output: {failed['slurm_log']})") in out, out
  assert "holds a run of a different config" in result(run_dir)["error"]
  assert summary["failed"] == [row.run_id]


def test_rows_submitted_after_others_wait_for_them(cluster, cache, tmp_path):
  """The seam trunk-then-branch sweeps submit through: submit_rows(..., after=[JOB_TASK]) holds the
  second array until the first one's task has completed."""
  short = "--config.sweep.tokens=(1280, 2560)"
  config_overrides = MICRO + [short, cache]
  config = load_config(DEFAULT, config_overrides)
  rows = kinds.plan_sweep(config, config_overrides, str(tmp_path))
  write_plan(str(tmp_path), rows)
  script = slurm.write_sbatch(str(tmp_path), DEFAULT, config, rows)
  record = {"jobs": []}
  first = slurm.submit_rows(script, rows[:1], record)
  second = slurm.submit_rows(script, rows[1:], record, after=[f"{first}_0"])
  SUBMITTED.extend([first, second])
  show = subprocess.run(["scontrol", "show", "job", "--oneliner", second], capture_output=True,
                        text=True, check=True).stdout
  assert f"Dependency=afterok:{first}_0" in show, show
  slurm_queue.record_final_states(record, slurm_queue.wait(record))
  assert [job["states"] for job in record["jobs"]] == [{"0": "COMPLETED"}, {"1": "COMPLETED"}]
  ends = [json.load(open(os.path.join(run_dir_of(str(tmp_path), row), "result.json")))
          for row in rows]
  assert all(end["status"] == "completed" for end in ends)
  first_done = os.path.getmtime(os.path.join(run_dir_of(str(tmp_path), rows[0]), "result.json"))
  second_began = os.path.getmtime(os.path.join(run_dir_of(str(tmp_path), rows[1]), "config.json"))
  assert second_began > first_done


def test_a_task_cut_by_its_time_limit_is_recorded_and_resumed_on_the_next_submission(
    time_limited, cache, uninterrupted, capsys):
  """--time=1: Slurm ends the held task with SIGTERM (TIMEOUT) and the run checkpoints; the next
  submission records and reports how the task ended, and resumes the run to the uninterrupted loss."""
  sweep_dir, row, started = time_limited
  run_dir = run_dir_of(str(sweep_dir), row)
  (job,) = slurm_queue.read_record(str(sweep_dir))["jobs"]
  wait_for(lambda: (job["job_id"], "0") not in slurm_queue.queue(), 180, "the time limit",
           every=1)
  shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job["job_id"]],
                         capture_output=True, text=True).stdout
  times = dict(re.findall(r"(StartTime|EndTime)=(\S+)", shown))
  note(capsys, f"time limit (--time=1): task ran {times.get('StartTime')} to {times.get('EndTime')}; "
       f"seen ended {time.time() - started:.1f} s after the submission")
  assert "SIGTERM: checkpoint saved at step" in open(os.path.join(run_dir, "train.log")).read()
  assert not os.path.exists(os.path.join(run_dir, "result.json"))

  resumed = time.time()
  _, out, summary = run_sweep(capsys, *sweep_args(sweep_dir, cache, LONG), "--executor", "slurm",
                              "--wait")
  note(capsys, f"time-limited run resumed and completed in {time.time() - resumed:.1f} s")
  assert (f"interrupted {row.run_id} (Slurm job {job['job_id']}_0: TIMEOUT); log: "
          f"{run_dir}/train.log (Slurm output: {sweep_dir}/slurm/{job['job_id']}_0.out)\n"
          "0 of 1 runs finished, 0 in queued or running Slurm jobs, 1 to submit") in out, out
  assert summary["slurm_unfinished"] == {}
  assert [job["states"] for job in slurm_queue.read_record(str(sweep_dir))["jobs"]] == [
      {"0": "TIMEOUT"}, {"0": "COMPLETED"}]
  assert result(run_dir)["final_eval_loss"] == result(uninterrupted)["final_eval_loss"]
  assert rows_of(run_dir) == rows_of(uninterrupted)


TWO_TASKS = "--config.sweep.sbatch=('--ntasks-per-node=2',)"


def test_a_two_task_job_trains_one_run_data_parallel_equal_to_one_process(cluster, cache,
                                                                         tmp_path, capsys):
  """--ntasks-per-node=2 on one node, a CPU device per task: srun starts the row in both tasks,
  train.py joins them with jax.distributed (SLURM_NTASKS > 1) and trains the one run
  data-parallel over the two processes, to the losses of the same run in one process."""
  variant = "--config.sweep.tokens=(1280,)"
  _, out, summary = run_sweep(capsys, *sweep_args(tmp_path / "two", cache, variant, TWO_TASKS),
                              "--executor", "slurm", "--wait")
  assert summary["completed"] == 1, out  # (code 1: one run is too few for the analysis)
  (row,) = planned_rows(variant)
  run_dir = run_dir_of(str(tmp_path / "two"), row)
  assert os.path.exists(os.path.join(run_dir, "train.1.log"))  # the second task's process
  one = str(tmp_path / "one")
  assert train.main(["--config", DEFAULT, "--workdir", one, cache, *row.overrides]) == 0
  assert result(run_dir)["final_eval_loss"] == pytest.approx(result(one)["final_eval_loss"],
                                                             abs=1e-5)
  for ours, theirs in zip(rows_of(run_dir), rows_of(one), strict=True):
    assert ours["step"] == theirs["step"]
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)


def held_train_pids(run_dir) -> list[int]:
  """The pids of the train.py processes training `run_dir` that are stopped (SIGSTOP)."""
  pids = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      argv = open(f"/proc/{pid}/cmdline").read().split("\0")
      state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:  # it ended meanwhile
      continue
    if any(arg.endswith("train.py") for arg in argv) and run_dir in argv and state == "T":
      pids.append(int(pid))
  return pids


def test_a_requeued_two_task_job_resumes_both_processes_to_the_one_process_loss(
    cluster, cache, tmp_path, capsys, monkeypatch):
  """A 200-step run on two tasks (one model, data-parallel), both processes holding themselves
  after step 50 (the fault hook's SIGSTOP), then `scontrol requeue`: Slurm sends both SIGCONT and
  SIGTERM; they agree on a step to stop after, save its checkpoint together and exit 143; the
  requeued task's two processes resume from it and end at the one-process run's loss, every step
  logged once, the rows before the requeue kept as written, the result written once."""
  started, args = time.time(), sweep_args(tmp_path / "two", cache, HALF_LONG, TWO_TASKS)
  monkeypatch.setenv(FAULT_ENV, "SIGSTOP@50")  # sbatch passes it to both tasks (and their requeue,
  _, out, summary = run_sweep(capsys, *args, "--executor", "slurm")  # which resumes past step 50)
  monkeypatch.delenv(FAULT_ENV)
  task = f"{summary['slurm_job']}_0"
  run_dir = run_dir_of(str(tmp_path / "two"), row := planned_rows(HALF_LONG)[0])
  wait_for(lambda: len(held_train_pids(run_dir)) == 2, 180, "both train.py processes held")
  held, before = time.time(), rows_of(run_dir, keys=None)
  assert before[-1]["step"] == 50
  subprocess.run(["scontrol", "requeue", task], check=True)
  _, out, summary = run_sweep(capsys, *args, "--executor", "slurm", "--wait")
  note(capsys, f"two tasks requeued: {time.time() - started:.1f} s ({held - started:.1f} s to the "
       f"hold, {time.time() - held:.1f} s from the requeue to the end)")
  assert "1 in queued or running Slurm jobs, 0 to submit" in out, out
  assert summary["completed"] == 1 and summary["slurm_unfinished"] == {}, out
  one = str(tmp_path / "one")  # the same run in one process, in one go
  assert train.main(["--config", DEFAULT, "--workdir", one, cache, *row.overrides]) == 0
  assert result(run_dir)["final_eval_loss"] == pytest.approx(result(one)["final_eval_loss"],
                                                             abs=1e-5)
  for ours, theirs in zip(rows_of(run_dir), rows_of(one), strict=True):  # no step twice
    assert ours["step"] == theirs["step"]
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)
  assert rows_of(run_dir, keys=None)[:len(before)] == before  # resumed, not restarted
  # Both processes stopped after one step past 50 (51 unless a SIGTERM came late) and saved it once.
  saved = [re.findall(r"SIGTERM: checkpoint saved at step (\d+); rerun to resume", open(
      os.path.join(run_dir, log)).read()) for log in ("train.log", "train.1.log")]
  assert len(saved[0]) == 1 and saved[0] == saved[1] and int(saved[0][0]) > 50, saved
  output = open(tmp_path / "two" / "slurm" / f"{task}.out").read()
  assert output.count("Slurm requeued this task 1 time(s): resuming") == 2  # one per process
  assert output.count(f"({row.run_id}): completed") == 1, output  # the result, written once
  note(capsys, f"final eval loss {result(run_dir)['final_eval_loss']!r} on two tasks, requeued; "
       f"{result(one)['final_eval_loss']!r} in one process")
