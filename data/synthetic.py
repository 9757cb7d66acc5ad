"""The embedded default: a synthetic language with an exactly known best achievable loss.

Each sequence draws one "topic" k with Zipf probability w_k ∝ k^-zipf_exponent, a first token
uniformly at random, then seq_len tokens from topic k's order-1 Markov chain, in which every row has
`branching` non-zero next tokens with Dirichlet(dirichlet) weights. A model has to learn the chains
and infer the topic from the prefix; frequent topics are learned first and the Zipf tail only by
bigger models that see more data, so loss keeps falling with both N and D (docs/design.md).
The first token is uniform rather than drawn from a per-topic start distribution, so it says nothing
about the topic: the topic shows only through transitions.

Exact floor: the Bayes predictor p(x_t | x_<t) = sum_k p(k | x_<t) P_k(x_{t-1}, x_t) (the forward
algorithm over topics, whose hidden state never changes). Its log-losses over t = 1..seq_len
telescope by the chain rule to -log p(x_1..x_L | x_0) = -logsumexp_k [log w_k + sum_t log P_k(x_{t-1}, x_t)],
so the floor needs only each topic's log-likelihood of a sequence: one product of bigram counts with
the log transition table, in log space. The tests check it against the position-by-position recursion.

A related language to fine-tune on (data.synthetic.new_topics > 0): new topics built the same way
(Zipf weights among themselves, sparse Dirichlet chains over the same vocabulary), drawn from a
random stream of their own so the original topics keep their chains exactly, with the topic
mixture (1 - w) original + w new (w = new_topic_weight; topics of weight 0 are left out). Its floor
is exact in the same way: the forward algorithm over all its topics.

Randomness: the language comes from data.synthetic.seed alone, so runs with different `seed`s see the
same language; sequence i of a split comes from `data.random_bits` of (seed, split, i), so any
sequence is reproducible in isolation, and eval sequences (hence the floor) are the same for every seed.
"""
import functools

import numpy as np

from data import random_bits, sequence_stream, tokenizers
from core.config import ConfigError

_ONE = 1 << 32  # probabilities are multiples of 2^-32, so sampling with 32 random bits is exact


def _quantized_cdf(probs: np.ndarray) -> np.ndarray:
  """int64 CDF thresholds (last = 2^32) of probability rows; their differences / 2^32 are the exact
  probabilities the sampler realises, and the ones the floor uses."""
  cdf = np.rint(np.cumsum(probs, axis=-1) * _ONE).astype(np.int64)
  cdf[..., -1] = _ONE
  return cdf


def _probs(cdf: np.ndarray) -> np.ndarray:
  return np.diff(cdf, axis=-1, prepend=0) / _ONE


def _random_subsets(rng, shape, n, k) -> np.ndarray:
  """int32 shape + [k]: a uniformly random k-subset of range(n) per row (Floyd's algorithm, O(k^2)
  per row, so a large vocabulary never needs a V x V array per topic)."""
  subsets = np.empty(shape + (k,), np.int32)
  for column, j in enumerate(range(n - k, n)):
    pick = rng.integers(0, j + 1, size=shape)
    taken = (subsets[..., :column] == pick[..., None]).any(axis=-1)
    subsets[..., column] = np.where(taken, j, pick)
  return subsets


class Language:
  """The topics: Zipf weights and one sparse Markov chain each, a pure function of its arguments."""

  def __init__(self, vocab_size, n_topics, zipf_exponent, branching, dirichlet, seed,
               new_topics=0, new_topic_weight=0.0):
    def topics(rng, count):
      """Zipf weights (summing to 1) and chains of `count` topics from `rng`."""
      zipf = np.arange(1, count + 1, dtype=np.float64) ** -zipf_exponent
      successors = _random_subsets(rng, (count, vocab_size), vocab_size, branching)  # [T, V, B]
      weights = rng.dirichlet(np.full(branching, dirichlet), size=(count, vocab_size))
      return zipf / zipf.sum(), successors, weights

    mixture, successors, weights = topics(np.random.default_rng(seed), n_topics)
    if new_topics:
      new = topics(np.random.default_rng([seed, 1]), new_topics)  # a stream of their own
      mixture = np.concatenate([(1 - new_topic_weight) * mixture, new_topic_weight * new[0]])
      successors = np.concatenate([successors, new[1]])
      weights = np.concatenate([weights, new[2]])
      present = mixture > 0
      mixture, successors, weights = mixture[present], successors[present], weights[present]
    self.topic_cdf = _quantized_cdf(mixture)                                  # [T]
    self.next_tokens = successors                                             # [T, V, B]
    self.next_cdf = _quantized_cdf(weights)                                   # [T, V, B]
    self.topic_weights = _probs(self.topic_cdf)
    self.next_probs = _probs(self.next_cdf)
    self.vocab_size, self.n_topics, self.branching = vocab_size, len(mixture), branching

  def transition_matrix(self) -> np.ndarray:
    """Dense P [T, V, V]: P[k, a, b] = probability of b after a in topic k."""
    dense = np.zeros((self.n_topics, self.vocab_size, self.vocab_size))
    np.put_along_axis(dense, self.next_tokens, self.next_probs, axis=-1)
    return dense


@functools.lru_cache(maxsize=4)
def language(vocab_size, n_topics, zipf_exponent, branching, dirichlet, seed, new_topics=0,
             new_topic_weight=0.0) -> Language:
  return Language(vocab_size, n_topics, zipf_exponent, branching, dirichlet, seed, new_topics,
                  new_topic_weight)


class SyntheticSource:
  """Sequences of the synthetic language (see the module docstring); the data.Source interface."""

  def __init__(self, params, seq_len: int, seed: int):
    """params: config.data.synthetic; seq_len: predicted tokens per sequence; seed: the data order."""
    if not 1 <= params.branching <= params.vocab_size:
      raise ConfigError(f"data.synthetic.branching must be in [1, vocab_size={params.vocab_size}], "
                        f"got {params.branching}")
    if params.n_topics < 1 or params.dirichlet <= 0 or params.zipf_exponent < 0:
      raise ConfigError("data.synthetic needs n_topics >= 1, dirichlet > 0 and zipf_exponent >= 0, got "
                        f"{params.n_topics}, {params.dirichlet}, {params.zipf_exponent}")
    # Configs recorded before the fine-tuning language existed have no new_topics.
    new_topics, new_weight = params.get("new_topics", 0), float(params.get("new_topic_weight", 0.0))
    if new_topics < 0 or not 0 <= new_weight <= 1 or (new_weight > 0) != (new_topics > 0):
      raise ConfigError("data.synthetic needs new_topics >= 0 and new_topic_weight in [0, 1], both "
                        f"set or both 0; got {new_topics} and {new_weight}")
    self.params = params
    self.language = lang = language(params.vocab_size, params.n_topics, float(params.zipf_exponent),
                                    params.branching, float(params.dirichlet), params.seed,
                                    new_topics, new_weight)
    self.vocab_size = params.vocab_size
    self.seq_len = seq_len
    self.seed = seed
    self.tokenizer = tokenizers.SymbolTokenizer(params.vocab_size)
    # One sorted table for all (topic, token) rows r = topic * V + token: row r holds r * 2^32 plus
    # its inner CDF thresholds, then (r + 1) * 2^32. For 32 random bits u, the number of entries
    # <= r * 2^32 + u is r * B + (index of the chosen successor), so a whole batch takes one step
    # of the chain with one searchsorted, exactly.
    rows = np.arange(lang.n_topics * lang.vocab_size, dtype=np.int64)[:, None]
    cdf = lang.next_cdf.reshape(-1, lang.branching)
    self._table = (rows * _ONE + np.concatenate([cdf[:, :-1], np.full_like(rows, _ONE)], axis=1)).ravel()
    self._successors = lang.next_tokens.reshape(-1)
    self._successors_shifted = self._successors.astype(np.int64) * _ONE

  def sample(self, split: str, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens int32 [count, seq_len + 1], topics int32 [count]) of sequences start..start+count-1."""
    bits = random_bits(sequence_stream(self.seed, split), start, count, self.seq_len + 2)
    u = (bits >> np.uint64(32)).astype(np.int64)
    lang = self.language
    topics = np.searchsorted(lang.topic_cdf[:-1], u[:, 0], side="right")
    first = (u[:, 1] * self.vocab_size) >> 32
    # query[t] = (topic * V + token_t) * 2^32 + u_t; the topic and u parts are fixed in advance.
    queries = (topics * self.vocab_size * _ONE)[None, :] + u[:, 2:].T                       # [L, count]
    chosen = np.empty((self.seq_len, count), np.int64)
    token_shifted = first * _ONE
    for t in range(self.seq_len):
      chosen[t] = np.searchsorted(self._table, queries[t] + token_shifted, side="right")
      token_shifted = self._successors_shifted[chosen[t]]
    tokens = np.empty((count, self.seq_len + 1), np.int32)
    tokens[:, 0] = first
    tokens[:, 1:] = self._successors[chosen].T
    return tokens, topics.astype(np.int32)

  def sequences(self, split: str, start: int, count: int) -> np.ndarray:
    return self.sample(split, start, count)[0]

  def log_likelihoods(self, tokens: np.ndarray) -> np.ndarray:
    """float64 [n, T]: log p(x_1..x_L | x_0, topic k) for each sequence and topic (-inf: impossible)."""
    lang = self.language
    vv = lang.vocab_size ** 2
    p = lang.transition_matrix().reshape(lang.n_topics, vv)
    possible = p > 0
    log_p_finite = np.log(np.where(possible, p, 1.0)).T
    out = np.empty((len(tokens), lang.n_topics))
    for lo in range(0, len(tokens), 1024):  # bounded memory: counts are [chunk, V^2]
      chunk = tokens[lo:lo + 1024].astype(np.int64)
      bigrams = chunk[:, :-1] * lang.vocab_size + chunk[:, 1:]
      flat = (np.arange(len(chunk))[:, None] * vv + bigrams).ravel()
      counts = np.bincount(flat, minlength=len(chunk) * vv).reshape(len(chunk), vv).astype(np.float64)
      ll = counts @ log_p_finite
      ll[(counts @ (~possible).T.astype(np.float64)) > 0] = -np.inf
      out[lo:lo + len(chunk)] = ll
    return out

  def sequence_losses(self, tokens: np.ndarray) -> np.ndarray:
    """float64 [n]: the Bayes predictor's mean loss over positions 1..L of each sequence."""
    joint = self.log_likelihoods(tokens) + np.log(self.language.topic_weights)
    peak = joint.max(axis=1, keepdims=True)
    log_marginal = peak[:, 0] + np.log(np.exp(joint - peak).sum(axis=1))
    return -log_marginal / (tokens.shape[1] - 1)

  def loss_floor(self, n_sequences: int) -> float:
    return float(self.sequence_losses(self.sequences("eval", 0, n_sequences)).mean())

  def describe(self) -> dict:
    return {"kind": "synthetic", "vocab_size": self.vocab_size, "seq_len": self.seq_len,
            "n_topics": self.params.n_topics, "zipf_exponent": self.params.zipf_exponent,
            "branching": self.params.branching, "dirichlet": self.params.dirichlet,
            "language_seed": self.params.seed, "first_token": "uniform",
            "loss_floor_method": "exact Bayes predictor: forward algorithm over topics on the eval sequences",
            **({"new_topics": self.params.new_topics,
                "new_topic_weight": self.params.new_topic_weight}
               if self.params.get("new_topics", 0) else {})}


def make_source(config, workdir: str | None = None) -> SyntheticSource:
  """The data.Source of config.data.synthetic (the language), in the order of config.seed."""
  del workdir  # nothing to cache: the language is rebuilt from its seed
  return SyntheticSource(config.data.synthetic, config.train.seq_len, config.seed)
