"""Sampling from a trained Transformer with a KV cache: greedy, temperature, top-k and top-p.

`generate` prefills the cache with the prompt in one call, then runs one position per new token.
Both calls go through one jitted step whose shapes do not change from token to token (the cache
always holds the model's max_len positions and the write index is a traced scalar), so a
generation compiles twice (prefill, step) and never per token.

CLI: python -m model.generate --workdir RUN_DIR --prompt TEXT --max-new-tokens K
       [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json]
It loads the run's model (model.checkpoint.load_model) and tokenizer (data.load_tokenizer).
"""
import argparse
import functools
import json
import sys

import jax
import jax.numpy as jnp
from flax import nnx

GREEDY_TEMPERATURE = 1e-6  # at or below this temperature, sampling is argmax


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


@functools.partial(jax.jit, static_argnames=("graphdef", "temperature", "top_k", "top_p"))
def _step(graphdef, state, tokens, cache, key, *, temperature, top_k, top_p):
  """Runs `tokens` [B, S] through the cached model and samples the token that follows them."""
  logits, cache = nnx.merge(graphdef, state).decode(tokens, cache)
  return sample_token(logits[:, -1], key, temperature, top_k, top_p), cache


def generate(model, prompt_tokens, max_new_tokens: int, key, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0):
  """Continues prompt_tokens (int [P] or [B, P]) by max_new_tokens sampled tokens.

  Returns the prompt followed by the new tokens, int32 [P + K] or [B, P + K].
  """
  prompt = jnp.asarray(prompt_tokens, jnp.int32)
  batched = prompt.ndim == 2
  prompt = prompt if batched else prompt[None]
  max_len = model.cfg.max_len
  if prompt.shape[1] == 0 or max_new_tokens < 0:
    raise ValueError(f"need a non-empty prompt and max_new_tokens >= 0, got a prompt of "
                     f"{prompt.shape[1]} tokens and max_new_tokens={max_new_tokens}")
  if prompt.shape[1] + max_new_tokens > max_len:
    raise ValueError(f"the prompt ({prompt.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) "
                     f"exceeds the model's context of {max_len} tokens; shorten one of them")
  graphdef, state = nnx.split(model)
  step = functools.partial(_step, graphdef, state, temperature=temperature, top_k=top_k,
                           top_p=top_p)
  cache = model.init_cache(prompt.shape[0])
  tokens, new = prompt, []
  for step_key in jax.random.split(key, max_new_tokens):
    token, cache = step(tokens, cache, step_key)
    new.append(token)
    tokens = token[:, None]
  out = jnp.concatenate([prompt] + [t[:, None] for t in new], axis=1)
  return out if batched else out[0]


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
  from model.checkpoint import load_model
  try:
    model, _ = load_model(args.workdir)
    tokenizer = load_tokenizer(args.workdir)
    prompt = tokenizer.encode(args.prompt)
    if not prompt:
      raise ValueError(f"--prompt {args.prompt!r} encodes to no tokens; give some text")
    out = generate(model, prompt, args.max_new_tokens, jax.random.key(args.seed),
                   args.temperature, args.top_k, args.top_p)
  except (ValueError, OSError) as e:  # ConfigError is a ValueError
    print(f"error: {e}", file=sys.stderr)
    return 2
  new_tokens = [int(t) for t in out[len(prompt):]]
  completion = tokenizer.decode(new_tokens)
  print(args.prompt + completion)
  if args.json:
    print(json.dumps(dict(prompt=args.prompt, completion=completion, prompt_tokens=list(prompt),
                          new_tokens=new_tokens, temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, seed=args.seed)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
