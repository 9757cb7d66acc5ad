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
  assert grid["groupby"] == ["config.scaling.N"]
  isoflop = _panels(spec, "scatter")
  assert [p["title"] for _, p in isoflop] == ["IsoFLOP C = 1e+12", "IsoFLOP C = 4e+12"]
  grid, panel = isoflop[1]
  assert "Config('scaling.C_6ND') >= 3.6e+12" in grid["filters"]
  assert "Config('scaling.C_6ND') <= 4.4e+12" in grid["filters"]
  assert (panel["x"], panel["y"]) == ("config:scaling.N", "summary:final_eval_loss")
  (grid, media), = _panels(spec, "media")
  assert media["media_keys"] == ["frontier", "isoflop", "contours"]
  assert grid["filters"] == "Metric('JobType') == 'analysis'"


def test_the_spec_builds_a_wandb_workspaces_report_offline():
  report = wandb_report.build(wandb_report.report_spec(FIT, "scaling"), entity="me")
  assert isinstance(report, wr.Report) and report.entity == "me" and report.project == "scaling"
  grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
  assert len(grids) == 1 + 2 + 1  # curves, two IsoFLOP budgets, figures
  assert isinstance(grids[0].panels[0], wr.LinePlot) and grids[0].runsets[0].groupby == [
      "config.scaling.N"]
  scatter = grids[1].panels[0]
  assert isinstance(scatter, wr.ScatterPlot) and scatter.x == wr.Config("scaling.N")
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
