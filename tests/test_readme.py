"""README.md's commands, run as written in a copy of the repository, so the README cannot drift.

README.md is read when the test runs. Every line of its ```bash blocks is run with bash in a fresh
copy of the working tree, in README order (later commands use the run directories of earlier
ones), except where `as_run` says otherwise:
- `pip install -U ...` (accelerator wheels) and `python -m pytest ...` (this suite) are not run;
  `pip install -r requirements.txt` is, without an index (PIP_NO_INDEX: it must be satisfied);
- every `python sweep.py` runs with --dry-run (plan, cost and its throughput probes; a full sweep
  is minutes to hours), except the fine-tuning sweep, whose plan needs its trained base models
  (a dry run on a fresh copy refuses): it runs as written (~9 min on 2 cores); `--config F` is the
  default sweep's config file and `[--wait]` is dropped;
- DIR (`python -m analysis --results DIR/results.csv`) is a directory holding a small IsoFLOP
  table of the Chinchilla law.
The quickstart's `python sweep.py` is run for real once, by the second test, whose output must
hold the README's sample ending line by line ("..." and ".." match anything). Both are marked
`readme` and run only when asked (`python -m pytest -q -m readme`; pytest.ini leaves them out).
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT


SKIPPED = {"pip install -U": "installs accelerator wheels over the environment (network)",
           "python -m pytest": "the test suite this test is part of"}
DEFAULT_SWEEP_CONFIG = "experiments/default_sweep.py"
FINETUNE_SWEEP = "experiments/finetune_sweep.py"


def readme() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    return f.read()


def fenced_blocks(text: str, language: str) -> list[str]:
  return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def commands(text: str) -> list[str]:
  """The command lines of the bash blocks, continuation lines joined, in order."""
  found = []
  for block in fenced_blocks(text, "bash"):
    for command in block.replace("\\\n", " ").splitlines():
      if command.strip() and not command.lstrip().startswith("#"):
        found.append(command.strip())
  return found


def as_run(command: str, table_dir: str) -> str | None:
  """The command as the test runs it (see the module docstring); None: not run."""
  words = re.sub(r"\s+#\s.*$", "", command)  # the comment
  parts = []
  for part in words.split("&&"):
    part = part.strip()
    if any(part.startswith(prefix) for prefix in SKIPPED):
      continue
    if part.startswith("python sweep.py"):
      part = re.sub(r"--config F\b", f"--config {DEFAULT_SWEEP_CONFIG}", part)
      part = part.replace("[--wait]", "").strip()
      if "--dry-run" not in part.split() and FINETUNE_SWEEP not in part:
        part += " --dry-run"
    parts.append(re.sub(r"\bDIR\b", table_dir, part))
  return " && ".join(parts) or None


def copy_of_repository(target) -> str:
  """The working tree's files (tracked, and untracked ones git does not ignore) under target."""
  listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                          capture_output=True, text=True)
  if listed.returncode == 0:
    for name in listed.stdout.splitlines():
      if os.path.isfile(os.path.join(ROOT, name)):
        os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(target, name))
  else:  # not a git checkout: everything but outputs
    shutil.copytree(ROOT, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        ".git", "runs", "__pycache__", ".pytest_cache", "default_sweep"))
  return str(target)


def environment() -> dict:
  """This interpreter first on PATH (`python`, `pip`), no package index, CPU only; the commands'
  own compilation caches (not the test session's, conftest.py), as a reader's would be."""
  bin_dir = os.path.dirname(sys.executable)
  shell = {k: v for k, v in os.environ.items() if k != "SCALING_COMPILATION_CACHE"}
  return {**shell, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
          "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "JAX_PLATFORMS": "cpu"}


def write_table(directory: str) -> None:
  """DIR/results.csv: 4 IsoFLOP budgets x 5 sizes on L = 1.69 + 406.4 N^-0.34 + 410.7 D^-0.28."""
  os.makedirs(directory, exist_ok=True)
  lines = ["run_id,n_params,tokens,flops,final_eval_loss,budget,status"]
  for budget in (1e18, 1e19, 1e20, 1e21):
    n_opt = (budget / 120) ** 0.5
    for i, n in enumerate(n_opt * np.geomspace(1 / 8, 8, 5)):
      d = budget / (6 * n)
      loss = 1.69 + 406.4 * n ** -0.34 + 410.7 * d ** -0.28
      lines.append(f"r{budget:.0e}_{i},{n:.6g},{d:.6g},{budget:.6g},{loss:.6f},{budget:.6g},"
                   "completed")
  with open(os.path.join(directory, "results.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")


def test_the_readme_commands_not_run_are_only_those_the_docstring_names():
  found = commands(readme())
  assert any(c.startswith("python train.py") for c in found)
  for command in found:
    if as_run(command, "DIR") is None:
      assert any(part.strip().startswith(tuple(SKIPPED)) for part in command.split("&&")), command


@pytest.mark.slow
@pytest.mark.readme  # ~15 minutes: real runs, the sweeps' dry runs, the fine-tuning sweep
def test_every_readme_command_runs_as_written(tmp_path):
  repo = copy_of_repository(tmp_path / "repo")
  table_dir = str(tmp_path / "table")
  write_table(table_dir)
  failures = []
  for command in commands(readme()):
    run = as_run(command, table_dir)
    if run is None:
      continue
    completed = subprocess.run(["bash", "-c", run], cwd=repo, env=environment(),
                               capture_output=True, text=True, timeout=1800)
    if completed.returncode != 0:
      failures.append(f"{run}\n  exit {completed.returncode}: {completed.stderr[-1500:]}")
  assert not failures, "\n".join(failures)


def sample_lines(text: str) -> list[str]:
  """The README's sample ending of a sweep: the plain block after "It ends with lines like:"."""
  after = text.split("It ends with lines like:", 1)[1]
  return [line for line in fenced_blocks(after, "")[0].splitlines() if line.strip()]


def matches_in_order(samples: list[str], output: list[str]) -> list[str]:
  """The sample lines no output line matches, in order ("..." and ".." match anything)."""
  missing, position = [], 0
  for sample in samples:
    pattern = re.escape(sample).replace(re.escape("..."), ".*").replace(re.escape(".."), ".*")
    for i in range(position, len(output)):
      if re.fullmatch(pattern, output[i]):
        position = i + 1
        break
    else:
      missing.append(sample)
  return missing


def test_the_sample_matcher():
  samples = ["a = 0.3.. b", "tokens: ... at C = 8e+10", "end"]
  assert matches_in_order(samples, ["x", "a = 0.312 b", "tokens: 20 at C = 8e+10", "end"]) == []
  assert matches_in_order(samples, ["tokens: 20 at C = 8e+10", "a = 0.312 b", "end"]) == [
      "tokens: ... at C = 8e+10"]


@pytest.mark.slow
@pytest.mark.readme  # the default sweep itself: ~4 minutes on 2 idle cores
def test_the_quickstart_sweep_prints_the_readme_sample(tmp_path):
  quickstart = [c for c in commands(readme()) if re.search(r"&& python sweep.py\s+#", c)]
  assert quickstart, "the quickstart runs `python sweep.py`"
  repo = copy_of_repository(tmp_path / "repo")
  completed = subprocess.run(["bash", "-c", "python sweep.py"], cwd=repo, env=environment(),
                             capture_output=True, text=True, timeout=3600)
  assert completed.returncode == 0, completed.stderr[-3000:]
  output = completed.stdout.splitlines()
  assert matches_in_order(sample_lines(readme()), output) == [], "\n".join(output[-30:])
