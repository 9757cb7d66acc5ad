"""Bits per byte and per-domain evaluation (data.eval_sets, data/eval_sets.py) on real text.

The real-text tests read the three public-domain domains of a `shared/data/text` folder above the
repository (SCALING_SHARED_DATA overrides, as in tests/test_analysis_published.py) and skip
cleanly without it."""
import json
import math
import os

import pytest

import data
import train
from conftest import FAST_20, ROOT, TINY
from core.config import ConfigError, load_config
from data import eval_sets
from sweeps import tables


def _shared_text() -> str | None:
  if os.environ.get("SCALING_SHARED_DATA"):
    return os.path.join(os.environ["SCALING_SHARED_DATA"], "text")
  here = ROOT
  while os.path.dirname(here) != here:
    candidate = os.path.join(here, "shared", "data", "text")
    if os.path.isdir(candidate):
      return candidate
    here = os.path.dirname(here)
  return None


TEXT = _shared_text()
needs_text = pytest.mark.skipif(TEXT is None, reason="no shared/data/text folder above the repository")


def text_args(tmp_path, path, *more):
  return ["--config.data.source=text", f"--config.data.path={path}",
          f"--config.data.cache_dir={tmp_path / 'cache'}", *more]


@pytest.fixture
def corpus(tmp_path):
  path = tmp_path / "corpus.txt"
  path.write_text("\n\n".join(f"paragraph {i} é " + "words " * 30 for i in range(40)))
  return path


def test_entries_are_name_equals_path():
  assert eval_sets.parse(" a=x.txt, b = dir/ ,") == {"a": "x.txt", "b": "dir/"}
  for bad in ("a", "=x.txt", "a=", "a b=x", "a=x,a=y"):
    with pytest.raises(ConfigError):
      eval_sets.parse(bad)


def test_with_the_byte_tokenizer_bits_per_byte_is_the_loss_over_ln_2(tmp_path, corpus):
  source = data.make_source(load_config(TINY, text_args(tmp_path, corpus)))
  assert source.tokens_per_byte == 1.0  # a byte per token, the end of a document included
  assert eval_sets.bits_per_byte(source, math.log(2)) == 1.0
  assert eval_sets.bits_per_byte(data.make_source(load_config(TINY)), 1.0) is None


def test_eval_sets_are_scored_with_the_runs_tokenizer(tmp_path, corpus):
  other = tmp_path / "other.txt"
  other.write_text("another domain entirely. " * 200)
  source = data.make_source(load_config(TINY, text_args(
      tmp_path, corpus, f"--config.data.eval_sets=other={other}")))
  (name, scored), = source.eval_sets.items()
  assert name == "other" and scored.tokenizer is source.tokenizer
  assert scored.sequences("eval", 0, 4).shape == (4, 65)
  assert scored.tokens_per_byte == 1.0


@pytest.mark.parametrize("value, message", [
    ("gone={missing}", "is neither a file"),
    ("empty={empty}", "holds no text"),
    ("nameonly", "NAME=PATH"),
])
def test_a_missing_or_empty_eval_set_is_one_line_exit_2_and_writes_nothing(
    tmp_path, capsys, corpus, value, message):
  (tmp_path / "empty.txt").write_text("\n\n  \n")
  value = value.format(missing=tmp_path / "nope.txt", empty=tmp_path / "empty.txt")
  workdir = tmp_path / "never"
  argv = ["--config", TINY, "--workdir", str(workdir), *FAST_20,
          *text_args(tmp_path, corpus, f"--config.data.eval_sets={value}")]
  assert train.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1, err
  assert not workdir.exists()


def test_a_synthetic_run_refuses_eval_sets(tmp_path, capsys, corpus):
  workdir = tmp_path / "never"
  assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST_20,
                     f"--config.data.eval_sets=x={corpus}"]) == 2
  err = capsys.readouterr().err.strip()
  assert "needs a text or tfds source" in err and len(err.splitlines()) == 1, err
  assert not workdir.exists()


@needs_text
@pytest.mark.slow
def test_a_text_run_reports_bits_per_byte_for_each_domain(tmp_path):
  workdir = tmp_path / "shakespeare"
  sets = ",".join(f"{name}={os.path.join(TEXT, name + '.txt')}" for name in ("state_union", "inaugural"))
  assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST_20, *text_args(
      tmp_path, os.path.join(TEXT, "shakespeare.txt"), f"--config.data.eval_sets={sets}")]) == 0
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    evals = [row for row in map(json.loads, f) if "eval_loss" in row]
  for row in evals:
    assert row["eval_bpb"] == pytest.approx(row["eval_loss"] / math.log(2), rel=1e-12)
    assert set(row["eval_sets"]) == {"state_union", "inaugural"}
    for scored in row["eval_sets"].values():
      assert scored["bpb"] == pytest.approx(scored["loss"] / math.log(2), rel=1e-12)
  with open(os.path.join(workdir, "result.json")) as f:
    result = json.load(f)
  assert result["final_eval_bpb"] == evals[-1]["eval_bpb"]
  assert result["eval_sets"] == evals[-1]["eval_sets"]
  columns = tables.flatten(result)
  assert {"final_eval_bpb", "eval_sets.state_union.bpb", "eval_sets.inaugural.loss"} <= set(columns)
