"""The training recipe (model/recipe.py): the default is today's rules to the bit; the config
selects and overrides it; it resolves to explicit values only."""
import math
import os

import jax
import pytest

import sweep
import train
from sweeps.kinds import isoflop  # noqa: F401 (default_sweep.py's kind, imported at collection)
from conftest import ROOT
from core.config import ConfigError, load_config
from model import parametrization, sizing
from model.recipe import RECIPES, Recipe
from training import plan as plan_lib

TINY = os.path.join(ROOT, "experiments", "tiny.py")
DEFAULT = RECIPES["default"]


# The rules as model/hparams.py wrote them before the recipe (commit 8ae1986), verbatim.
def reference_lr(n_params):
  return 3e-3 * (n_params / 1e6) ** (-1 / 3)


def reference_batch(n_params, tokens, seq_len, multiple_of=1):
  target_sequences = 4096 * math.sqrt(n_params / 1e5) / seq_len
  sequences = 2 ** max(0, round(math.log2(max(target_sequences, 1))))
  while sequences > 1 and tokens / (sequences * seq_len) < 100:
    sequences //= 2
  return max(multiple_of, sequences // multiple_of * multiple_of)


def reference_warmup(n_params, tokens):
  return int(min(n_params, 0.1 * tokens))


GRID_N = [10 ** (e / 4) for e in range(12, 41)] + [12_384, 98_624, 590_592, 3_000]
GRID_D = [10 ** (e / 3) for e in range(12, 37)] + [1280, 40_960, 1_000_000]


def test_the_default_recipe_is_todays_rules_to_the_bit():
  for n in GRID_N:
    assert DEFAULT.lr(n) == reference_lr(n)
    assert DEFAULT.beta2(16, 128) == 0.95
    for d in GRID_D:
      assert DEFAULT.warmup(n, d) == reference_warmup(n, d)
      for seq_len in (16, 128, 1024):
        for multiple_of in (1, 8):
          assert DEFAULT.batch(n, d, seq_len, multiple_of) == reference_batch(n, d, seq_len,
                                                                              multiple_of)
  for n in (1e4, 1e5, 6e5, 1e7, 1e9):
    for mlp in ("gelu", "swiglu"):
      for family in ("decoder", "encoder_decoder"):
        assert DEFAULT.shape(n, mlp, family) == sizing.shape_for_params(n, mlp, family)


def test_the_rules_in_numbers():
  assert DEFAULT.lr(1e6) == pytest.approx(3e-3)
  assert DEFAULT.lr(8e6) == pytest.approx(1.5e-3)
  assert DEFAULT.batch(1e5, 1e9, 128) == 32          # 4096 tokens at N = 1e5
  assert DEFAULT.batch(1e7, 1e9, 128) == 256         # x sqrt(100) = 10, to a power of 2
  assert 1e6 / (DEFAULT.batch(1e7, 1e6, 128) * 128) >= DEFAULT.min_steps  # at least 100 steps
  assert DEFAULT.warmup(1e5, 1e7) == 100_000 and DEFAULT.warmup(1e6, 1e6) == 100_000
  small = Recipe(b2_small=0.99, b2_small_below=4096)
  assert small.beta2(16, 128) == 0.99 and small.beta2(32, 128) == 0.95


def resolved(*overrides):
  # tiny.py sets its lr; 0 lets the recipe derive it.
  config = load_config(TINY, ["--config.wandb.mode=disabled", "--config.train.lr=0.0", *overrides])
  return plan_lib.resolve(config, jax.device_count())


def test_an_override_changes_the_resolved_values_and_so_the_id_not_the_recipe_section():
  config, _, _, plan = resolved()
  assert config.train.b2 == 0.95 and plan.lr == DEFAULT.lr(plan.n_params)
  lower, _, _, lower_plan = resolved("--config.recipe.lr_base=1e-3")
  assert lower_plan.lr == pytest.approx(1e-3 * (plan.n_params / 1e6) ** (-1 / 3))
  assert plan_lib.config_hash(lower) != plan_lib.config_hash(config)
  # The same explicit lr by hand is the same run: only resolved values are hashed.
  by_hand, _, _, _ = resolved(f"--config.train.lr={lower_plan.lr!r}")
  assert plan_lib.config_hash(by_hand) == plan_lib.config_hash(lower)
  beta, _, _, _ = resolved("--config.recipe.b2_small=0.99", "--config.recipe.b2_small_below=1e9")
  assert beta.train.b2 == 0.99
  # An explicit value wins over the recipe.
  explicit, _, _, _ = resolved("--config.train.b2=0.9", "--config.recipe.b2=0.99")
  assert explicit.train.b2 == 0.9


def test_the_shape_follows_the_recipe():
  target = ["--config.model.n_layer=0", "--config.model.d_model=0", "--config.model.n_heads=0",
            "--config.model.d_ff=0", "--config.model.target_params=1e6"]
  deep, _, deep_model, _ = resolved(*target, "--config.recipe.aspect_ratio=16.0")
  _, _, wide_model, _ = resolved(*target)
  assert deep_model.n_layer > wide_model.n_layer
  assert deep.model.n_layer == deep_model.n_layer and deep.model.target_params == 0


def test_bad_recipes_are_config_errors():
  with pytest.raises(ConfigError, match="recipe.name"):
    resolved("--config.recipe.name=nope")
  with pytest.raises(ConfigError, match="must be positive"):
    resolved("--config.recipe.min_steps=0")
  with pytest.raises(ConfigError, match="within"):
    resolved("--config.recipe.b2=1.5")


DEFAULT_SWEEP = os.path.join(ROOT, "experiments", "default_sweep.py")


def sweep_point(*overrides):
  """A point of the default sweep (its batch 8, WSD, Zipf 1.4 source), resolved."""
  config = load_config(DEFAULT_SWEEP, ["--config.wandb.mode=disabled", "--config.train.tokens=1e6",
                                       "--config.model.target_params=4096", *overrides])
  return plan_lib.resolve(config, jax.device_count())


def test_the_mup_recipe_resolves_to_explicit_mup_values_at_two_sizes():
  mup = RECIPES["mup"]
  assert (mup.parametrization, mup.base_width) == ("mup", 16)
  assert (mup.lr_base, mup.lr_exponent) == (0.044, 0.0)
  # The sweep's smallest shape is the base (1 layer, d_model 16, 1 head of 16), its largest
  # 1 layer of d_model 144 (9 heads of 16): both at lr_base, base width 16 and base head dim 16,
  # the largest's hidden matrices at lr_base * 16 / 144.
  for target, d_model, n_heads in ((4096, 16, 1), (262144, 144, 9)):
    config, _, model_cfg, plan = sweep_point("--config.recipe.name=mup",
                                             f"--config.model.target_params={target}")
    shape = (config.model.d_model, config.model.n_heads, config.model.n_layer)
    assert shape == (d_model, n_heads, 1)
    assert (config.model.parametrization, config.model.base_width) == ("mup", 16)
    assert config.model.base_head_dim == 16.0 and plan.lr == config.train.lr == 0.044
    assert parametrization.groups(model_cfg)["hidden"].lr == pytest.approx(16 / d_model)
    # The resolved values are the run's id: the same values given by hand are the same run.
    by_hand, _, _, _ = sweep_point("--config.model.parametrization=mup",
                                   "--config.model.base_width=16", "--config.train.lr=0.044",
                                   f"--config.model.target_params={target}")
    assert plan_lib.config_hash(by_hand) == plan_lib.config_hash(config)
    sp, _, _, _ = sweep_point(f"--config.model.target_params={target}")
    assert plan_lib.config_hash(sp) != plan_lib.config_hash(config)


def test_explicit_values_win_over_the_mup_recipe():
  lr, _, _, _ = sweep_point("--config.recipe.name=mup", "--config.train.lr=0.01")
  assert lr.train.lr == 0.01 and lr.model.parametrization == "mup"
  wider, _, _, _ = sweep_point("--config.recipe.name=mup", "--config.model.base_width=32")
  assert wider.model.base_width == 32
  deep, _, _, _ = sweep_point("--config.recipe.name=mup", "--config.model.base_depth=1",
                              "--config.model.parametrization=completep")
  assert (deep.model.parametrization, deep.model.base_width, deep.model.base_depth) == (
      "completep", 16, 1)
  overridden, _, _, _ = sweep_point("--config.recipe.name=mup", "--config.recipe.base_width=32")
  assert overridden.model.base_width == 32


def test_the_default_recipe_keeps_sp_and_todays_run_ids():
  assert DEFAULT.parametrize("sp", 0) == ("sp", 0) and DEFAULT.parametrize("mup", 32) == ("mup", 32)
  # The first row of the default sweep as planned by main before the mup recipe (commit 3ce395a,
  # /work/runs/default_idle/plan.csv row 0: n3.1e3_d1.4e6_0e8729ad788bf25f).
  config, _, _, plan = sweep_point("--config.seed=0", "--config.train.warmup_tokens=3120",
                                   "--config.model.target_params=4096.0",
                                   "--config.train.tokens=1417216", "--config.wandb.budget=8e10")
  assert config.model.parametrization == "sp" and config.model.base_width == 0
  assert plan.lr == reference_lr(3120)
  assert plan_lib.config_hash(config) == "0e8729ad788bf25f"
  named, _, _, _ = sweep_point("--config.recipe.name=default", "--config.seed=0",
                               "--config.train.warmup_tokens=3120",
                               "--config.model.target_params=4096.0",
                               "--config.train.tokens=1417216")
  assert plan_lib.config_hash(named) == "0e8729ad788bf25f"


def test_a_mup_recipe_without_a_base_width_fails_in_one_line_before_anything_runs(tmp_path,
                                                                                   capsys):
  with pytest.raises(ConfigError, match="recipe.base_width"):
    sweep_point("--config.recipe.name=mup", "--config.recipe.base_width=0")
  with pytest.raises(ConfigError, match="recipe.parametrization"):
    sweep_point("--config.recipe.parametrization=nope")
  workdir = tmp_path / "run"
  assert train.main(["--config", DEFAULT_SWEEP, "--workdir", str(workdir),
                     "--config.recipe.name=mup", "--config.recipe.base_width=0"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "recipe.base_width" in err and not workdir.exists()
  sweep_dir = tmp_path / "sweep"
  assert sweep.main(["--workdir", str(sweep_dir), "--config.recipe.name=mup",
                     "--config.recipe.base_width=0"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "recipe.base_width" in err and not sweep_dir.exists()
