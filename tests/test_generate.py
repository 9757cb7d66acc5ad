"""Sampling on hand-made logits, and cached decoding against full recomputation."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model.transformer import ModelConfig, Transformer
from model import generate as gen

SMALL = dict(vocab_size=32, max_len=16, n_layer=2, d_model=32, n_heads=2, d_ff=64)


def samples(logits, **kw):
  """4000 independent draws of sample_token from one [1, V] row of logits -> int [4000]."""
  rows = jnp.broadcast_to(logits, (4000, logits.shape[-1]))
  return np.asarray(gen.sample_token(rows, jax.random.key(0), **kw))


def test_greedy_and_vanishing_temperature_pick_the_argmax():
  logits = jax.random.normal(jax.random.key(1), (8, 50)) * 3
  argmax = np.asarray(jnp.argmax(logits, -1))
  np.testing.assert_array_equal(gen.sample_token(logits, jax.random.key(2), temperature=0.0), argmax)
  np.testing.assert_array_equal(
      gen.sample_token(logits, jax.random.key(2), temperature=1e-7, top_k=5, top_p=0.5), argmax)
  # Just above the greedy switch: sampling proper, yet the argmax's odds are overwhelming.
  for seed in range(5):
    np.testing.assert_array_equal(
        gen.sample_token(logits, jax.random.key(seed), temperature=1e-3), argmax)


def test_top_k_never_leaves_the_k_best():
  logits = jax.random.normal(jax.random.key(3), (1, 40))
  best = set(np.argsort(-np.asarray(logits[0]))[:3].tolist())
  drawn = samples(logits, temperature=2.0, top_k=3)
  assert set(drawn.tolist()) == best  # every one of the k best, and nothing else


def test_top_p_keeps_the_smallest_set_reaching_p():
  probs = np.array([0.06, 0.25, 0.04, 0.40, 0.10, 0.15])  # sorted: .40 .25 .15 .10 .06 .04
  logits = jnp.log(jnp.asarray(probs))[None]
  # Cumulative mass .40, .65, .80, .90: p = 0.7 needs the first three tokens (3, 1, 5).
  drawn = samples(logits, top_p=0.7)
  assert set(drawn.tolist()) == {3, 1, 5}
  frequencies = np.bincount(drawn, minlength=6)[[3, 1, 5]] / len(drawn)
  np.testing.assert_allclose(frequencies, np.array([0.40, 0.25, 0.15]) / 0.80, atol=0.03)
  assert set(samples(logits, top_p=0.3).tolist()) == {3}      # the top token alone reaches .3
  assert set(samples(logits, top_p=0.85).tolist()) == {3, 1, 5, 4}
  assert set(samples(logits, top_p=1.0).tolist()) == set(range(6))
  # top-p works on what top-k kept, renormalised: of .40 and .25, .40 / .65 = .62 reaches .6.
  assert set(samples(logits, top_k=2, top_p=0.6).tolist()) == {3}


def test_bad_sampling_arguments_raise():
  with pytest.raises(ValueError, match="top_p"):
    gen.sample_token(jnp.zeros((1, 4)), jax.random.key(0), top_p=0.0)


@pytest.mark.parametrize("pos", ["rope", "learned"])  # sinusoidal shares learned's position path
def test_cached_decoding_equals_full_recomputation(pos):
  model = Transformer(ModelConfig(**SMALL, pos=pos), rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  tokens = jax.random.randint(jax.random.key(4), (2, 12), 0, 32)
  full = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))(state, tokens)
  decode = jax.jit(lambda state, x, cache: nnx.merge(graphdef, state).decode(x, cache))
  cache = model.init_cache(2)
  pieces = []
  for start, stop in [(0, 5)] + [(t, t + 1) for t in range(5, 12)]:  # prefill, then steps
    logits, cache = decode(state, tokens[:, start:stop], cache)
    pieces.append(logits)
  np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=2e-5)
  assert int(cache[0]["index"]) == 12


def test_greedy_generate_matches_rollout_and_compiles_once():
  model = Transformer(ModelConfig(**SMALL), rngs=nnx.Rngs(1))
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
  prompt = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)
  compiled_before = gen._step._cache_size()
  out = gen.generate(model, prompt, 10, jax.random.key(0), temperature=0.0)
  assert gen._step._cache_size() - compiled_before <= 2  # prefill and one step, not one per token
  assert out.shape == (2, 13)
  # (the rollouts' bookkeeping in numpy: op by op in JAX, every new shape is a compile)
  rollout = np.zeros((2, 13), np.int32)
  rollout[:, :3] = prompt
  for t in range(3, 13):  # the slow way: the whole sequence through the model for every token
    rollout[:, t] = np.argmax(forward(state, rollout)[:, t - 1], -1)
  np.testing.assert_array_equal(out, rollout)


@pytest.mark.parametrize("pos", ["rope", "learned"])  # sinusoidal re-encodes as learned does
def test_generation_past_the_context_slides_its_window_as_nanogpt_does(pos):
  """40 tokens from a 16-token model: each one greedy from the last 16 tokens, run through the
  whole model (nanoGPT's sampler); a rotary cache slides, the others re-encode the window."""
  model = Transformer(ModelConfig(**SMALL, pos=pos), rngs=nnx.Rngs(4))
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
  prompt = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)
  compiled_before = gen._step._cache_size()
  out = gen.generate(model, prompt, 40, jax.random.key(0), temperature=0.0)
  # prefill, one step, and for absolute positions the re-encoded window
  assert gen._step._cache_size() - compiled_before <= (2 if pos == "rope" else 3)
  assert out.shape == (2, 43)
  rollout = np.asarray(out[:, :3])
  for _ in range(40):  # causal: a window padded on the right to 16 predicts from its last token
    window = rollout[:, -16:]
    padded = np.pad(window, ((0, 0), (0, 16 - window.shape[1])))
    logits = forward(state, padded)[:, window.shape[1] - 1]
    rollout = np.concatenate([rollout, np.argmax(logits, -1)[:, None].astype(np.int32)], 1)
  np.testing.assert_array_equal(out, rollout)
  # A prompt longer than the context is read from its last 16 tokens.
  long_prompt = jax.random.randint(jax.random.key(5), (20,), 0, 32)
  continued = gen.generate(model, long_prompt, 5, jax.random.key(0), temperature=0.0)
  np.testing.assert_array_equal(continued[:20], long_prompt)
  np.testing.assert_array_equal(
      continued[20:], gen.generate(model, long_prompt[-16:], 5, jax.random.key(0),
                                   temperature=0.0)[16:])



@pytest.fixture(scope="module")
def seq2seq():
  return Transformer(ModelConfig(**SMALL, family="encoder_decoder"), rngs=nnx.Rngs(2))


def test_encoder_decoder_cached_decoding_equals_full_recomputation(seq2seq):
  graphdef, state = nnx.split(seq2seq)
  inputs = jax.random.randint(jax.random.key(5), (2, 14), 0, 32)
  targets = jax.random.randint(jax.random.key(6), (2, 9), 0, 32)
  full = jax.jit(lambda state, x, y: nnx.merge(graphdef, state)(y, x))(state, inputs, targets)
  cache = gen._encode(graphdef, state, inputs)
  assert cache[0]["cross_k"].shape == (2, 14, 2, 16)  # the encoder's keys, computed once
  decode = jax.jit(lambda state, y, cache: nnx.merge(graphdef, state).decode(y, cache))
  pieces = []
  for start, stop in [(0, 4)] + [(t, t + 1) for t in range(4, 9)]:
    logits, cache = decode(state, targets[:, start:stop], cache)
    pieces.append(logits)
  np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=2e-5)


def test_greedy_encoder_decoder_generation_matches_rollout(seq2seq):
  model = seq2seq
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda state, y, x: gen.emittable(nnx.merge(graphdef, state)(y, x),
                                                      model.cfg))
  inputs = jnp.array([[1, 2, 33, 4, 5], [6, 34, 7, 8, 9]], jnp.int32)  # 33, 34: sentinels 0, 1
  out = gen.generate_encoder_decoder(model, inputs, 6, jax.random.key(0), temperature=0.0)
  assert out.shape == (2, 6)
  # The slow way: the start (pad) token and the tokens so far through the whole model, per token
  # (positions not yet generated are placeholders the causal decoder cannot see).
  rollout = np.full((2, 7), 32, np.int32)
  for t in range(6):
    rollout[:, t + 1] = np.argmax(forward(state, rollout, inputs)[:, t], -1)
  np.testing.assert_array_equal(out, rollout[:, 1:])
  sampled = gen.generate_encoder_decoder(model, inputs, 40, jax.random.key(1), temperature=5.0)
  assert sampled.shape == (2, 40) and not bool(jnp.any(sampled == 32))  # never the pad id
  greedy_long = gen.generate_encoder_decoder(model, inputs, 24, jax.random.key(0), temperature=0.0)
  np.testing.assert_array_equal(greedy_long[:, :6], out)  # past the context it goes on
  with pytest.raises(ValueError, match="sample this encoder_decoder with generate_encoder_decoder"):
    gen.generate(model, [1, 2], 3, jax.random.key(0))


def test_fill_masks_fills_only_masked_positions_with_data_tokens():
  model = Transformer(ModelConfig(**SMALL, family="encoder"), rngs=nnx.Rngs(3))
  tokens = jnp.array([[1, 32, 3, 4, 32, 6], [32, 8, 9, 10, 11, 32]], jnp.int32)  # 32: the mask id
  logits = jax.jit(lambda state, x: nnx.merge(*state)(x))(nnx.split(model), tokens)
  out = gen.fill_masks(model, tokens, jax.random.key(0), temperature=0.0)
  masked = tokens == 32
  np.testing.assert_array_equal(out[~masked], tokens[~masked])
  np.testing.assert_array_equal(out[masked], jnp.argmax(logits[..., :32], -1)[masked])
  sampled = gen.fill_masks(model, jnp.full((64, 16), 32), jax.random.key(1), temperature=5.0)
  assert int(sampled.max()) < 32 and len(np.unique(sampled)) > 16
  with pytest.raises(ValueError, match="sample this encoder with fill_masks"):
    gen.generate_encoder_decoder(model, tokens, 3, jax.random.key(0))


def test_fill_spans_puts_each_span_in_its_sentinels_place():
  # Vocabulary 10: sentinel i is 11 + i. The output fills sentinel 0 with 7 8, sentinel 1 with 9;
  # sentinel 2 never appears in the output, so its place stays empty.
  assert gen.fill_spans([1, 11, 2, 12, 3, 13], [11, 7, 8, 12, 9], 10) == [1, 7, 8, 2, 9, 3]
  assert gen.fill_spans([1, 2], [5, 11, 6], 10) == [1, 2]  # tokens before any sentinel: nowhere


def test_an_empty_prompt_starts_a_text_and_a_foreign_symbol_names_the_alphabet(finished_tiny_run,
                                                                                capsys):
  from data import tokenizers
  from model import generate
  capsys.readouterr()
  args = ["--workdir", str(finished_tiny_run), "--max-new-tokens", "16", "--json"]
  assert generate.main([*args, "--prompt", ""]) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  # The synthetic language has no documents: its first symbol is drawn as its sequences' are.
  assert len(out["prompt_tokens"]) == 1 and len(out["new_tokens"]) == 16
  assert out["completion"] == tokenizers.SymbolTokenizer(64).decode(
      out["prompt_tokens"] + out["new_tokens"])
  assert generate.main([*args, "--prompt", "ab c"]) == 2
  assert capsys.readouterr().err.strip() == (
      "error: ' ' is not a symbol of the synthetic language; its 64 symbols are "
      "0-9, a-z, A-Z, +, /")
  # A text source's tokenizer starts from its end-of-document id, which decodes to nothing.
  assert generate.start_of_text(tokenizers.ByteTokenizer(), None, None) == [256]
