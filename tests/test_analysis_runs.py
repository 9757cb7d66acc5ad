"""analysis.runs: reading tables as spreadsheets and hand edits leave them."""
import numpy as np
import pytest

from analysis import runs as runs_lib

HEADER = "Model Size,Training FLOP,loss"
ROWS = ["1e8,1e18,3.1", "2e8,1e18,3.0", "4e8,1e18,3.05", "1e8,1e19,2.9", "2e8,1e19,2.8",
        "4e8,1e19,2.75"]


def _load(tmp_path, text, encoding="utf-8", **kwargs):
  path = tmp_path / "table.csv"
  path.write_bytes(text.encode(encoding))
  return runs_lib.load(str(path), **kwargs)


def test_a_utf8_byte_order_mark_hides_no_column(tmp_path):
  runs = _load(tmp_path, "\ufeff" + "\n".join([HEADER] + ROWS) + "\n")
  assert runs.columns["n"] == "Model Size" and runs.n[0] == 1e8


def test_spaces_after_the_commas_hide_no_column(tmp_path):
  text = "\n".join([HEADER.replace(",", ", ")] + [r.replace(",", ", ") for r in ROWS]) + "\n"
  runs = _load(tmp_path, text)
  assert runs.columns["c"] == "Training FLOP" and runs.loss.tolist()[:2] == [3.1, 3.0]


def test_empty_lines_are_skipped_and_rows_keep_their_file_lines(tmp_path):
  text = "\n".join([HEADER, ROWS[0], "", ROWS[1], "x,1e18,3.0"] + ROWS[2:]) + "\n"
  with pytest.raises(runs_lib.DataError, match=r"table.csv, line 5, column 'Model Size': 'x' is "
                                               "not a number$"):
    _load(tmp_path, text)


@pytest.mark.parametrize("text, message", [
    ("a,b,a\n1,2,3\n", "line 1: the header names column 'a' twice"),
    (HEADER + "\n1e8,1e18,3.1,7\n", "line 2: 4 cells, but the header (line 1) names 3 columns"),
    (HEADER + "\n" + ",,\n", "line 2: the line holds only whitespace or empty cells; delete it"),
    (HEADER + "\n1e8,1e18,\n", "line 2, column 'loss': the loss column has 1 missing, NaN or "
                               "non-positive values in fitted rows (line 2='')"),
    (HEADER + "\n1e300,1e18,3\n1e-300,1e18,3\n", "line 3: the derived token count"),
])
def test_bad_tables_name_the_line(tmp_path, text, message):
  with pytest.raises(runs_lib.DataError, match="table.csv, " + message.replace("(", r"\(")
                     .replace(")", r"\)")):
    _load(tmp_path, text)


def test_not_utf8_is_one_line(tmp_path):
  with pytest.raises(runs_lib.DataError, match="is not UTF-8 text"):
    _load(tmp_path, "Model Size,Training FLOP,loss\n1e8,1e18,3\u00e9\n", encoding="latin-1")


def test_branches_of_one_trunk_are_one_run(tmp_path):
  text = "\n".join(["run_id,trunk_id,n_params,tokens,final_eval_loss",
                    "a,t1,1e5,1e6,3.0", "b,t1,1e5,2e6,2.9", "c,,2e5,1e6,2.8"]) + "\n"
  runs = _load(tmp_path, text)
  assert runs.columns["run"] == "trunk_id"
  assert runs.source_run.tolist() == ["t1", "t1", "c"]
  assert np.isnan(runs.budget).all()


def test_a_run_twice_in_a_table_is_refused_in_one_line(tmp_path):
  header = "run_id,status," + HEADER
  rows = [f"r{i},completed,{row}" for i, row in enumerate(ROWS)]
  with pytest.raises(runs_lib.DataError, match=r"table.csv, line 8: run 'r2' is there already "
                                               r"\(line 4\); keep one row per run \(--dedupe "
                                               r"keeps the last\)$"):
    _load(tmp_path, "\n".join([header] + rows + [rows[2]]) + "\n")
  assert len(_load(tmp_path, "\n".join([header] + rows) + "\n")) == len(ROWS)
