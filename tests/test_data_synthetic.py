"""The synthetic source: reproducible by index, faithful to its chains, and an exact loss floor."""
import json
import math

import numpy as np
import pytest

import data
from data import synthetic
from core.config import ConfigError
from experiments import base


def make(seq_len=32, order_seed=0, **synthetic_overrides):
  config = base.get_config()
  config.seed = order_seed
  config.train.seq_len = seq_len
  for key, value in synthetic_overrides.items():
    config.data.synthetic[key] = value
  return data.make_source(config)


def forward_reference(language, sequence):
  """The Bayes predictor's mean loss, position by position, in plain probabilities."""
  transitions = language.transition_matrix()
  posterior = language.topic_weights.copy()
  losses = []
  for prev, token in zip(sequence[:-1], sequence[1:]):
    likelihood = transitions[:, prev, token]
    predictive = transitions[:, prev, :].T @ posterior  # p(next | prefix) for every next token
    assert predictive.sum() == pytest.approx(1.0)
    losses.append(-math.log(predictive[token]))
    posterior = posterior * likelihood / predictive[token]
  return np.mean(losses)


def test_sequences_are_a_pure_function_of_the_index():
  source = make()
  block = source.sequences("train", 10, 20)
  assert block.shape == (20, 33) and block.dtype == np.int32
  assert block.min() >= 0 and block.max() < 64
  parts = [source.sequences("train", start, count) for start, count in ((10, 7), (17, 1), (18, 12))]
  np.testing.assert_array_equal(block, np.concatenate(parts))
  np.testing.assert_array_equal(block[5:6], make().sequences("train", 15, 1))  # a fresh source, in isolation
  assert source.sequences("train", 3, 0).shape == (0, 33)


def test_seed_orders_the_data_but_the_language_is_fixed_by_its_own_seed():
  a, b = make(order_seed=0), make(order_seed=1)
  assert not np.array_equal(a.sequences("train", 0, 8), b.sequences("train", 0, 8))
  np.testing.assert_array_equal(a.sequences("eval", 0, 8), b.sequences("eval", 0, 8))  # one eval set
  np.testing.assert_array_equal(a.language.transition_matrix(), b.language.transition_matrix())
  other = make(seed=99)  # data.synthetic.seed
  assert not np.array_equal(a.language.transition_matrix(), other.language.transition_matrix())


def test_train_and_eval_are_disjoint_streams():
  for seed in (0, 1):
    train_bits = data.random_bits(data.sequence_stream(seed, "train"), 0, 512, 34)
    eval_bits = data.random_bits(data.sequence_stream(seed, "eval"), 0, 512, 34)
    assert not set(train_bits.ravel()) & set(eval_bits.ravel())
  source = make()
  # Sequences are random draws, so two can coincide (a peaked chain), but never systematically.
  assert (source.sequences("train", 0, 512) == source.sequences("eval", 0, 512)).all(axis=1).mean() < 0.02


def test_token_statistics_match_the_generating_chains():
  source = make(seq_len=128)
  tokens, topics = source.sample("train", 0, 3000)
  lang = source.language
  # Topics follow the Zipf weights.
  counts = np.bincount(topics, minlength=lang.n_topics) / len(topics)
  np.testing.assert_allclose(counts[:3], lang.topic_weights[:3], atol=0.025)
  # The first token is uniform.
  assert np.bincount(tokens[:, 0], minlength=64).max() < 3000 / 64 * 2
  # Transitions of the most frequent topic match its chain, row by row, where a row was visited often.
  chain = tokens[topics == 0]
  observed = np.zeros((64, 64))
  np.add.at(observed, (chain[:, :-1].ravel(), chain[:, 1:].ravel()), 1)
  visits = observed.sum(axis=1)
  assert (visits > 400).sum() >= 5
  true = lang.transition_matrix()[0]
  frequent = visits > 400
  np.testing.assert_allclose(observed[frequent] / visits[frequent, None], true[frequent], atol=0.06)
  assert observed[true == 0].sum() == 0  # never a transition outside the chain's support


def test_floor_equals_the_forward_recursion():
  small = make(seq_len=12, vocab_size=6, n_topics=5, branching=2)
  tokens = small.sequences("eval", 0, 6)
  expected = np.mean([forward_reference(small.language, row) for row in tokens])
  assert small.loss_floor(6) == pytest.approx(expected, rel=1e-10)
  default = make(seq_len=40)
  tokens = default.sequences("eval", 0, 3)
  expected = np.mean([forward_reference(default.language, row) for row in tokens])
  assert default.loss_floor(3) == pytest.approx(expected, rel=1e-10)


def test_floor_is_between_zero_and_the_bigram_entropy_and_above_the_known_topic_oracle():
  source = make(seq_len=128)
  floor = source.loss_floor(256)
  train = source.sequences("train", 0, 2000)
  pairs = np.zeros((64, 64))
  np.add.at(pairs, (train[:, :-1].ravel(), train[:, 1:].ravel()), 1)
  joint = pairs / pairs.sum()
  marginal = joint.sum(axis=1, keepdims=True)
  with np.errstate(divide="ignore", invalid="ignore"):
    bigram_entropy = -np.nansum(joint * np.log(joint / marginal))
  unigram = np.bincount(train[:, 1:].ravel(), minlength=64) / train[:, 1:].size
  unigram_entropy = -np.sum(unigram * np.log(unigram))
  assert 0 < floor < bigram_entropy < unigram_entropy <= math.log(64)
  tokens, topics = source.sample("eval", 0, 256)
  transitions = source.language.transition_matrix()
  oracle = -np.log(transitions[topics[:, None], tokens[:, :-1], tokens[:, 1:]]).mean()
  assert oracle < floor
  assert floor == pytest.approx(0.93, abs=0.05)  # SPEC measured 0.923 for its draw of this construction


def test_tokenizer_describe_and_workdir(tmp_path):
  config = base.get_config()
  source = data.make_source(config, str(tmp_path))
  assert source.vocab_size == source.tokenizer.vocab_size == 64 and source.seq_len == 128
  row = source.sequences("train", 0, 1)[0]
  tokenizer = data.load_tokenizer(str(tmp_path))
  assert tokenizer.encode(tokenizer.decode(row)) == row.tolist()
  described = json.loads(json.dumps(source.describe()))
  assert described["kind"] == "synthetic" and described["n_topics"] == 512


def test_bad_config_is_one_line_error():
  with pytest.raises(ConfigError, match="branching"):
    make(branching=100)
  config = base.get_config()
  config.data.source = "nope"
  with pytest.raises(ConfigError, match="one of synthetic, text, tfds"):
    data.make_source(config)


def test_random_bits_rows_do_not_depend_on_their_neighbours():
  stream = data.sequence_stream(3, "train")
  np.testing.assert_array_equal(data.random_bits(stream, 5, 1, 4), data.random_bits(stream, 0, 9, 4)[5:6])
  eval_stream = data.sequence_stream(3, "eval")
  assert not np.array_equal(data.random_bits(stream, 0, 1, 4), data.random_bits(eval_stream, 0, 1, 4))
  assert eval_stream == data.sequence_stream(4, "eval") != stream
  with pytest.raises(ValueError, match="split"):
    data.sequence_stream(0, "test")
  bits = data.random_bits(stream, 0, 4096, 4)
  ones = np.unpackbits(bits.view(np.uint8)).mean()
  assert abs(ones - 0.5) < 0.005  # no stuck bits
  assert synthetic.language(8, 2, 1.0, 2, 0.5, 0) is synthetic.language(8, 2, 1.0, 2, 0.5, 0)  # cached


def test_fine_tuning_language_keeps_the_original_topics_and_adds_new_ones():
  original = make(seq_len=16, vocab_size=8, n_topics=6, branching=3)
  mixed = make(seq_len=16, vocab_size=8, n_topics=6, branching=3, new_topics=4,
               new_topic_weight=0.25)
  old, new = original.language, mixed.language
  assert new.n_topics == 10
  # The original topics keep their chains exactly, and three quarters of the mixture.
  np.testing.assert_array_equal(new.transition_matrix()[:6], old.transition_matrix())
  np.testing.assert_allclose(new.topic_weights[:6], 0.75 * old.topic_weights, atol=1e-9)
  zipf = np.arange(1, 5) ** -1.1
  np.testing.assert_allclose(new.topic_weights[6:], 0.25 * zipf / zipf.sum(), atol=1e-9)
  assert not np.array_equal(new.transition_matrix()[6:], new.transition_matrix()[:4])
  only_new = make(seq_len=16, vocab_size=8, n_topics=6, branching=3, new_topics=4,
                  new_topic_weight=1.0).language
  assert only_new.n_topics == 4  # topics of weight 0 are left out
  np.testing.assert_array_equal(only_new.transition_matrix(), new.transition_matrix()[6:])
  # No new topics: the language, its data and its floor are the original's.
  np.testing.assert_array_equal(make(seq_len=16, new_topics=0).sequences("eval", 0, 8),
                                make(seq_len=16).sequences("eval", 0, 8))


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_fine_tuning_floor_equals_the_forward_recursion(weight):
  small = make(seq_len=12, vocab_size=6, n_topics=5, branching=2, new_topics=3,
               new_topic_weight=weight)
  tokens, topics = small.sample("eval", 0, 64)
  if weight < 1:  # sequences of both the original topics and the new ones
    assert (topics < 5).any() and (topics >= 5).any()
  expected = np.mean([forward_reference(small.language, row) for row in tokens[:6]])
  assert small.loss_floor(6) == pytest.approx(expected, rel=1e-10)
  # The default construction's fine-tuning language: a floor of the same kind as the original's.
  default = make(seq_len=128, new_topics=512, new_topic_weight=weight)
  floor = default.loss_floor(256)
  assert floor == pytest.approx(0.93, abs=0.08) and floor != make(seq_len=128).loss_floor(256)
  assert default.describe()["new_topics"] == 512


def test_new_topics_need_both_keys():
  with pytest.raises(ConfigError, match="new_topic_weight"):
    make(new_topic_weight=0.5)
  with pytest.raises(ConfigError, match="new_topic_weight"):
    make(new_topics=4, new_topic_weight=1.5)
