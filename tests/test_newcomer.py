"""Issue 23's rest: bad input refused before it costs anything (sizes past the machine, dry-run
probes past its memory), a run killed for memory named so, the local sweep's progress line, a
sweep that ends while other processes hold runs of its plan, duplicate run ids in a results
table, the report's opening."""
import json
import os

import pytest

import sweep
from conftest import ROOT

DEFAULT = os.path.join(ROOT, "experiments", "default_sweep.py")
# One micro run: the smallest grid shape, 16-token sequences, batches of 4 (64 tokens per step).
MICRO = ["--config.train.seq_len=16", "--config.train.batch_size=4",
         "--config.train.eval_tokens=256", "--config.train.log_every=10",
         "--config.wandb.mode=disabled", "--config.sweep.kind=grid",
         "--config.sweep.n_params=(3e3,)", "--config.train.schedule=cosine",
         "--config.sweep.branches=False", "--config.sweep.seeds=()",
         "--config.sweep.tokens=(1280,)"]


def one_line_refusal(capsys) -> str:
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
  return err


# ------------------------------------------------------------- (c) refused before it costs anything

def test_a_budget_whose_model_outgrows_the_machine_is_refused_before_tracing(tmp_path, capsys):
  """1e30 FLOPs plan a 1.8e13-parameter model: with a batch that keeps its steps within int32,
  the weights alone (4 B each, 65,536 GiB) are refused from the counts, before the planner's
  traced estimate (minutes for its ~700 layers); nothing is written."""
  workdir = tmp_path / "sweep"
  assert sweep.main(["--workdir", str(workdir), "--config.sweep.budgets=(1e30,)",
                     "--config.train.batch_size=4194304"]) == 2
  err = one_line_refusal(capsys)
  assert "parameters alone need" in err and "budget 1e+30" in err
  assert not workdir.exists()


@pytest.mark.slow
def test_a_dry_run_probe_past_this_machines_memory_is_refused_before_any_probe_trains(
    tmp_path, capsys):
  """2^26 sequences a step: the planner's estimate (its float32 logits alone ~2 TiB) exceeds any
  host, so train.py's memory check refuses the probe of the largest shape, which goes first, and
  no other probe runs: the plan stands, without a wall-time estimate, in one line."""
  workdir = tmp_path / "sweep"
  batch = 2 ** 26
  argv = ["--config", DEFAULT, "--workdir", str(workdir), *MICRO,
          "--config.sweep.n_params=(3e3, 1.2e4)", f"--config.sweep.tokens=({batch * 16},)",
          f"--config.train.batch_size={batch}", "--dry-run", "--json"]
  assert sweep.main(argv) == 0
  out = capsys.readouterr().out
  summary = json.loads(out.strip().splitlines()[-1])
  assert summary["estimated_seconds"] is None and "probes" not in summary
  (line,) = [line for line in out.splitlines() if "no wall-time estimate" in line]
  assert "is refused here, not probed" in line and "GiB per device" in line, line
  assert os.path.exists(workdir / "plan.csv") and not os.path.exists(workdir / "runs")


# ------------------------------------------------------- (e) duplicate run ids in a results table

def duplicated_table(tmp_path):
  """A fittable table (4 budgets x 7 sizes) whose run r0 appears three times, r5 twice: the last
  row of each is the one to keep (a rerun's), with the true loss; the earlier ones are 10x off."""
  from test_analysis_cli import law_rows, write_csv  # pylint: disable=import-outside-toplevel
  rows = law_rows((1e12, 4e12, 1.6e13, 6.4e13))
  for i, row in enumerate(rows):
    row["run_id"] = f"r{i}"
  stale = lambda i: {**rows[i], "final_eval_loss": 10 * rows[i]["final_eval_loss"]}
  table = [stale(0), stale(0), stale(5)] + rows
  return write_csv(tmp_path / "results.csv", table), rows


@pytest.mark.slow  # the analysis's imports (JAX, the pipeline): ~10 s on a loaded machine
def test_duplicate_run_ids_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys):
  from analysis import __main__ as cli  # pylint: disable=import-outside-toplevel
  results, _ = duplicated_table(tmp_path)
  out = tmp_path / "out"
  assert cli.main(["--results", results, "--out", str(out), "--wandb-mode", "disabled"]) == 2
  err = one_line_refusal(capsys)
  assert "line 3: run 'r0' is there already (line 2)" in err and "--dedupe" in err
  assert not out.exists()


def test_dedupe_keeps_the_last_row_of_each_run_id_in_the_files_order(tmp_path):
  from analysis import runs as runs_lib  # pylint: disable=import-outside-toplevel
  table = tmp_path / "results.csv"
  table.write_text("run_id,n_params,tokens,final_eval_loss\n"
                   "r0,1e6,1e8,9.0\nr0,1e6,1e8,8.0\nr1,2e6,1e8,3.0\nr2,1e6,2e8,2.9\n"
                   "r1,2e6,1e8,3.1\nr0,1e6,1e8,3.2\n")
  deduplicated = str(tmp_path / "out" / "dedup.csv")
  assert runs_lib.write_deduplicated(str(table), deduplicated) == (3, 2)
  runs = runs_lib.load(deduplicated)
  assert runs.run_id.tolist() == ["r2", "r1", "r0"]  # each one's last row, in the file's order
  assert runs.loss.tolist() == [2.9, 3.1, 3.2]


@pytest.mark.slow
def test_the_analysis_with_dedupe_fits_the_last_rows_and_says_how_many_it_dropped(tmp_path,
                                                                                  capsys):
  from analysis import __main__ as cli  # pylint: disable=import-outside-toplevel
  results, rows = duplicated_table(tmp_path)
  out = tmp_path / "out"
  assert cli.main(["--results", results, "--out", str(out), "--wandb-mode", "disabled",
                   "--dedupe", "--quiet"]) == 0
  said = capsys.readouterr().out
  assert "--dedupe: dropped 3 duplicate rows of 2 run ids (the last row of each kept)" in said
  fit = json.loads((out / "fit.json").read_text())
  assert fit["chinchilla_approach3"]["E"] == pytest.approx(1.5, rel=0.1)


# ------------------------------------------------------------------ (b) a run killed for memory

@pytest.mark.slow
def test_a_run_killed_by_sigkill_is_reported_as_most_likely_out_of_memory(tmp_path, capsys,
                                                                          monkeypatch):
  """A real train.py killed by SIGKILL at step 10 (the fault hook: the kernel's OOM killer leaves
  nothing else behind either): the sweep names it with the planner's estimate and this machine's
  memory, in its progress, in result.json and in the runs it did not fit; it exits 1."""
  from conftest import with_fault  # pylint: disable=import-outside-toplevel
  from core import rundir  # pylint: disable=import-outside-toplevel
  for key, value in with_fault("SIGKILL@10", env={}).items():
    monkeypatch.setenv(key, value)
  workdir = tmp_path / "sweep"
  assert sweep.main(["--config", DEFAULT, "--workdir", str(workdir), *MICRO]) == 1
  out = capsys.readouterr().out
  said = [line for line in out.splitlines() if "most likely out of memory" in line]
  assert len(said) == 2 and "final train loss" not in out, out  # the progress line, the listing
  (run_dir,) = (workdir / "runs").iterdir()
  result = rundir.read_result(str(run_dir))
  assert result["status"] == rundir.FAILED and result["exit_code"] == -9
  assert result["error"].startswith("killed (exit -9), most likely out of memory: the planner "
                                    "estimated "), result["error"]
  assert " GiB per device of " in result["error"] and "GiB (" in result["error"]
  # (a) the progress line, as plain lines (stdout is not a terminal here): before and after
  progress_lines = [line for line in out.splitlines() if line.startswith("progress: ")]
  assert progress_lines[0].startswith("progress: 0 of 1 runs done, 1 left;"), progress_lines
  assert "time left unknown until a run finishes" in progress_lines[0]
  assert progress_lines[-1].startswith("progress: 1 of 1 runs done, 0 left;"), progress_lines
  assert "0 left; about 0 s left" in progress_lines[-1]


# --------------------------------------------------------- (a) the local sweep's progress line

def test_time_left_fits_a_fixed_cost_and_a_rate_to_the_runs_so_far():
  from sweeps import progress  # pylint: disable=import-outside-toplevel
  # Runs of 10 s fixed cost + 1 s per 1e9 FLOPs: the fit recovers both exactly.
  finished = [(f, 10 + f / 1e9) for f in (1e9, 4e9, 16e9)]
  fixed, rate = progress.fit_cost(finished)
  assert fixed == pytest.approx(10) and rate == pytest.approx(1e-9)
  # Two runs left on one worker: (10 + 2) + (10 + 8), less the 5 s one has spent.
  assert progress.time_left(finished, [(2e9, 0.0), (8e9, 5.0)], 1) == pytest.approx(25)
  # Two workers share them, but never finish before the longest one left.
  assert progress.time_left(finished, [(2e9, 0.0), (8e9, 0.0)], 2) == pytest.approx(18)
  assert progress.time_left(finished, [(2e9, 0.0)], 8) == pytest.approx(12)
  # Nothing finished yet: unknown; nothing left: 0; a run past its estimate: 0, not negative.
  assert progress.time_left([], [(1e9, 0.0)], 1) is None
  assert progress.time_left(finished, [], 1) == 0
  assert progress.time_left(finished, [(1e9, 100.0)], 1) == 0


def test_time_left_from_one_run_or_runs_of_one_size_is_proportional_to_flops():
  from sweeps import progress  # pylint: disable=import-outside-toplevel
  assert progress.fit_cost([(2e9, 30.0)]) == (0.0, 15e-9)
  assert progress.time_left([(2e9, 30.0), (2e9, 34.0)], [(4e9, 0.0)], 1) == pytest.approx(64)
  # Time that falls as FLOPs grow (noise, a loaded machine): all of it is fixed cost.
  assert progress.fit_cost([(1e9, 20.0), (2e9, 10.0)]) == (15.0, 0.0)


def test_the_progress_line_is_rewritten_in_place_on_a_terminal_and_plain_otherwise():
  import io  # pylint: disable=import-outside-toplevel
  from sweeps import progress  # pylint: disable=import-outside-toplevel
  text = progress.line(3, 7, 2, 1.5e12, 4.5e12, 300.0, 3, elsewhere=1)
  assert text == ("progress: 3 of 11 runs done, 7 left (2 training), 1 in other processes; "
                  "1.5e+12 of 6e+12 FLOPs done, 4.5e+12 left; about 5 min left (from 3 runs "
                  "so far)")

  class Terminal(io.StringIO):
    def isatty(self):
      return True

  for stream, expected in ((io.StringIO(), "a\nb\nrun ends\nc\n"),
                           (Terminal(), "a\r\033[Kb\r\033[Krun ends\nb\r\033[Kc\n")):
    shown = progress.Progress(stream)
    shown.show("a")
    shown.show("b")
    shown.show("b")  # unchanged: not printed again
    shown.say("run ends")
    shown.show("c")
    shown.close()
    assert stream.getvalue() == expected, repr(stream.getvalue())


# -------------------------------------- (d) a sweep that ends while others train runs of its plan

@pytest.mark.slow
def test_a_sweep_ending_while_another_process_holds_a_run_is_partial_and_unanalysed(tmp_path,
                                                                                     capsys):
  """Two runs; a live process (standing in for a second sweep on the directory) holds the lock of
  one: this sweep trains the other, then says the rest trains elsewhere, analyses nothing and
  exits EXIT_PARTIAL (its summary says partial)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from core import files  # pylint: disable=import-outside-toplevel
  from core.config import load_config  # pylint: disable=import-outside-toplevel
  from sweeps import kinds, locks, processes  # pylint: disable=import-outside-toplevel
  overrides = MICRO + ["--config.sweep.tokens=(1280, 2560)"]
  rows = kinds.plan_sweep(load_config(DEFAULT, overrides), overrides)
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
  try:
    run_dir = processes.run_dir_of(str(tmp_path), rows[1])
    os.makedirs(run_dir)
    files.write_json_atomic(os.path.join(run_dir, locks.LOCK_NAME), locks.lock_record(holder.pid))
    argv = ["--config", DEFAULT, "--workdir", str(tmp_path), *overrides, "--json"]
    assert sweep.main(argv) == sweep.EXIT_PARTIAL
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["completed"] == 1 and summary["held_elsewhere"] == [rows[1].run_id]
    assert summary["partial"] and "approach2" not in summary and "a" not in summary
    assert "1 run is still training in other processes; rerun to analyse all" in out
    assert "progress: 1 of 2 runs done, 0 left, 1 in other processes;" in out
    assert not os.path.exists(tmp_path / "analysis")
  finally:
    holder.kill()
    holder.wait()


# ------------------------------------------- (f) the report opens with configuration and provenance

@pytest.mark.slow  # plans with JAX and imports the analysis: ~10 s on a loaded machine
def test_the_report_opens_with_the_sweeps_configuration_and_provenance(tmp_path):
  from analysis import report  # pylint: disable=import-outside-toplevel
  from core import provenance  # pylint: disable=import-outside-toplevel
  from core.config import load_config  # pylint: disable=import-outside-toplevel
  from sweeps import kinds, rows as plan_rows  # pylint: disable=import-outside-toplevel
  overrides = MICRO + ["--config.sweep.n_params=(3e3, 1.2e4)", "--config.sweep.seeds=(0, 1)"]
  config = load_config(DEFAULT, overrides)
  plan_rows.write_plan(str(tmp_path), kinds.plan_sweep(config, overrides))
  provenance.write_sweep(str(tmp_path), config, DEFAULT, ["--workdir", "w", *overrides])
  fit = {"source": str(tmp_path / "results.csv")}
  (heading, _), (_, note), (_, _, rows) = report.provenance_block(fit)
  fields = dict(rows)
  assert heading == "h2" and "relative to the sweep directory" in note
  assert fields["config"] == "experiments/default_sweep.py (default_sweep, grid)"
  assert fields["command"].startswith("python sweep.py --workdir w --config.train.seq_len=16")
  assert fields["runs planned"] == "4" and fields["budgets C"] == "none (a grid)"
  assert fields["sizes N (non-embedding)"].startswith("2: ") and fields["seeds"] == "0, 1"
  assert fields["recipe"] == "default" and fields["data source"] == "synthetic"
  assert fields["results"] == "results.csv"
  for key in ("commit (planned)", "commit (analysed)"):
    assert fields[key] == "unknown" or len(fields[key].split("-")[0]) == 40
  assert fields["planned"].startswith("20") and " on " in fields["planned"]
  assert str(tmp_path) not in json.dumps(rows)  # no absolute path: the directory may move
  # A table no sweep wrote says where it was read.
  (heading, text), (_, note), (_, _, rows) = report.provenance_block(
      {"source": str(tmp_path / "elsewhere" / "published.csv")})
  assert text == "Source" and dict(rows)["results"].endswith("published.csv")
  # Every interval is the bootstrap's: a cell without one says why it is empty.
  assert report.fmt_ci(None) == "no bootstrap run"
  assert report.fmt_ci((0.25, 0.5)) == "[0.25, 0.5]"
