"""In-context learning tasks (data/tasks.py, training/tasks.py): the Bayes ceiling against a
brute-force enumeration of the task's generative process, the ranked-classification scorer on
hand-built cases, the in-loop scorer against the sets scored one by one, and bad settings."""
import itertools

import jax
import numpy as np
import pytest

import train
from conftest import TINY
from core import rundir
from core.config import ConfigError, load_config
from data import synthetic
from data import tasks as task_lib
from training import plan as plan_lib
from training import tasks

FAST = ["--config.train.tokens=10240", "--config.train.eval_tokens=1024",
        "--config.wandb.mode=disabled"]


def tiny_language():
  """3 symbols, 3 topics, 2 successors per row: small enough to enumerate every observation."""
  return synthetic.Language(vocab_size=3, n_topics=3, zipf_exponent=1.0, branching=2,
                            dirichlet=1.0, seed=5)


def brute_force(lang, shots, example_tokens, prefix_tokens, continuation_tokens, choices):
  """{(context, candidates): [P(observation, gold = i) for each i]}, summing the task's generative
  process over every topic, token, distractor topic and gold place."""
  trans, w, v = lang.transition_matrix(), lang.topic_weights, lang.vocab_size
  chain = lambda t, seq: np.prod([trans[t, a, b] for a, b in zip(seq[:-1], seq[1:])])
  joint = {}
  for t, context in itertools.product(range(lang.n_topics),
                                      itertools.product(range(v), repeat=shots * example_tokens
                                                        + prefix_tokens)):
    cuts = [i * example_tokens for i in range(shots + 1)] + [len(context)]
    segments = [context[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    p_context = w[t] * np.prod([chain(t, segment) / v for segment in segments])
    if p_context == 0:
      continue
    prefix = segments[-1]
    posterior = np.array([w[u] * chain(u, prefix) for u in range(lang.n_topics)])
    d = w if np.count_nonzero(posterior) <= 1 else posterior  # distractor topics' weights
    others = [u for u in range(lang.n_topics) if u != t]
    for gold, distractors in itertools.product(range(choices),
                                               itertools.product(others, repeat=choices - 1)):
      p_topics = np.prod([d[u] / d[others].sum() for u in distractors]) / choices
      topics = list(distractors)
      topics.insert(gold, t)
      for conts in itertools.product(itertools.product(range(v), repeat=continuation_tokens),
                                     repeat=choices):
        p = p_context * p_topics * np.prod([chain(u, prefix[-1:] + cont)
                                            for u, cont in zip(topics, conts)])
        if p > 0:
          joint.setdefault((context, conts), np.zeros(choices))[gold] += p
  return joint


@pytest.mark.parametrize("shots, choices", [(0, 3), (1, 2)])
def test_the_bayes_ceiling_equals_brute_force_enumeration(shots, choices):
  lang = tiny_language()
  joint = brute_force(lang, shots, 2, 2, 1, choices)
  assert sum(p.sum() for p in joint.values()) == pytest.approx(1.0)
  observations = list(joint)
  cut = [i * 2 for i in range(shots + 1)] + [shots * 2 + 2]
  segments = [np.array([context[a:b] for context, _ in observations])
              for a, b in zip(cut[:-1], cut[1:])]
  candidates = np.array([conts for _, conts in observations])
  posterior, _ = task_lib.bayes(lang, segments, candidates, np.zeros(len(observations), int))
  exact = np.array([joint[o] for o in observations])
  np.testing.assert_allclose(posterior, exact / exact.sum(1, keepdims=True), rtol=1e-9, atol=1e-12)
  ceiling = exact.max(1).sum()  # the Bayes-optimal accuracy: the sum over observations
  assert (exact.sum(1) * posterior.max(1)).sum() == pytest.approx(ceiling, rel=1e-12)
  assert 1 / choices < ceiling < 1
  # Both kinds of distractor topic occur: a prefix that leaves several topics, and one only its own.
  prefixes = {context[-2:] for context, _ in observations}
  possible = [sum(lang.transition_matrix()[u, a, b] > 0 for u in range(3)) for a, b in prefixes]
  assert min(possible) == 1 and max(possible) > 1
  # Sampled task sets follow the same process: their ceiling estimates the exact one.
  sampled = task_lib.build(lang, task_lib.TaskSpec("topic", shots, choices, 4000, 2, 2, 1))
  best = sampled.posterior.max(1)
  assert abs(sampled.ceiling - ceiling) < 4 * best.std() / np.sqrt(len(best))


def test_task_sets_are_a_pure_function_of_their_spec():
  lang = synthetic.language(64, 512, 1.1, 4, 0.5, 1234)
  spec = task_lib.TaskSpec("topic", 1, 4, 16, 4, 2, 4)
  a, b = task_lib.build(lang, spec), task_lib.build(lang, spec)
  other = task_lib.build(lang, task_lib.TaskSpec("topic", 1, 4, 16, 4, 2, 4, seed=1))
  assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.gold, b.gold)
  assert not np.array_equal(a.tokens, other.tokens)
  assert a.tokens.shape == (16, 4, spec.length) and 0 <= a.gold.min() <= a.gold.max() < 4
  # Every candidate continues the same context; the gold one its topic's chain.
  assert (a.tokens[:, :, :6] == a.tokens[:, :1, :6]).all()
  trans = lang.transition_matrix()
  gold = a.tokens[np.arange(16), a.gold, 5:]
  assert all(trans[t, x, y] > 0 for t, row in zip(a.topics, gold) for x, y in zip(row, row[1:]))


def test_rank_on_hand_built_cases():
  summed = np.array([[-1.0, -2.0, -3.0], [-4.0, -0.5, -9.0], [-2.0, -2.0, -5.0]])
  accuracy, gold_loss = task_lib.rank(summed, np.array([0, 0, 1]), continuation_tokens=2)
  assert accuracy == pytest.approx(1 / 3)  # right, wrong, and a tie that goes to the first
  assert gold_loss == pytest.approx((1 + 4 + 2) / 3 / 2)


def test_score_sums_only_the_candidate_tokens():
  spec = task_lib.TaskSpec("topic", shots=1, choices=2, examples=1, example_tokens=2,
                           prefix_tokens=1, continuation_tokens=2)
  task_set = task_lib.TaskSet(spec, np.array([[[0, 1, 2, 3, 4], [0, 1, 2, 5, 6]]]), np.array([1]),
                              np.array([0]), np.full((1, 2), 0.5), 0.5, 1.25)
  assert task_set.mask().tolist() == [False, False, True, True]  # targets 3 and 4 of 5 tokens
  fake = lambda tokens, mask: np.sum(np.where(mask, -tokens[:, 1:], 0), axis=1)
  score = task_lib.score(task_set, fake)
  assert (score.accuracy, score.gold_loss) == (0.0, (5 + 6) / 2)
  assert (score.ceiling, score.gold_loss_floor, score.shots, score.choices) == (0.5, 1.25, 1, 2)


@pytest.mark.slow  # compiles the model's init and the scorer, and runs each set's forward alone
def test_the_batched_scorer_equals_each_set_scored_alone():
  from training.sharding import make_mesh  # pylint: disable=g-import-not-at-top
  from training.steps import Trainer  # pylint: disable=g-import-not-at-top
  config = load_config(TINY, [*FAST, "--config.eval.tasks.examples=3", "--config.model.n_layer=1"])
  config, source, model_cfg, plan = plan_lib.resolve(config, jax.device_count())
  trainer = Trainer(config, model_cfg, plan, make_mesh(config))
  state = trainer.init()
  task_eval = tasks.TaskEval.make(config, source, trainer)
  assert [s.spec.key for s in task_eval.sets] == ["topic_0shot", "topic_1shot", "topic_4shot"]
  row = task_eval.row_figures(task_eval.start(state), 0)

  forward = jax.jit(lambda params, tokens: jax.nn.log_softmax(trainer.merged(params)(tokens)))

  def alone(tokens, mask):  # the model's log-likelihoods of one set, unpadded, on the host
    log_p = forward(state["params"], tokens[:, :-1])
    picked = np.take_along_axis(np.asarray(log_p), tokens[:, 1:, None], axis=-1)[..., 0]
    return np.where(mask, picked, 0.0).sum(1)
  for task_set in task_eval.sets:
    score = task_lib.score(task_set, alone)
    assert row[task_set.spec.key]["accuracy"] == score.accuracy
    assert row[task_set.spec.key]["gold_loss"] == pytest.approx(score.gold_loss, rel=1e-5)


def settings(*overrides):
  return tasks.specs(*plan_lib.resolve(load_config(TINY, [*FAST, *overrides]), 1)[:2])


def test_auto_scores_the_topic_task_where_it_applies_and_nothing_elsewhere():
  assert [spec.key for spec in settings()] == ["topic_0shot", "topic_1shot", "topic_4shot"]
  assert settings("--config.eval.tasks.names=") == []
  assert settings("--config.train.seq_len=16") == []  # the 4-shot task needs 23 tokens
  assert settings("--config.model.family=encoder") == []
  assert settings("--config.data.synthetic.n_topics=1") == []
  with pytest.raises(ConfigError, match="more than the model's context"):
    settings("--config.eval.tasks.names=topic", "--config.train.seq_len=16")


def test_the_tasks_change_no_run_id():
  ids = {plan_lib.config_hash(plan_lib.resolve(load_config(TINY, [*FAST, *extra]), 1)[0])
         for extra in ([], ["--config.eval.tasks.names="], ["--config.eval.tasks.shots=(0, 2)"])}
  assert len(ids) == 1


@pytest.mark.parametrize("override, message", [
    ("--config.eval.tasks.choices=1", "eval.tasks.choices must be >= 2"),
    ("--config.eval.tasks.shots=(0, -1)", "eval.tasks.shots must be distinct whole numbers"),
    ("--config.eval.tasks.names=topic,nope", "unknown task 'nope'"),
    ("--config.eval.tasks.examples=0", "eval.tasks.examples must be >= 1"),
])
def test_bad_task_settings_are_one_line_exit_2_before_training(tmp_path, capsys, override,
                                                               message):
  workdir = tmp_path / "never"
  assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST, override]) == \
      rundir.EXIT_BAD_INPUT
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1, err
  assert not workdir.exists()


def test_the_continuation_task_continues_its_passage_on_any_source(tmp_path):
  for i in range(20):  # documents: a file each
    (tmp_path / f"{i}.txt").write_text(f"document {i}: the quick brown fox jumps over. " * 40)
  for source_args in ([], ["--config.data.source=text", f"--config.data.path={tmp_path}",
                           f"--config.data.cache_dir={tmp_path}/cache"]):
    config, source = plan_lib.resolve(load_config(TINY, [*FAST, *source_args,
                                                         "--config.eval.tasks.names=continuation"]),
                                      1)[:2]
    (spec,) = tasks.specs(config, source)
    assert (spec.key, spec.length) == ("continuation_0shot", 32 + 4)
    task_set = task_lib.build_continuation(source, spec)
    eval_rows = source.sequences("eval", 0, spec.examples * spec.choices)
    rows = np.arange(spec.examples)
    assert (task_set.tokens[:, :, :32] == eval_rows[:spec.examples, None, :32]).all()
    assert (task_set.tokens[rows, task_set.gold, 32:] == eval_rows[:spec.examples, 32:36]).all()
    other = np.delete(task_set.tokens[0], task_set.gold[0], axis=0)[:, 32:]
    assert (other == eval_rows[spec.examples:spec.examples + 3, 32:36]).all()
    assert task_set.ceiling is None and task_lib.figures(task_set, 0.5, 1.0).ceiling is None
  assert settings("--config.eval.tasks.names=topic,continuation")[-1].key == "continuation_0shot"
