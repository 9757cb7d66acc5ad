"""Input corruption for the encoder families: BERT's masked LM and T5's span corruption, in JAX.

Both run on the device inside the jitted train step, drawn from the step's own key (a pure function
of (seed, step)), with shapes that depend only on the sequence length, so they compile once.

Special tokens extend the data's vocabulary V; the ids above V belong to the model family, so no
tokenizer changes and any source works:
  encoder          mask id = V                          (model vocabulary V + 1)
  encoder_decoder  pad id = V (also the decoder's start token), sentinel i = V + 1 + i for the
                   i-th noise span, i < n_spans          (model vocabulary V + 1 + n_spans)

Masked LM (Devlin et al. 2019): exactly round(0.15 T) positions of each sequence are chosen (as
BERT's reference implementation does, so every sequence has the same number of targets); of these
80% become the mask id, 10% a token drawn uniformly from the data vocabulary, 10% stay. The loss is
taken on the chosen positions only.

Span corruption (Raffel et al. 2020, after T5's `random_spans_noise_mask`): of a sequence of L
tokens, n_noise = round(0.15 L) tokens in n_spans = round(n_noise / 3) spans are noise. The noise
tokens are cut into n_spans spans at uniformly random points, and the spans go, in order, into
n_spans distinct gaps drawn uniformly among the L - n_noise + 1 gaps around the kept tokens, so two
spans never touch. (T5 interleaves kept and noise segments kept-first, so every sequence ends in
noise and starts with a kept token; its later `random_roll` option removes that bias by rotating
the mask, which can split a span in two and change the span count. Drawing gaps keeps the count
fixed and spreads the noise over the sequence; an end token is noise only when a span starts or
ends there, about a third as often as an inner one.) The encoder sees the kept tokens with each
noise span replaced by its sentinel; the decoder's targets are each sentinel followed by the span
it stands for. Because the noise and span counts are fixed, the encoder length L - n_noise +
n_spans and the target length n_noise + n_spans are static and need no padding. T5's closing
end-of-sequence target is left out: the target length already tells where the last span ends.
"""
import jax
import jax.numpy as jnp

MASK_RATE = 0.15            # share of positions the masked LM predicts
MASK_SPLIT = (0.8, 0.1)     # of those: replaced by the mask id, by a random token (the rest stay)
NOISE_DENSITY = 0.15        # share of tokens span corruption removes
MEAN_SPAN_LENGTH = 3.0


def n_masked(seq_len: int) -> int:
  """Positions the masked LM predicts in each sequence of seq_len tokens."""
  return max(1, round(MASK_RATE * seq_len))


def span_lengths(seq_len: int) -> dict:
  """Static sizes for seq_len tokens: dict(n_noise, n_spans, encoder_len, decoder_len)."""
  if seq_len < 2:
    raise ValueError(f"span corruption needs sequences of at least 2 tokens, got {seq_len}")
  n_noise = min(max(round(seq_len * NOISE_DENSITY), 1), seq_len - 1)
  n_spans = max(round(n_noise / MEAN_SPAN_LENGTH), 1)
  return dict(n_noise=n_noise, n_spans=n_spans, encoder_len=seq_len - n_noise + n_spans,
              decoder_len=n_noise + n_spans)


def mask_tokens(key, tokens, vocab_size: int):
  """Masked-LM corruption of int tokens [B, T] (ids < vocab_size).

  Returns (inputs int32 [B, T] with mask id vocab_size, weights float32 [B, T]: 1 on the chosen
  positions, whose targets are the original tokens).
  """
  # One draw for all the noise (each random draw is a sizeable piece of the compiled step).
  choose, action, pick = jax.random.uniform(key, (3,) + tokens.shape)
  # Exactly n_masked positions per row: those whose uniform ranks lowest.
  chosen = jnp.argsort(jnp.argsort(choose, axis=-1), axis=-1) < n_masked(tokens.shape[-1])
  random_tokens = jnp.minimum(pick * vocab_size, vocab_size - 1).astype(tokens.dtype)
  replaced = jnp.where(action < MASK_SPLIT[0], vocab_size,
                       jnp.where(action < sum(MASK_SPLIT), random_tokens, tokens))
  return jnp.where(chosen, replaced, tokens).astype(jnp.int32), chosen.astype(jnp.float32)


def noise_spans(key, batch: int, seq_len: int):
  """Noise masks of `batch` sequences: span index int32 [batch, seq_len], -1 on kept tokens."""
  sizes = span_lengths(seq_len)
  n_noise, n_spans = sizes["n_noise"], sizes["n_spans"]
  n_gaps = seq_len - n_noise + 1
  uniform = jax.random.uniform(key, (batch, n_gaps + n_noise - 1))  # one draw for all the noise
  # k distinct random items of n, in increasing order: the k lowest ranks of uniform keys.
  draw = lambda u, k: jnp.sort(jnp.argsort(u, axis=-1)[:, :k], axis=-1).astype(jnp.int32)
  gap = draw(uniform[:, :n_gaps], n_spans)
  # noise[:, s]: the noise tokens of spans 0..s-1 (cut points 1..n_noise-1 between spans).
  noise = jnp.concatenate([jnp.zeros((batch, 1), jnp.int32), draw(uniform[:, n_gaps:], n_spans - 1)
                           + 1, jnp.full((batch, 1), n_noise, jnp.int32)], axis=1)
  # Span s sits in gap[s]: after gap[s] kept tokens and the noise tokens of spans 0..s-1.
  rows = jnp.arange(batch)[:, None]
  begins = jnp.zeros((batch, seq_len + 1), jnp.int32).at[rows, gap + noise[:, :-1]].set(1)
  ends = jnp.zeros((batch, seq_len + 1), jnp.int32).at[rows, gap + noise[:, 1:]].set(1)
  begun = jnp.cumsum(begins, axis=1)[:, :seq_len]
  inside = begun > jnp.cumsum(ends, axis=1)[:, :seq_len]
  return jnp.where(inside, begun - 1, -1)


def corrupt_spans(key, tokens, vocab_size: int):
  """Span corruption of int tokens [B, L] (ids < vocab_size).

  Returns (encoder inputs int32 [B, encoder_len], decoder targets int32 [B, decoder_len]); the
  decoder's inputs are the targets shifted right behind the start (pad) id, see `decoder_inputs`.
  """
  batch, seq_len = tokens.shape
  sizes = span_lengths(seq_len)
  tokens = tokens.astype(jnp.int32)
  span = noise_spans(key, batch, seq_len)
  noise = span >= 0
  span_start = noise & jnp.concatenate(
      [jnp.ones((batch, 1), bool), span[:, 1:] != span[:, :-1]], axis=1)
  sentinel = vocab_size + 1 + span
  rows = jnp.arange(batch)[:, None]
  # Encoder: kept tokens, and each span's first token turned into its sentinel; the rest dropped.
  in_encoder = ~noise | span_start
  encoder_slot = jnp.where(in_encoder, jnp.cumsum(in_encoder, axis=1) - 1, sizes["encoder_len"])
  encoder = jnp.zeros((batch, sizes["encoder_len"]), jnp.int32).at[rows, encoder_slot].set(
      jnp.where(span_start, sentinel, tokens), mode="drop")
  # Targets: noise token t goes after the sentinels of spans 0..span[t] and the noise before it.
  noise_before = jnp.cumsum(noise, axis=1) - noise
  token_slot = jnp.where(noise, noise_before + span + 1, sizes["decoder_len"])
  sentinel_slot = jnp.where(span_start, noise_before + span, sizes["decoder_len"])
  targets = (jnp.zeros((batch, sizes["decoder_len"]), jnp.int32)
             .at[rows, token_slot].set(tokens, mode="drop")
             .at[rows, sentinel_slot].set(sentinel, mode="drop"))
  return encoder, targets


def decoder_inputs(targets, vocab_size: int):
  """Teacher forcing: the pad id (vocab_size) as start token, then targets[:, :-1]."""
  start = jnp.full((targets.shape[0], 1), vocab_size, jnp.int32)
  return jnp.concatenate([start, targets[:, :-1]], axis=1)
