"""The W&B Report spec, checked offline, and the wandb-workspaces Report built from it."""
import json
import warnings

import pytest

from analysis import wandb_report

with warnings.catch_warnings():  # the library's own pydantic deprecation notices
  warnings.simplefilter("ignore", DeprecationWarning)
  import wandb_workspaces.reports.v2 as wr

FIT = {
    "n_points": 28,
    "chinchilla_approach3": {"E": 1.5, "A": 50.0, "B": 150.0, "alpha": 0.35, "beta": 0.3,
                             "a": 0.46, "b": 0.54},
    "chinchilla_approach2": {"a": 0.47, "b": 0.53, "budgets": [1e12, 4e12]},
    "frontier": [{"flops": f, "n_opt": 1e5, "d_opt": 2e6, "tokens_per_param": 20.0}
                 for f in (1e12, 4e12, 1e18)],
    "plots": {"frontier": "frontier.png", "isoflop": "isoflop.png", "contours": "contours.png"},
}


def _panels(spec, kind):
  return [(block, panel) for block in spec["blocks"] if block["type"] == "panel_grid"
          for panel in block["panels"] if panel["type"] == kind]


def test_spec_has_loss_curves_by_n_isoflop_panels_and_the_figures():
  spec = wandb_report.report_spec(FIT, "scaling", "me")
  assert json.loads(json.dumps(spec)) == spec  # plain JSON
  assert (spec["entity"], spec["project"]) == ("me", "scaling")
  (grid, line), _ = _panels(spec, "line")
  assert (line["x"], line["y"]) == ("flops", ["train_loss"]) and line["log_x"] and line["log_y"]
  assert grid["groupby"] == ["config.N"]
  isoflop = _panels(spec, "scatter")
  assert [p["title"] for _, p in isoflop] == ["IsoFLOP C = 1e+12", "IsoFLOP C = 4e+12"]
  grid, panel = isoflop[1]
  assert "Config('C') >= 3.6e+12" in grid["filters"]  # no budget column: the runs' C
  assert "Config('C') <= 4.4e+12" in grid["filters"]
  assert (panel["x"], panel["y"]) == ("config:N", "summary:final_eval_loss")
  (grid, media), = _panels(spec, "media")
  assert media["media_keys"] == ["frontier", "isoflop", "contours"]
  assert grid["filters"] == "Metric('JobType') == 'analysis'"


def test_the_spec_builds_a_wandb_workspaces_report_offline():
  report = wandb_report.build(wandb_report.report_spec(FIT, "scaling"), entity="me")
  assert isinstance(report, wr.Report) and report.entity == "me" and report.project == "scaling"
  grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
  assert len(grids) == 1 + 2 + 1  # curves, two IsoFLOP budgets, figures
  assert isinstance(grids[0].panels[0], wr.LinePlot) and grids[0].runsets[0].groupby == [
      "config.N"]
  scatter = grids[1].panels[0]
  assert isinstance(scatter, wr.ScatterPlot) and scatter.x == wr.Config("N")
  assert isinstance(grids[-1].panels[0], wr.MediaBrowser)
  assert isinstance(report.blocks[0], wr.H1)


def test_disabled_mode_writes_the_spec_and_the_publish_command(tmp_path):
  info = wandb_report.publish(FIT, str(tmp_path), mode="disabled")
  assert info["run"] is None
  assert info["publish_command"] == f"python -m analysis.wandb_report {tmp_path}/wandb_report.json"
  with open(info["report_spec"]) as f:
    assert json.load(f)["blocks"][0] == {"type": "h1", "text": "Scaling laws"}
  with pytest.raises(ValueError, match="unknown block type"):
    wandb_report.build({"project": "p", "title": "t", "description": "", "blocks": [
        {"type": "video"}]}, entity="me")


def test_report_spec_of_a_degenerate_fit_says_n_a_instead_of_failing():
  """beta -> 0 leaves Approach 3 without a finite frontier (seen on encoder-decoder sweeps)."""
  fit = {"n_points": 19, "plots": {},
         "chinchilla_approach3": {"E": 1.67, "A": 2.0, "B": 3.0, "alpha": -555.0, "beta": 1e-9,
                                  "a": None, "b": float("inf"), "G": None, "ci95": {}},
         "frontier": [{"flops": 1e18, "n_opt": None, "d_opt": float("nan"),
                       "tokens_per_param": None}]}
  spec = wandb_report.report_spec(fit, "scaling")
  text = json.dumps(spec)
  assert "N_opt ∝ C^n/a" in spec["blocks"][1]["text"]
  assert "| 1e+18 | n/a | n/a | n/a |" in text


# ------------------------------------------------- the Report against real offline runs

def _leaves(tree):
  return [leaf for node in tree.filters or [] for leaf in _leaves(node)] if tree.filters else [tree]


def _stored(config: dict, path: str):
  """The value at a backend config path, W&B storing each top-level key as {"value": ...}."""
  node = {key: {"value": value} for key, value in config.items()}
  for part in path.split("."):
    node = node[part]
  return node


def _selects(run: dict, leaf) -> bool:
  """Whether a filter leaf (a wandb-workspaces Filters) keeps `run`, a record read back."""
  if leaf.key.section == "run":
    value = {"jobType": run["job_type"], "group": run["group"]}[leaf.key.name]
  else:
    assert leaf.key.section == "config" and "." not in leaf.key.name, leaf.key  # flat keys only
    value = run["config"].get(leaf.key.name)
  compare = {"=": lambda a, b: a == b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}
  return value is not None and compare[leaf.op](value, leaf.value)


@pytest.mark.slow
def test_every_panel_of_the_report_reads_keys_real_offline_runs_logged(tmp_path):
  """A real training run of a sweep and the real analysis run, both offline, read back; the
  Report built from the spec; every grid selects one of them and every panel key is theirs."""
  import matplotlib.pyplot as plt
  from wandb_workspaces import expr
  import train
  import wandb_records
  from conftest import ROOT
  sweep_dir = tmp_path / "sweep"
  run_dir = sweep_dir / "runs" / "n1e5_d5e3_abc"
  budget = 4e10
  assert train.main(["--config", f"{ROOT}/experiments/tiny.py", "--workdir", str(run_dir),
                     "--config.train.tokens=5120", "--config.train.log_every=5",
                     "--config.train.eval_tokens=1024", "--config.wandb.mode=offline",
                     "--config.wandb.group=my_sweep", f"--config.wandb.budget={budget}"]) == 0
  out = sweep_dir / "analysis"
  out.mkdir()
  for name in FIT["plots"].values():
    plt.imsave(out / name, [[0.0, 1.0], [1.0, 0.0]])
  fit = {**FIT, "source": str(sweep_dir / "results.csv"), "columns": {"budget": "budget"},
         "bootstrap": {"n_samples": 0, "seed": 0},
         "chinchilla_approach2": {"a": 0.5, "b": 0.5, "budgets": [budget]}}
  info = wandb_report.publish(fit, str(out), mode="offline")
  assert info["group"] == "my_sweep" and info["warnings"] == []
  runs = {}
  for path in wandb_records.run_files(str(run_dir)) + wandb_records.run_files(str(out)):
    run = wandb_records.run(path)
    history = {key.split("/")[0] for row in wandb_records.history(path) for key in row}
    runs[run["job_type"]] = {**run, "history": history,
                             "summary": wandb_records.summary(path)}
  assert set(runs) == {"train", "analysis"}
  with open(info["report_spec"]) as f:
    report = wandb_report.build(json.load(f), entity="me")
  grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
  assert len(grids) == 3  # curves, one IsoFLOP budget, figures
  for grid in grids:
    (runset,) = grid.runsets
    shown = [run for run in runs.values()
             if all(_selects(run, leaf) for leaf in _leaves(expr.expr_to_filters(runset.filters)))]
    assert len(shown) == 1, runset.filters
    run = shown[0]
    for key in runset.groupby:
      group_key = expr.groupby_str_to_key(key)
      assert group_key.section == "config" and _stored(run["config"], group_key.name) is not None
    for panel in grid.panels:
      config = panel._to_model().model_dump(by_alias=True, exclude_none=True)["config"]
      if isinstance(panel, wr.LinePlot):
        assert {config["xAxis"], *config["metrics"]} <= run["history"]
      elif isinstance(panel, wr.ScatterPlot):
        for axis in (config["xAxis"], config["yAxis"]):
          section, key = axis.split(":", 1)
          value = _stored(run["config"], key) if section == "config" else run["summary"][key]
          assert isinstance(value, (int, float)) and not isinstance(value, bool), axis
      else:
        assert set(config["mediaKeys"]) <= run["history"] and config["mediaKeys"]


def test_publishing_without_an_entity_or_a_login_says_why_in_one_line(tmp_path, monkeypatch,
                                                                       capsys):
  monkeypatch.delenv("WANDB_ENTITY", raising=False)
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # no stored login matches it
  info = wandb_report.publish(FIT, str(tmp_path), mode="online")  # never fatal: warnings
  assert info["run"] is None and len(info["warnings"]) == 2
  assert "without a W&B login" in info["warnings"][0] and "publish it later" in info["warnings"][1]
  capsys.readouterr()
  assert wandb_report.main([info["report_spec"]]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: no W&B entity: pass --entity") and len(err.splitlines()) == 1
  assert wandb_report.main([info["report_spec"], "--entity", "me"]) == 1  # the server is asked
  err = capsys.readouterr().err
  assert err.startswith("error: the Report was not saved (") and len(err.splitlines()) == 1
