"""Run planning: a config resolved to the numbers a run trains with (`Plan`), and its hash.

`resolve` checks a config and fills every derived value in (shape from target N, batch, lr,
warmup, evaluation and checkpoint cadence) before anything is compiled or written; the sweep
planner calls it too, so a plan row is exactly the run train.py will train.
"""
import dataclasses
import hashlib
import json
import math

from flax import traverse_util

import data
from data import pool as data_pool
from core import defaults, rundir
from core.config import WANDB_MODES, ConfigError
from model import lora, sizing
from model import recipe as recipe_lib
from training import limits, schedules, tasks
from training.sharding import mesh_shape

# Keys that change how a run is watched, not what it computes: they may differ on resume. The
# recipe only fills in explicit values (train.lr, batch_size, ...), which are hashed instead.
UNHASHED_KEYS = ("name", "wandb", "sweep", "recipe", "eval", "train.log_every",
                 "train.eval_every", "train.checkpoint_every", "train.keep_checkpoints", "train.checkpoint_steps",
                 "train.compilation_cache", "train.replica_batch")
# Bumped only when a default changes what it means (so equal differences would compute
# differently); adding a key with a default that keeps today's behaviour needs no bump.
SCHEMA_VERSION = 1
# The schema of legacy_config_hash (commit 8ae1986): its sections' keys and its unhashed keys.
LEGACY_KEYS = {section: names.split() for section, names in {
    "": "name seed init_from",
    "finetune": "method lora_rank lora_alpha lora_targets",
    "model": "family target_params n_layer d_model n_heads d_ff mlp pos tie_embeddings dtype remat "
             "vocab_size",
    "data": "source path tfds_name tfds_dir text_field tokenizer vocab_size eval_fraction cache_dir",
    "data.synthetic": "vocab_size n_topics zipf_exponent branching dirichlet seed new_topics "
                      "new_topic_weight",
    "train": "tokens seq_len batch_size lr warmup_tokens schedule cooldown_fraction cooldown_shape "
             "min_lr_ratio weight_decay b1 b2 grad_clip grad_accum eval_tokens eval_every log_every "
             "checkpoint_every keep_checkpoints checkpoint_steps divergence_factor "
             "compilation_cache replicas replica_seeds replica_lrs replica_batch",
    "mesh": "data fsdp",
    "wandb": "mode project entity group tags init_timeout budget"}.items()}
# (and the recipe: it resolves to explicit values, as the configs of then held them)
LEGACY_UNHASHED = ("name", "wandb", "sweep", "recipe", "train.log_every", "train.eval_every",
                   "train.checkpoint_every", "train.keep_checkpoints", "train.checkpoint_steps",
                   "train.compilation_cache", "train.replica_batch")


@dataclasses.dataclass(frozen=True)
class Plan:
  """The numbers a run is resolved to before anything is compiled."""
  n_params: int              # non-embedding (Kaplan)
  n_params_total: int        # everything (Chinchilla)
  flops_per_token: float     # counted training FLOPs per token (Chinchilla Appendix F)
  batch_size: int            # sequences per optimiser step
  seq_len: int
  steps: int
  tokens: int                # steps * batch_size * seq_len: the budget D rounded to whole batches
  lr: float
  schedule: str              # train.schedule: the registered schedule (training/schedules/)
  schedule_numbers: dict     # its per-run numbers (Schedule.numbers): warmup, length, cooldowns
  eval_sequences: int
  eval_every: int
  checkpoint_every: int
  # A group of replicas (train.replicas > 1): each one's seed and peak lr; empty for one model.
  replica_seeds: tuple = ()
  replica_lrs: tuple = ()

  @property
  def tokens_per_step(self):
    return self.batch_size * self.seq_len

  @property
  def branch_step(self):
    """Where a branch sweep's branch of this run leaves its trunk (None: the schedule has none)."""
    return schedules.get(self.schedule).branch_step(self.schedule_numbers)

  @property
  def replicas(self):
    return max(1, len(self.replica_seeds))


def config_hash(config) -> str:
  """16 hex digits identifying what a config computes: its difference from the defaults.

  The resolved config and core/defaults.get_config() are compared key by key (flattened JSON);
  keys equal to their default, and UNHASHED_KEYS, are left out, so a key added with a default
  changes no recorded id. SCHEMA_VERSION is hashed with the difference.
  """
  default = _flat(defaults.get_config())
  changed = {key: value for key, value in _flat(config).items()
             if not _under(key, UNHASHED_KEYS) and (key not in default or value != default[key])}
  identity = {"schema": SCHEMA_VERSION, "changed": changed}
  return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _flat(config) -> dict:
  return traverse_util.flatten_dict(json.loads(config.to_json()), sep=".")


def _under(key: str, names) -> bool:
  """Whether flat `key` is one of `names` or inside a section of them."""
  return any(key == name or key.startswith(name + ".") for name in names)


def legacy_config_hash(config) -> str:
  """The id run directories were written under before config_hash (commit 8ae1986): the whole
  resolved config hashed, less the unhashed and inert fine-tuning keys of then. Keys the defaults
  gained since are left out while at their default, as the configs of then did not have them."""
  default = _flat(defaults.get_config())
  whole = traverse_util.flatten_dict(json.loads(config.to_json()), keep_empty_nodes=True, sep=".")
  added = lambda key: (key in default and key.rpartition(".")[2]
                       not in LEGACY_KEYS.get(key.rpartition(".")[0], ()))
  flat = {key: value for key, value in whole.items()
          if not (added(key) and value == default[key])}
  unhashed = LEGACY_UNHASHED + _legacy_inert_keys(flat)
  kept = {key: value for key, value in flat.items() if not _under(key, unhashed)}
  return hashlib.sha256(json.dumps(traverse_util.unflatten_dict(kept, sep="."),
                                   sort_keys=True).encode()).hexdigest()[:16]


def _legacy_inert_keys(flat: dict) -> tuple:
  """Then also left out: the finetune section of a full fine-tuning, and the new-topic keys of a
  synthetic language without new topics."""
  inert = ()
  if flat.get("finetune.method", "full") == "full":
    inert += ("finetune",)
  if not flat.get("data.synthetic.new_topics", 0):
    inert += ("data.synthetic.new_topics", "data.synthetic.new_topic_weight")
  return inert


def same_run(recorded, config) -> bool:
  """Whether a recorded run directory's config is a run of `config`: by config_hash, or by the
  legacy hash of a directory written before it."""
  return (config_hash(recorded) == config_hash(config)
          or legacy_config_hash(recorded) == legacy_config_hash(config))


def round_up(value, multiple):
  return -(-value // multiple) * multiple


def resolve(config, n_devices: int):
  """Validates `config` and fills every derived value in; returns (config, source, model_cfg, plan).

  Writes nothing. Raises ConfigError with a one-line message for anything that cannot run.
  """
  config = config.copy_and_resolve_references()
  train = config.train
  if train.tokens <= 0:
    raise ConfigError(f"train.tokens must be positive, got {train.tokens}")
  if train.lr < 0:
    raise ConfigError(f"train.lr must be positive (0 derives it from N), got {train.lr}")
  if train.seq_len <= 0 or train.grad_accum <= 0:
    raise ConfigError("train.seq_len and train.grad_accum must be positive")
  if config.wandb.mode not in WANDB_MODES:
    raise ConfigError(f"wandb.mode must be offline, online or disabled, got {config.wandb.mode!r}")
  schedule = check_schedule(train)
  recipe = recipe_lib.from_config(config)
  # The recipe's parametrization and base width become explicit values, hashed like its lr.
  config.model.parametrization, config.model.base_width = recipe.parametrize(
      config.model.parametrization, config.model.base_width)
  source = data.make_source(config)
  model_cfg = sizing.model_config_from(config.model, vocab_size=source.vocab_size,
                                       seq_len=train.seq_len, shape_rule=recipe.shape)
  n_params, n_params_total = sizing.count_params(model_cfg)
  multiple_of = math.prod(mesh_shape(config, n_devices)) * train.grad_accum
  if train.batch_size == 0:
    train.batch_size = recipe.batch(n_params, train.tokens, train.seq_len, multiple_of)
  if train.batch_size % multiple_of:
    raise ConfigError(f"train.batch_size={train.batch_size} must be a multiple of devices x "
                      f"grad_accum = {multiple_of}")
  check_pool(config)
  tokens_per_step = train.batch_size * train.seq_len
  steps = round(train.tokens / tokens_per_step)
  if steps < 1:
    raise ConfigError(f"train.tokens={train.tokens} is below one batch ({tokens_per_step} tokens); "
                      "raise the budget or lower train.batch_size")
  if train.lr == 0:
    train.lr = recipe.lr(n_params)
  replica_seeds, replica_lrs = replica_settings(config)
  if train.warmup_tokens == 0:
    train.warmup_tokens = recipe.warmup(n_params, steps * tokens_per_step)
  if train.b2 == 0:
    train.b2 = recipe.beta2(train.batch_size, train.seq_len)
  # Whole evaluation batches, so the sequences scored are exactly those the loss floor is taken on.
  eval_sequences = round_up(max(1, train.eval_tokens // train.seq_len), train.batch_size)
  # Evaluations and checkpoints land on logging steps so resumed runs log the same rows.
  log_every = max(1, train.log_every)
  eval_every = train.eval_every or round_up(max(1, steps // 10), log_every)
  checkpoint_every = train.checkpoint_every or round_up(max(1, steps // 10), log_every)
  # The resolved config holds the explicit shape, so it rebuilds the same model on its own.
  for key, value in dataclasses.asdict(model_cfg).items():
    # dtype stays "auto" so a run's hash does not depend on the machine that planned it.
    if key in config.model and key != "dtype":
      config.model[key] = value
  config.model.target_params = 0.0
  if lora.settings_of(config) is not None and not config.init_from:
    raise ConfigError("finetune.method=lora trains adapters on a trained model; set init_from to "
                      "the run directory to adapt")
  if config.init_from:
    check_init_from(config.init_from, model_cfg)
  tasks.specs(config, source)  # eval.tasks settings that cannot run are refused here
  plan = Plan(
      n_params=n_params, n_params_total=n_params_total,
      flops_per_token=sizing.flops_per_token(model_cfg, train.seq_len),
      batch_size=train.batch_size, seq_len=train.seq_len, steps=steps,
      tokens=steps * tokens_per_step, lr=train.lr, schedule=train.schedule,
      schedule_numbers=schedule.numbers(train, steps, tokens_per_step),
      eval_sequences=eval_sequences, eval_every=eval_every, checkpoint_every=checkpoint_every,
      replica_seeds=replica_seeds, replica_lrs=replica_lrs)
  limits.check(config, model_cfg, plan)
  return config, source, model_cfg, plan


def check_pool(config) -> None:
  """A finite pool (data.unique_tokens, data/pool.py) holds at least one batch of sequences."""
  pool = data_pool.pool_sequences(config)
  if config.data.get("unique_tokens", 0) and pool < config.train.batch_size:
    raise ConfigError(f"data.unique_tokens={config.data.unique_tokens} holds {pool} sequences of "
                      f"{config.train.seq_len} tokens, fewer than one batch of "
                      f"{config.train.batch_size}; raise it or lower train.batch_size")


def check_schedule(train) -> schedules.Schedule:
  """train's schedule (its keys checked, training/schedules/) and checkpoint steps."""
  schedule = schedules.check(train)
  if any(not isinstance(step, int) or step < 1 for step in train.checkpoint_steps):
    raise ConfigError(f"train.checkpoint_steps must be positive step numbers, got "
                      f"{train.checkpoint_steps}")
  return schedule


def replica_settings(config) -> tuple[tuple, tuple]:
  """(seeds, peak lrs) of a group of train.replicas models, or ((), ()) for one model."""
  train = config.train
  replicas, seeds, lrs = train.replicas, tuple(train.replica_seeds), tuple(train.replica_lrs)
  if replicas < 1 or train.replica_batch < 0:
    raise ConfigError(f"train.replicas must be >= 1 and train.replica_batch >= 0, got "
                      f"{replicas} and {train.replica_batch}")
  if replicas == 1:
    if seeds or lrs:
      raise ConfigError("train.replica_seeds and train.replica_lrs need train.replicas > 1; "
                        "for one model set seed and train.lr")
    return (), ()
  for name, values in (("replica_seeds", seeds), ("replica_lrs", lrs)):
    if values and len(values) != replicas:
      raise ConfigError(f"train.{name} has {len(values)} values for train.replicas={replicas}; "
                        "give one per replica or none")
  if any(not isinstance(lr, (int, float)) or lr <= 0 for lr in lrs):
    raise ConfigError(f"train.replica_lrs must be positive numbers, got {lrs}")
  seeds = tuple(int(seed) for seed in seeds) or tuple(config.seed + i for i in range(replicas))
  return seeds, tuple(float(lr) for lr in lrs) or (train.lr,) * replicas


def replica_config(config, plan, index: int):
  """The config of replica `index` of a group: the single run it trains, with its own seed and lr.

  It hashes like that run's own config, so a replica directory is interchangeable with the
  directory `train.py` would have written for it alone.
  """
  single = config.copy_and_resolve_references()
  single.seed = plan.replica_seeds[index]
  single.train.lr = plan.replica_lrs[index]
  single.train.replicas, single.train.replica_seeds, single.train.replica_lrs = 1, (), ()
  return single


def check_init_from(run_dir: str, model_cfg) -> None:
  """Continued pre-training needs a finished run of exactly this model shape."""
  try:
    source_model = rundir.read_config(run_dir).model
  except FileNotFoundError:
    raise ConfigError(f"init_from={run_dir!r} is not a run directory (no config.json)") from None
  ours = dataclasses.asdict(model_cfg)
  # A run written before the parametrization keys existed is sp (core/defaults.py's values).
  model_defaults = defaults.get_config().model
  recorded = lambda key: source_model.get(key, model_defaults.get(key))
  differing = [f"{key} {recorded(key)} vs {ours[key]}" for key in
               ("family", "vocab_size", "n_layer", "d_model", "n_heads", "d_ff", "mlp", "pos",
                "tie_embeddings", "parametrization", "base_width", "base_depth", "base_head_dim")
               if recorded(key) != ours[key]]
  if differing:
    raise ConfigError(f"init_from={run_dir!r} has another model shape ({', '.join(differing)}); "
                      "continued pre-training needs the same shape, parametrization and vocabulary")


def check_workdir(workdir: str, config, force: bool):
  """The status a run of `config` recorded in `workdir` (None: nothing there, or --force);
  refuses a directory that holds another config's run. A directory written before config_hash
  (under legacy_config_hash) of this config is the same run: it resumes or reports completed."""
  if force:
    return None
  try:
    recorded = rundir.read_config(workdir)
  except FileNotFoundError:
    return None
  if not same_run(recorded, config):
    raise ConfigError(f"{workdir} holds a run of a different config (hash {config_hash(recorded)}, "
                      f"this one {config_hash(config)}); use another --workdir, or --force to "
                      "overwrite it")
  return rundir.read_status(workdir)
