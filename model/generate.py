"""Sampling from a trained Transformer of any family: greedy, temperature, top-k and top-p.

- decoder: `generate` prefills the KV cache with the prompt in one call, then runs one position per
  new token. Both calls go through one jitted step whose shapes do not change from token to token
  (the cache always holds the model's max_len positions and the write index is a traced scalar),
  so a generation compiles twice (prefill, step) and never per token.
- encoder_decoder: `generate_encoder_decoder` encodes the input once, computing every decoder
  layer's cross-attention keys and values into the cache, then decodes from the start (pad) token
  through the same jitted step (self-attention KV cache, precomputed cross-attention).
- encoder: `fill_masks` samples every masked position from one bidirectional forward pass.
Past the model's context the window slides, as nanoGPT's sampler does: each token is predicted
from the last max_len tokens. Rotary positions depend only on the distance between a query and a
key, so a rotary cache keeps its keys and values and drops the oldest position (`_slide`); learned
and sinusoidal positions are absolute, so the last window is encoded afresh for every token past
the context (`_restart`). A prompt longer than the context is cut to its last max_len tokens.
Samples are drawn from the ids a family can emit: data tokens, and sentinels for an encoder-decoder
(which ends a span by starting the next one); never the mask or pad id.

CLI: python -m model.generate --workdir RUN_DIR --prompt TEXT [--max-new-tokens K]
       [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json]
It loads the run's model (model.loading.load_model) and tokenizer (data.load_tokenizer). A
decoder continues the prompt; an empty prompt starts a text (`start_of_text`). For the encoder families the prompt marks what to fill with the
marker `[MASK]`: an encoder fills each marker with one token; an encoder-decoder reads each marker
as a sentinel (a span of any length, T5's <extra_id_i>), generates K tokens and puts the span it
wrote after sentinel i in place of marker i.
"""
import argparse
import functools
import json
import sys

import jax
import jax.numpy as jnp
from flax import nnx

GREEDY_TEMPERATURE = 1e-6  # at or below this temperature, sampling is argmax
MASK_MARKER = "[MASK]"     # in a CLI prompt: a masked token (encoder) or a span (encoder-decoder)
SAMPLERS = {"decoder": "generate", "encoder": "fill_masks",
            "encoder_decoder": "generate_encoder_decoder"}


def sample_token(logits, key, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """Samples one token per row of float logits [B, V] -> int32 [B].

  temperature <= 1e-6 is greedy. Otherwise the logits are divided by the temperature; top_k > 0
  keeps the k most likely tokens; top_p < 1 then keeps the smallest set of most likely tokens
  whose (renormalised) probability reaches top_p (nucleus sampling, Holtzman et al. 2020).
  """
  if temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
    raise ValueError(f"need temperature >= 0, top_k >= 0 and 0 < top_p <= 1; got "
                     f"temperature={temperature}, top_k={top_k}, top_p={top_p}")
  if temperature <= GREEDY_TEMPERATURE:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  vocab = logits.shape[-1]
  sorted_logits, order = jax.lax.top_k(logits.astype(jnp.float32) / temperature, vocab)
  keep = jnp.arange(vocab) < (top_k if top_k else vocab)
  probs = jax.nn.softmax(jnp.where(keep, sorted_logits, -jnp.inf), axis=-1)
  # A token stays while the mass of the tokens ranked above it is still short of top_p.
  keep &= jnp.cumsum(probs, axis=-1) - probs < top_p
  choice = jax.random.categorical(key, jnp.where(keep, sorted_logits, -jnp.inf), axis=-1)
  return jnp.take_along_axis(order, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)


def emittable(logits, cfg):
  """logits [..., model_vocab] with the ids the family never emits (mask, pad) set to -inf."""
  ids = jnp.arange(cfg.model_vocab)
  allowed = ids != cfg.vocab_size if cfg.family == "encoder_decoder" else ids < cfg.vocab_size
  return jnp.where(allowed, logits, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("graphdef", "temperature", "top_k", "top_p"))
def _step(graphdef, state, tokens, cache, key, *, temperature, top_k, top_p):
  """Runs `tokens` [B, S] through the cached model and samples the token that follows them."""
  model = nnx.merge(graphdef, state)
  logits, cache = model.decode(tokens, cache)
  return sample_token(emittable(logits[:, -1], model.cfg), key, temperature, top_k, top_p), cache


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _encode(graphdef, state, encoder_tokens):
  """An encoder-decoder's cache for decoding with the encoding of encoder_tokens [B, S]."""
  return nnx.merge(graphdef, state).init_cache(encoder_tokens.shape[0],
                                               encoder_tokens=encoder_tokens)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens):
  return nnx.merge(graphdef, state)(tokens)


def _batched(tokens, what: str):
  tokens = jnp.asarray(tokens, jnp.int32)
  if tokens.ndim not in (1, 2) or tokens.shape[-1] == 0:
    raise ValueError(f"{what} must be a non-empty int array [P] or [B, P], got shape "
                     f"{tokens.shape}")
  return tokens if tokens.ndim == 2 else tokens[None], tokens.ndim == 2


def _check_family(model, family: str):
  if model.cfg.family != family:
    raise ValueError(f"{SAMPLERS[family]} samples {family} models; sample this "
                     f"{model.cfg.family} with {SAMPLERS[model.cfg.family]}")


@jax.jit
def _slide(cache, shift):
  """A rotary cache without its oldest `shift` positions: the kept keys keep their rotation, and
  the next position is offset + index as before."""
  roll = lambda x: jnp.roll(x, -shift, axis=1)
  return [{**layer, "k": roll(layer["k"]), "v": roll(layer["v"]),
           "index": layer["index"] - shift, "offset": layer["offset"] + shift} for layer in cache]


@jax.jit
def _restart(cache):
  """The cache emptied of its self-attention positions (cross-attention entries kept)."""
  zero = jnp.zeros((), jnp.int32)
  return [{**layer, "index": zero, "offset": zero} for layer in cache]


def _sample(graphdef, state, tokens, cache, max_new_tokens, key, cfg, **sampling):
  """Feeds tokens [B, S] then each sampled token back, sliding the window past the context (see
  the module docstring); returns the new tokens int32 [B, K]."""
  step = functools.partial(_step, graphdef, state, **sampling)
  max_len, index = cfg.max_len, 0  # index: the cache's filled slots, tracked on the host
  tokens = tokens[:, -max_len:]
  window = tokens  # the last max_len tokens fed or sampled
  new = []
  for step_key in jax.random.split(key, max_new_tokens):
    if index + tokens.shape[1] > max_len:
      if cfg.pos == "rope":
        cache, index = _slide(cache, index + tokens.shape[1] - max_len), max_len - tokens.shape[1]
      else:
        cache, index, tokens = _restart(cache), 0, window
    token, cache = step(tokens, cache, step_key)
    index += tokens.shape[1]
    new.append(token)
    tokens = token[:, None]
    window = jnp.concatenate([window, tokens], axis=1)[:, -max_len:]
  return jnp.stack(new, axis=1) if new else jnp.zeros((tokens.shape[0], 0), jnp.int32)


def generate(model, prompt_tokens, max_new_tokens: int, key, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0):
  """Continues prompt_tokens (int [P] or [B, P]) by max_new_tokens sampled tokens (decoder), any
  number of them: past the context the window slides (see the module docstring).

  Returns the prompt followed by the new tokens, int32 [P + K] or [B, P + K].
  """
  _check_family(model, "decoder")
  prompt, batched = _batched(prompt_tokens, "the prompt")
  if max_new_tokens < 0:
    raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
  graphdef, state = nnx.split(model)
  new = _sample(graphdef, state, prompt, model.init_cache(prompt.shape[0]), max_new_tokens, key,
                model.cfg, temperature=temperature, top_k=top_k, top_p=top_p)
  out = jnp.concatenate([prompt, new], axis=1)
  return out if batched else out[0]


def generate_encoder_decoder(model, encoder_tokens, max_new_tokens: int, key,
                             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """The decoder's output for encoder_tokens (int [S] or [B, S]): int32 [K] or [B, K].

  Decoding starts from the start (pad) token, which is not part of the output; past the
  decoder's context its window slides (see the module docstring).
  """
  _check_family(model, "encoder_decoder")
  inputs, batched = _batched(encoder_tokens, "encoder_tokens")
  if max_new_tokens < 0:
    raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
  if inputs.shape[1] > model.cfg.max_len:
    raise ValueError(f"the input ({inputs.shape[1]} tokens) exceeds the model's context of "
                     f"{model.cfg.max_len} tokens; shorten it")
  graphdef, state = nnx.split(model)
  start = jnp.full((inputs.shape[0], 1), model.cfg.vocab_size, jnp.int32)
  new = _sample(graphdef, state, start, _encode(graphdef, state, inputs), max_new_tokens, key,
                model.cfg, temperature=temperature, top_k=top_k, top_p=top_p)
  return new if batched else new[0]


def fill_masks(model, tokens, key, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
  """tokens (int [T] or [B, T]) with every mask id (vocab_size) replaced by a sampled data token.

  One bidirectional pass predicts all masked positions at once, each from the unmasked context.
  """
  _check_family(model, "encoder")
  tokens, batched = _batched(tokens, "tokens")
  if tokens.shape[1] > model.cfg.max_len:
    raise ValueError(f"{tokens.shape[1]} tokens exceed the model's context of "
                     f"{model.cfg.max_len}; shorten them")
  graphdef, state = nnx.split(model)
  logits = _forward(graphdef, state, tokens)
  batch, length, vocab = logits.shape
  samples = sample_token(emittable(logits, model.cfg).reshape(batch * length, vocab), key,
                         temperature, top_k, top_p).reshape(batch, length)
  out = jnp.where(tokens == model.cfg.vocab_size, samples, tokens)
  return out if batched else out[0]


def fill_spans(inputs: list[int], output: list[int], vocab_size: int) -> list[int]:
  """The encoder-decoder's input with each sentinel replaced by the span the output gives it.

  Output tokens after sentinel i (until the next sentinel) fill sentinel i's place; a sentinel the
  output never reached is left out. Sentinel i is vocab_size + 1 + i (model/corruption.py).
  """
  spans, current = {}, None
  for token in output:
    if token > vocab_size:
      current = spans.setdefault(token, [])
    elif current is not None:
      current.append(token)
  filled = []
  for token in inputs:
    filled.extend(spans.get(token, []) if token > vocab_size else [token])
  return filled


def encode_prompt(tokenizer, prompt: str, cfg) -> list[int]:
  """The prompt's ids, each MASK_MARKER becoming the family's mask id or next sentinel."""
  pieces = prompt.split(MASK_MARKER)
  markers = len(pieces) - 1
  if cfg.family == "decoder" and markers:
    raise ValueError(f"a decoder continues text; remove {MASK_MARKER} from the prompt")
  if cfg.family == "encoder" and not markers:
    raise ValueError(f"an encoder fills masked positions; put {MASK_MARKER} where a token is "
                     "missing, e.g. --prompt 'ab[MASK]cd'")
  if cfg.family == "encoder_decoder" and markers > cfg.n_special - 1:
    raise ValueError(f"the prompt has {markers} {MASK_MARKER} markers; this model knows "
                     f"{cfg.n_special - 1} sentinels")
  ids = []
  for i, piece in enumerate(pieces):
    if i:  # marker i (from 1) is the mask id, or sentinel i - 1 = vocab_size + 1 + (i - 1)
      ids.append(cfg.vocab_size if cfg.family == "encoder" else cfg.vocab_size + i)
    ids.extend(tokenizer.encode(piece))
  if not ids:
    raise ValueError(f"--prompt {prompt!r} encodes to no tokens; give some text")
  return ids


def start_of_text(tokenizer, cfg, key) -> list[int]:
  """What an empty prompt continues from: the end-of-document id, after which the model saw every
  document of a text source begin (decoded, it shows as nothing); or, for the synthetic language
  (no documents), a first symbol drawn as its sequences draw theirs: uniformly."""
  if tokenizer.eos_id is not None:
    return [tokenizer.eos_id]
  return [int(jax.random.randint(key, (), 0, cfg.vocab_size))]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m model.generate",
                                   description="Sample text from a trained run.")
  parser.add_argument("--workdir", required=True, help="the run directory of train.py")
  parser.add_argument("--prompt", required=True)
  parser.add_argument("--max-new-tokens", type=int, default=64)
  parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
  parser.add_argument("--top-k", type=int, default=0, help="0: no top-k cut")
  parser.add_argument("--top-p", type=float, default=1.0, help="1: no nucleus cut")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", action="store_true", help="end with one JSON object")
  args = parser.parse_args(argv)
  from data import load_tokenizer
  from model.loading import load_model
  try:
    model, _ = load_model(args.workdir)
    tokenizer = load_tokenizer(args.workdir)
    cfg = model.cfg
    if cfg.family == "decoder" and not args.prompt:
      prompt = start_of_text(tokenizer, cfg, jax.random.fold_in(jax.random.key(args.seed), 1))
    else:
      prompt = encode_prompt(tokenizer, args.prompt, cfg)
    sampling = dict(key=jax.random.key(args.seed), temperature=args.temperature,
                    top_k=args.top_k, top_p=args.top_p)
    if cfg.family == "decoder":
      new_tokens = [int(t) for t in generate(model, prompt, args.max_new_tokens, **sampling)
                    [len(prompt):]]
      start = args.prompt or tokenizer.decode(prompt)
      completion = start + tokenizer.decode(new_tokens)
    elif cfg.family == "encoder":
      filled = [int(t) for t in fill_masks(model, prompt, **sampling)]
      new_tokens = [t for t, p in zip(filled, prompt) if p == cfg.vocab_size]
      completion = tokenizer.decode(filled)
    else:
      new_tokens = [int(t) for t in generate_encoder_decoder(model, prompt, args.max_new_tokens,
                                                             **sampling)]
      completion = tokenizer.decode(fill_spans(prompt, new_tokens, cfg.vocab_size))
  except (ValueError, OSError) as e:  # ConfigError is a ValueError
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(completion)
  if args.json:  # new_tokens: what the model produced (the fills, for an encoder)
    print(json.dumps(dict(family=cfg.family, prompt=args.prompt, completion=completion,
                          prompt_tokens=prompt, new_tokens=new_tokens,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
