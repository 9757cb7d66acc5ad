"""In-context learning tasks on the synthetic language, scored as ranked classification, with the
exact Bayes-optimal accuracy (the ceiling) of each task set.

The k-shot topic task (`topic`): an instance draws a topic t from the language's topic mixture,
then k example sequences of t (`example_tokens` long each) and a prefix of t (`prefix_tokens`),
each with a uniform first token and the rest t's Markov chain, exactly as the source draws a
sequence; then M candidate continuations of `continuation_tokens` tokens from the prefix's last
token: the gold one from t's chain, each of the M - 1 others from the chain of a topic u != t drawn
(independently) from the topics the prefix leaves possible, weighted by their posterior given the
prefix alone, w_u p(prefix | u), or from the mixture w_u where the prefix rules out every topic
but t. So without examples the prefix barely tells the gold from the others (the zero-shot
ceiling is low), and what a model gains with k is its use of the examples in context. The gold
sits at a uniformly random place. A model reads the context (examples, then prefix) followed by
each candidate and answers the candidate of the highest summed log-likelihood (OLMES-style
ranked classification; a tie goes to the first). k = 0 is zero-shot, 1 one-shot, 4 few-shot.

The ceiling. Given the observation o (context and candidates), the posterior that candidate i is
the gold one is

  p(i | o) ∝ sum_t w_t p(context | t) P_t(c_i) prod_{j != i} Q_t(c_j),
  Q_t(c) = sum_{u != t} d_u P_u(c) / sum_{u != t} d_u   (d: the distractor weights above),

with P_t(c) the probability of c after the prefix's last token under t's chain (the forward
algorithm over topics that the source's loss floor uses: the topic never changes, so each
topic's likelihood is a product of its transition probabilities). The Bayes predictor answers
argmax_i p(i | o) and is right with probability max_i p(i | o); `ceiling` is the mean of that
over the set's instances: the Bayes predictor's expected accuracy on these observations, whose
mean over task sets is the task's exact Bayes-optimal accuracy (tests/test_tasks.py checks the
posterior against a brute-force enumeration of the whole generative process on a tiny language).
`gold_loss_floor` is the Bayes predictor's mean per-token loss of the gold continuations given
the context, the floor of `gold_loss`.

The continuation task (`continuation`, any source; not in `auto`): a passage of `prefix_tokens`
tokens of an eval sequence, then M candidates of `continuation_tokens` tokens: the tokens that
follow it in that sequence (the gold) and the same positions of M - 1 other eval sequences. Its
ceiling and floor are unknown (None): on a text source nothing gives them exactly.

A task set is a pure function of the language and its TaskSpec (seed included): its random bits
come from `data.random_bits` on a stream of its own, so every run of a sweep, whatever its seed,
is scored on the same instances.
"""
import dataclasses

import numpy as np

from data import random_bits

TASKS = ("topic", "continuation")  # the task names eval.tasks.names takes
_STREAM = 2         # train sequences use stream (0, seed) and eval sequences (1,): data/__init__.py
_ONE = 1 << 32


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One task at one shot count."""
  name: str                  # one of TASKS
  shots: int                 # k example sequences before the prefix
  choices: int               # M candidate continuations, one of them the gold
  examples: int              # instances in the set
  example_tokens: int        # tokens of each example sequence
  prefix_tokens: int         # tokens of the prefix
  continuation_tokens: int   # tokens of each candidate
  seed: int = 0

  @property
  def key(self) -> str:
    """Its name in metrics rows and result.json: e.g. topic_4shot."""
    return f"{self.name}_{self.shots}shot"

  @property
  def length(self) -> int:
    """Tokens of one context with one candidate."""
    return self.shots * self.example_tokens + self.prefix_tokens + self.continuation_tokens


@dataclasses.dataclass(frozen=True)
class TaskSet:
  """The instances of a TaskSpec and what the Bayes predictor achieves on them."""
  spec: TaskSpec
  tokens: np.ndarray       # int32 [examples, choices, length]: the context, then candidate j
  gold: np.ndarray         # int32 [examples]: the gold candidate's index
  topics: np.ndarray | None     # int32 [examples]: the instance's topic t (topic task)
  posterior: np.ndarray | None  # float64 [examples, choices]: p(candidate j is the gold | o)
  ceiling: float | None         # mean over instances of max_j posterior (None: unknown)
  gold_loss_floor: float | None  # the Bayes predictor's mean per-token loss of the gold ones

  def mask(self) -> np.ndarray:
    """bool [length - 1]: the targets (target i is token i + 1) that are the candidate's tokens."""
    return np.arange(self.spec.length - 1) >= self.spec.length - 1 - self.spec.continuation_tokens


@dataclasses.dataclass(frozen=True)
class TaskScore:
  """A model's figures on a task set (result.json's `tasks` entry)."""
  shots: int
  choices: int
  accuracy: float      # share of instances whose highest-scored candidate is the gold
  ceiling: float | None  # the Bayes-optimal accuracy on these instances (None: unknown)
  gold_loss: float     # mean per-token loss (nats) of the gold continuations
  gold_loss_floor: float | None
  examples: int


def rank(summed: np.ndarray, gold: np.ndarray, continuation_tokens: int) -> tuple[float, float]:
  """(accuracy, gold_loss) of ranked classification: summed [examples, choices] log-likelihoods
  of each candidate; a tie goes to the first candidate of it (np.argmax)."""
  summed = np.asarray(summed, np.float64)
  accuracy = float(np.mean(np.argmax(summed, axis=1) == gold))
  gold_loss = float(-np.mean(summed[np.arange(len(gold)), gold]) / continuation_tokens)
  return accuracy, gold_loss


def score(task_set: TaskSet, loglik) -> TaskScore:
  """Ranked classification of a task set by `loglik(tokens int32 [rows, L], mask bool [rows, L-1])
  -> float [rows]`: each row's summed log-likelihood of the targets `mask` marks."""
  spec = task_set.spec
  rows = task_set.tokens.reshape(-1, spec.length)
  mask = np.broadcast_to(task_set.mask(), (len(rows), spec.length - 1))
  summed = np.asarray(loglik(rows, mask)).reshape(spec.examples, spec.choices)
  return figures(task_set, *rank(summed, task_set.gold, spec.continuation_tokens))


def figures(task_set: TaskSet, accuracy: float, gold_loss: float) -> TaskScore:
  spec = task_set.spec
  return TaskScore(spec.shots, spec.choices, accuracy, task_set.ceiling, gold_loss,
                   task_set.gold_loss_floor, spec.examples)


def _pick(cdf_inner: np.ndarray, u: np.ndarray) -> np.ndarray:
  """The index drawn by 32 random bits u from CDF thresholds without their last (2^32) entry, as
  the source samples: the number of thresholds <= u."""
  return (cdf_inner <= u[..., None]).sum(axis=-1)


def _chain(lang, topics, first, u) -> np.ndarray:
  """int32 [n, 1 + steps]: `first` [n] followed by steps of each topic's chain (u: [n, steps])."""
  tokens = [first]
  for step in range(u.shape[1]):
    a = tokens[-1]
    tokens.append(lang.next_tokens[topics, a, _pick(lang.next_cdf[topics, a, :-1], u[:, step])])
  return np.stack(tokens, axis=1).astype(np.int32)


def _distractor_log_weights(lang, prefix_log_p: np.ndarray) -> np.ndarray:
  """float64 [T, n]: the unnormalised log weights of a distractor's topic: the posterior given the
  prefix alone (log w_u + log p(prefix | u)), or the mixture's log w_u for an instance whose
  prefix rules out every topic but one (its own)."""
  log_w = np.log(lang.topic_weights)[:, None]
  alone = np.isfinite(prefix_log_p).sum(axis=0) <= 1
  return np.where(alone[None, :], log_w, log_w + prefix_log_p)


def _other_topics(weights: np.ndarray, topics: np.ndarray, u: np.ndarray) -> np.ndarray:
  """A topic != t per instance, drawn with 32 random bits u from log weights [T, n] with t's left
  out."""
  n = len(topics)
  masked = weights.T.copy()
  masked[np.arange(n), topics] = -np.inf
  peak = masked.max(axis=1, keepdims=True)
  cdf = np.cumsum(np.exp(masked - peak), axis=1)
  x = cdf[:, -1] * (u / _ONE)
  return np.minimum((cdf <= x[:, None]).sum(axis=1), cdf.shape[1] - 1)


def build(lang, spec: TaskSpec) -> TaskSet:
  """The task set of `spec` on the synthetic language `lang` (data.synthetic.Language)."""
  k, m, c, n = spec.shots, spec.choices, spec.continuation_tokens, spec.examples
  lengths = [spec.example_tokens] * k + [spec.prefix_tokens]
  width = 1 + sum(lengths) + c + (m - 1) * (1 + c) + 1
  stream = (_STREAM, TASKS.index(spec.name), spec.seed, k, m, spec.example_tokens,
            spec.prefix_tokens, c)
  u = (random_bits(stream, 0, n, width) >> np.uint64(32)).astype(np.int64)
  topics = _pick(lang.topic_cdf[:-1], u[:, 0])
  col = 1
  segments = []  # the k examples, then the prefix
  for length in lengths:
    first = (u[:, col] * lang.vocab_size) >> 32
    segments.append(_chain(lang, topics, first, u[:, col + 1:col + length]))
    col += length
  last = segments[-1][:, -1]
  candidates = [_chain(lang, topics, last, u[:, col:col + c])[:, 1:]]
  col += c
  prefix_log_p = _log_transitions(lang, segments[-1][:, :-1], segments[-1][:, 1:]).sum(-1)
  weights = _distractor_log_weights(lang, prefix_log_p)
  for _ in range(m - 1):
    other = _other_topics(weights, topics, u[:, col])
    candidates.append(_chain(lang, other, last, u[:, col + 1:col + 1 + c])[:, 1:])
    col += 1 + c
  gold = ((u[:, col] * m) >> 32).astype(np.int32)
  # The gold goes to place gold; the others fill the other places in their order.
  rows = np.arange(n)
  placed = np.empty((n, m, c), np.int32)
  placed[rows, gold] = candidates[0]
  for j, other in enumerate(candidates[1:]):
    placed[rows, j + (j >= gold)] = other
  context = np.concatenate(segments, axis=1)
  tokens = np.concatenate([np.broadcast_to(context[:, None], (n, m, context.shape[1])), placed],
                          axis=2).astype(np.int32)
  posterior, floor = bayes(lang, segments, placed, gold)
  return TaskSet(spec, tokens, gold, topics.astype(np.int32), posterior,
                 float(posterior.max(axis=1).mean()), floor)


def build_continuation(source, spec: TaskSpec) -> TaskSet:
  """The continuation task set of `spec` on any data.Source: instance i continues eval sequence
  i; its distractors are the same positions of eval sequences examples + (M - 1) i + j."""
  m, n, p, c = spec.choices, spec.examples, spec.prefix_tokens, spec.continuation_tokens
  sequences = source.sequences("eval", 0, n * m)[:, :p + c]
  gold = ((random_bits((_STREAM, TASKS.index(spec.name), spec.seed, m, p, c), 0, n, 1)[:, 0]
           >> np.uint64(32)).astype(np.int64) * m >> 32).astype(np.int32)
  candidates = [sequences[:n, p:]] + [sequences[n + j::m - 1][:n, p:] for j in range(m - 1)]
  placed = np.empty((n, m, c), np.int32)
  placed[np.arange(n), gold] = candidates[0]
  for j, other in enumerate(candidates[1:]):
    placed[np.arange(n), j + (j >= gold)] = other
  tokens = np.concatenate([np.broadcast_to(sequences[:n, None, :p], (n, m, p)), placed], axis=2)
  return TaskSet(spec, tokens.astype(np.int32), gold, None, None, None, None)


def _log_transitions(lang, a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """float64 [T, *a.shape]: log P_t(a -> b) under every topic's chain (-inf where impossible),
  looked up once per distinct pair."""
  pairs, where = np.unique(a.astype(np.int64) * lang.vocab_size + b, return_inverse=True)
  first, then = pairs // lang.vocab_size, pairs % lang.vocab_size
  p = np.where(lang.next_tokens[:, first] == then[None, :, None], lang.next_probs[:, first],
               0.0).sum(-1)
  with np.errstate(divide="ignore"):
    return np.log(p)[:, where.reshape(-1)].reshape((lang.n_topics, *a.shape))


def _logsumexp(x: np.ndarray, axis) -> np.ndarray:
  peak = np.max(x, axis=axis, keepdims=True)
  peak = np.where(np.isfinite(peak), peak, 0.0)
  with np.errstate(divide="ignore"):
    return np.log(np.sum(np.exp(x - peak), axis=axis)) + np.squeeze(peak, axis=axis)


def _leave_one_out(x: np.ndarray) -> np.ndarray:
  """log sum_{u != t} exp(x[u]) for every t (axis 0), without the cancellation of subtracting."""
  edge = np.full_like(x[:1], -np.inf)
  left = np.concatenate([edge, np.logaddexp.accumulate(x, axis=0)[:-1]])
  right = np.concatenate([np.logaddexp.accumulate(x[::-1], axis=0)[::-1][1:], edge])
  return np.logaddexp(left, right)


def bayes(lang, segments: np.ndarray, candidates: np.ndarray, gold: np.ndarray):
  """(posterior float64 [n, M] that each candidate is the gold one, the mean per-token loss of the
  gold continuations under the Bayes predictor), from the context's segments (int [n, length]
  each: the k examples, then the prefix; each a sequence of the topic) and the candidates
  int [n, M, c] after the prefix's end."""
  n, m, c = candidates.shape
  segment_log_p = np.stack([_log_transitions(lang, segment[:, :-1], segment[:, 1:]).sum(-1)
                            for segment in segments], axis=-1)                    # [T, n, k + 1]
  context = np.log(lang.topic_weights)[:, None] + segment_log_p.sum(-1)           # [T, n]
  starts = np.broadcast_to(segments[-1][:, -1][:, None, None], (n, m, 1))
  steps = np.concatenate([starts, candidates], axis=2)
  log_p = _log_transitions(lang, steps[..., :-1], steps[..., 1:]).sum(-1)          # [T, n, M]
  # log Q_t(c) = log sum_{u != t} d_u P_u(c) - log sum_{u != t} d_u (d: the distractor weights).
  weights = _distractor_log_weights(lang, segment_log_p[..., -1])
  with np.errstate(invalid="ignore"):  # -inf - -inf: a t the context rules out (weight 0 below)
    log_q = _leave_one_out(weights[..., None] + log_p) - _leave_one_out(weights)[..., None]
  log_q = np.where(np.isfinite(context)[..., None], log_q, -np.inf)
  rest = np.where(np.eye(m, dtype=bool), 0.0, log_q[:, :, None, :]).sum(-1)        # [T, n, M]
  joint = _logsumexp(context[:, :, None] + log_p + rest, axis=0)                   # [n, M]
  posterior = np.exp(joint - _logsumexp(joint, axis=1)[:, None])
  gold_p = log_p[:, np.arange(n), gold]                                            # [T, n]
  loss = -(_logsumexp(context + gold_p, axis=0) - _logsumexp(context, axis=0)) / c
  return posterior, float(np.mean(loss))
