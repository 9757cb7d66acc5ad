"""Config files: `get_config()` loaded from a Python file, `--config.a.b=value` overrides, and the
one-line error a config that cannot run raises.

An experiment is a Python file whose `get_config()` returns an ml_collections ConfigDict (usually
core/defaults.py's with a few keys changed). An override's value is parsed as a Python literal
and must fit the key's type; an unknown key is an error.
"""
import ast
import importlib.util
import os

import ml_collections


WANDB_MODES = ("offline", "online", "disabled")
COMPILATION_CACHE_ENV = "SCALING_COMPILATION_CACHE"  # names train.compilation_cache (apply_environment)


class ConfigError(ValueError):
  """A config that cannot be run; the message says what to fix, in one line."""


def one_line(error: BaseException) -> str:
  """An exception as one short line, for a warning that must not take over the output."""
  return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def load_config(path: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
  """Loads `get_config()` from a Python file and applies `--config.a.b=value` overrides."""
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path!r} does not exist; pass --config experiments/NAME.py")
  spec = importlib.util.spec_from_file_location(
      "experiment_" + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path} has no get_config(); an experiment file must define one")
  config = module.get_config()
  apply_environment(config)
  for override in overrides:
    apply_override(config, override)
  size_from_command_line(config, [override_key(override) for override in overrides])
  return config


def override_key(override: str) -> str:
  """"a.b" of `--config.a.b=value`."""
  return override.removeprefix("--").removeprefix("config.").split("=", 1)[0]


def apply_environment(config) -> None:
  """WANDB_MODE set in the shell wins over the config file's wandb.mode (a researcher sets it once
  and expects it to hold); --config.wandb.mode, applied after, wins over both. A value W&B does not
  know is left to W&B, whose refusal is one warning (training/wandb_run.py)."""
  mode = os.environ.get("WANDB_MODE", "")
  if mode in WANDB_MODES and "wandb" in config and "mode" in config.wandb:
    config.wandb.mode = mode
  # SCALING_COMPILATION_CACHE likewise names train.compilation_cache for every run of a shell: the
  # test suite's one cache per session (tests/conftest.py), so no test writes into ~/.cache.
  cache = os.environ.get(COMPILATION_CACHE_ENV)
  if cache is not None and "train" in config and "compilation_cache" in config.train:
    config.train.compilation_cache = cache


SHAPE_KEYS = ("n_layer", "d_model", "n_heads", "d_ff")


def size_from_command_line(config, given: list[str]) -> None:
  """--config.model.target_params on the command line derives the shape, so it replaces the shape
  a config file fixes (experiments/tiny.py's); shape keys given on the command line as well stay
  and conflict with it (model/sizing.py refuses the pair)."""
  if "model.target_params" in given and config.model.target_params > 0:
    for key in SHAPE_KEYS:
      if f"model.{key}" not in given:
        config.model[key] = 0


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
  """Applies one `--config.a.b=value` (or `a.b=value`) to `config` in place."""
  text = override.removeprefix("--").removeprefix("config.")
  if "=" not in text:
    raise ConfigError(f"override {override!r} has no value; write --config.KEY=VALUE")
  key, raw = text.split("=", 1)
  *parents, leaf = key.split(".")
  node = config
  for i, part in enumerate(parents):
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise ConfigError(f"unknown config key {'.'.join(parents[:i + 1])!r} in {override!r}")
    node = node[part]
  if leaf not in node or isinstance(node[leaf], ml_collections.ConfigDict):
    known = ", ".join(sorted(k for k in node.keys() if not isinstance(node[k], ml_collections.ConfigDict)))
    raise ConfigError(f"unknown config key {key!r}; keys here are: {known}")
  node[leaf] = _parse_value(raw, node[leaf], key)


def _parse_value(raw: str, current, key: str):
  if isinstance(current, str):
    return raw
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    if isinstance(current, bool) and raw.lower() in ("true", "false"):
      return raw.lower() == "true"
    raise ConfigError(f"--config.{key}={raw!r} is not a valid {type(current).__name__}") from None
  if isinstance(current, bool):
    if not isinstance(value, bool):
      raise ConfigError(f"--config.{key} must be True or False, got {raw!r}")
    return value
  if isinstance(current, int) and isinstance(value, float) and value.is_integer():
    value = int(value)  # 1e6 for an integer key
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if current is not None and not isinstance(value, type(current)):
    raise ConfigError(f"--config.{key} must be a {type(current).__name__}, got {raw!r}")
  return value
