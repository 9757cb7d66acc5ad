"""The in-context learning tasks of `eval.tasks` in the training loop: their settings checked
before anything runs, and a model's figures on them at every evaluation.

The tasks and their scoring are data/tasks.py's. Here every task set of a run is built once, the
candidates of all of them are padded on the right to one length (a causal model never reads a
token after the ones it scores, so padding changes no score) and scored in one jitted call per
evaluation: each row's summed log-likelihood of its candidate's tokens, for every replica of a
group at once. The host ranks them one step late, with the step's other metrics.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from core.config import ConfigError
from data import tasks as task_lib

CPU_CHUNK = 128  # rows per chunk of the scoring call on a CPU
ROWS = P(None, ("data", "fsdp"), None)  # [chunks, rows, length]: each chunk over the devices


def specs(config, source) -> list[task_lib.TaskSpec]:
  """The TaskSpecs of config.eval.tasks on `source`, one per task and shot count ([]: none);
  ConfigError, in one line, for settings that cannot run."""
  settings = config.get("eval", {}).get("tasks")
  if settings is None or not settings.names.strip():
    return []
  auto = settings.names.strip() == "auto"
  names = (["topic"] if auto else [name.strip() for name in settings.names.split(",")
                                   if name.strip()])
  unknown = [name for name in names if name not in task_lib.TASKS]
  if unknown:
    raise ConfigError(f"eval.tasks.names: unknown task {unknown[0]!r}; use a comma-separated list "
                      f"of {', '.join(task_lib.TASKS)}, auto (the source's tasks) or '' (none)")
  language = getattr(source, "language", None)
  decoder = config.model.family == "decoder"
  if auto and (not decoder or language is None or language.n_topics < 2):
    return []  # auto: the topic task needs a decoder on a synthetic source of 2 topics or more
  if not decoder:
    raise ConfigError(f"eval.tasks.names={settings.names!r}: the tasks score next-token "
                      f"log-likelihoods, so they need model.family=decoder (got "
                      f"{config.model.family}); set eval.tasks.names=''")
  topic = "topic" in names
  if topic and language is None:
    raise ConfigError(f"eval.tasks.names={settings.names!r}: the topic task needs the synthetic "
                      f"source (data.source={config.data.source}); set eval.tasks.names=''")
  shots = tuple(settings.shots)
  if (not shots or len(set(shots)) < len(shots)
      or any(not isinstance(k, int) or isinstance(k, bool) or k < 0 for k in shots)):
    raise ConfigError(f"eval.tasks.shots must be distinct whole numbers >= 0, e.g. (0, 1, 4); "
                      f"got {settings.shots}")
  for key, least in (("choices", 2), ("examples", 1), ("example_tokens", 1),
                     ("prefix_tokens", 1), ("continuation_tokens", 1), ("passage_tokens", 1)):
    if settings[key] < least:
      raise ConfigError(f"eval.tasks.{key} must be >= {least}, got {settings[key]}")
  if topic and language.n_topics < 2:
    raise ConfigError("eval.tasks: the topic task needs a language of at least 2 topics "
                      f"(data.synthetic.n_topics={config.data.synthetic.n_topics})")
  out = []
  for name in dict.fromkeys(names):
    if name == "continuation":  # a passage and its continuation: no examples
      out.append(task_lib.TaskSpec(name, 0, settings.choices, settings.examples, 0,
                                   settings.passage_tokens, settings.continuation_tokens,
                                   settings.seed))
      continue
    out += [task_lib.TaskSpec(name, k, settings.choices, settings.examples,
                              settings.example_tokens, settings.prefix_tokens,
                              settings.continuation_tokens, settings.seed) for k in shots]
  longest = max(out, key=lambda spec: spec.length)
  if longest.length > config.train.seq_len + 1:
    if auto:
      return []  # the default tasks do not fit this run's context: none
    raise ConfigError(f"eval.tasks: the {longest.key} task is {longest.length} tokens, "
                      f"more than the model's context train.seq_len + 1 = "
                      f"{config.train.seq_len + 1}; lower eval.tasks.shots or its token counts")
  return out


@dataclasses.dataclass
class TaskEval:
  """A run's task sets and the jitted call scoring a state's params on all of them."""
  sets: list[task_lib.TaskSet]
  tokens: jax.Array       # int32 [chunks, rows, length]: every candidate row of every set, padded
  mask: jax.Array         # bool [chunks, rows, length - 1]: the targets to sum (the candidates')
  offsets: list[int]      # where each set's rows start
  score_fn: object        # jitted (params, tokens, mask[, frozen]) -> float32 [(K,) rows]

  @classmethod
  def make(cls, config, source, trainer) -> "TaskEval | None":
    spec_list = specs(config, source)
    if not spec_list:
      return None
    sets = [task_lib.build_continuation(source, spec) if spec.name == "continuation"
            else task_lib.build(source.language, spec) for spec in spec_list]
    length = max(spec.length for spec in spec_list)
    devices = trainer.mesh.devices.size
    rows, masks, offsets = [], [], []
    for task_set in sets:
      spec = task_set.spec
      block = task_set.tokens.reshape(-1, spec.length)
      offsets.append(sum(len(r) for r in rows))
      rows.append(np.pad(block, ((0, 0), (0, length - spec.length))))
      masks.append(np.broadcast_to(np.pad(task_set.mask(), (0, length - spec.length)),
                                   (len(block), length - 1)))
    tokens, mask = np.concatenate(rows), np.concatenate(masks)
    # Chunks of rows scored one after another (lax.map), each split over the devices: on a CPU
    # chunks of 128 rows ran fastest (docs/results/2026-12-03-icl-tasks.md), else one chunk.
    per_chunk = CPU_CHUNK if trainer.mesh.devices.flat[0].platform == "cpu" else len(tokens)
    per_chunk = -(-per_chunk // devices) * devices
    extra = -len(tokens) % per_chunk  # the extra rows are never read
    tokens = np.pad(tokens, ((0, extra), (0, 0))).reshape(-1, per_chunk, length)
    mask = np.pad(mask, ((0, extra), (0, 0))).reshape(-1, per_chunk, length - 1)
    # Global arrays: every process holds the same rows and gives its own devices their shards.
    rows = NamedSharding(trainer.mesh, ROWS)
    tokens, mask = (jax.make_array_from_callback(x.shape, rows, lambda index, x=x: x[index])
                    for x in (tokens, mask))
    return cls(sets, tokens, mask, offsets, scorer(trainer))

  def start(self, state):
    """The summed log-likelihoods of every row for `state`'s params, left on the device."""
    frozen = [state["frozen"]] if "frozen" in state else []
    return self.score_fn(state["params"], self.tokens, self.mask, *frozen)

  def row_figures(self, summed, replica: int) -> dict:
    """{key: {accuracy, gold_loss}} of one model (replica index) for its metrics row."""
    summed = np.asarray(summed, np.float64)
    summed = summed[replica] if summed.ndim == 2 else summed
    out = {}
    for task_set, offset in zip(self.sets, self.offsets):
      spec = task_set.spec
      block = summed[offset:offset + spec.examples * spec.choices].reshape(spec.examples,
                                                                           spec.choices)
      accuracy, gold_loss = task_lib.rank(block, task_set.gold, spec.continuation_tokens)
      out[spec.key] = {"accuracy": accuracy, "gold_loss": gold_loss}
    return out

  def result(self, row_tasks: dict) -> dict:
    """result.json's `tasks`: each task's figures (data.tasks.TaskScore) from its last row."""
    return {task_set.spec.key: dataclasses.asdict(task_lib.figures(
        task_set, row_tasks[task_set.spec.key]["accuracy"],
        row_tasks[task_set.spec.key]["gold_loss"])) for task_set in self.sets}


def scorer(trainer):
  """jit of (params, tokens [chunks, rows, L], mask[, frozen]) -> float32 [(K,) chunks * rows]:
  the summed log-likelihood of each row's masked targets (target i is token i + 1), chunk by
  chunk, mapped over a group's replicas."""
  def one(params, tokens, mask, *frozen):
    model = trainer.merged(params, *frozen)
    log_p = jax.nn.log_softmax(model(tokens[:, :-1]).astype(jnp.float32))
    picked = jnp.take_along_axis(log_p, tokens[:, 1:, None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(mask, picked, 0.0), axis=1)

  def chunks(params, tokens, mask, *frozen):
    return jax.lax.map(lambda chunk: one(params, *chunk, *frozen), (tokens, mask)).reshape(-1)

  frozen = tuple(trainer.state_sharding[key] for key in ("frozen",)
                 if key in trainer.state_sharding)
  fn = chunks if trainer.replicas == 1 else jax.vmap(chunks, in_axes=(0, None, None)
                                                     + (0,) * len(frozen))
  rows = NamedSharding(trainer.mesh, ROWS)
  return jax.jit(fn, in_shardings=(trainer.state_sharding["params"], rows, rows, *frozen),
                 out_shardings=NamedSharding(trainer.mesh, P()))
