"""The encoder and encoder-decoder families: corruption statistics on real batches, attention
structure, the three families trained through train.py, and the generation CLI of each."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import data
import train
from conftest import TINY
from core.config import load_config
from model import corruption, objectives
from model.families import OBJECTIVES
from model.transformer import ModelConfig, Transformer
from model import generate as gen

V = 64  # the synthetic source's vocabulary


@pytest.fixture(scope="module")
def tokens():
  """512 real sequences of 64 tokens from the tiny config's synthetic source."""
  source = data.make_source(load_config(TINY))
  return jnp.asarray(source.sequences("train", 0, 512)[:, :-1])


def test_masking_rates_and_the_80_10_10_split(tokens):
  mask = jax.jit(corruption.mask_tokens, static_argnums=2)
  inputs, weights = mask(jax.random.key(0), tokens, V)
  inputs, weights, tokens = np.asarray(inputs), np.asarray(weights), np.asarray(tokens)
  chosen = weights == 1
  assert set(np.unique(weights)) == {0.0, 1.0}
  np.testing.assert_array_equal(chosen.sum(1), corruption.n_masked(64))  # 10 of 64 per row
  # Chosen positions are spread over the sequence, not bunched at one end.
  halves = chosen[:, :32].mean(), chosen[:, 32:].mean()
  assert abs(halves[0] - halves[1]) < 0.02 and abs(np.mean(halves) - 10 / 64) < 1e-9
  np.testing.assert_array_equal(inputs[~chosen], tokens[~chosen])  # the rest is untouched
  picked, original = inputs[chosen], tokens[chosen]  # 5,120 chosen tokens
  masked = picked == V
  randomised = (picked != V) & (picked != original)
  kept = picked == original
  # A random token equals the original one time in 64: 10% x 63/64 changed, 10% x 65/64 kept.
  assert masked.mean() == pytest.approx(0.8, abs=0.025)
  assert randomised.mean() == pytest.approx(0.1 * 63 / 64, abs=0.02)
  assert kept.mean() == pytest.approx(0.1 * 65 / 64, abs=0.02)
  assert picked.max() <= V and np.all(picked[~masked] < V)
  # A pure function of the key: the same key repeats the noise, another key does not.
  again, _ = mask(jax.random.key(0), jnp.asarray(tokens), V)
  other, _ = mask(jax.random.key(1), jnp.asarray(tokens), V)
  np.testing.assert_array_equal(again, inputs)
  assert np.mean(np.asarray(other) != inputs) > 0.05


def reconstruct(encoder_row, target_row):
  """(the original sequence, its noise mask) from a span-corrupted pair, read off independently
  of the model code."""
  starts = np.flatnonzero(target_row > V)
  spans = {target_row[s]: target_row[s + 1:e] for s, e in zip(starts, list(starts[1:]) + [None])}
  pieces = [(spans[t], True) if t > V else ([t], False) for t in encoder_row]
  return (np.concatenate([p for p, _ in pieces]),
          np.concatenate([np.full(len(p), is_noise) for p, is_noise in pieces]))


def test_span_corruption_is_well_formed_and_reconstructs_the_input(tokens):
  rows = np.asarray(tokens)
  sizes = corruption.span_lengths(64)
  assert sizes == {"n_noise": 10, "n_spans": 3, "encoder_len": 57, "decoder_len": 13}
  assert corruption.span_lengths(512) == {"n_noise": 77, "n_spans": 26, "encoder_len": 461,
                                          "decoder_len": 103}
  corrupt = jax.jit(corruption.corrupt_spans, static_argnums=2)
  encoder, targets = map(np.asarray, corrupt(jax.random.key(3), tokens, V))
  assert encoder.shape == (512, 57) and targets.shape == (512, 13)
  sentinels = list(range(V + 1, V + 4))
  span_lengths, noise = [], []
  for row, enc, tgt in zip(rows, encoder, targets):
    # Each sentinel once, in order, in both; no pad; spans are separated by kept tokens.
    assert list(enc[enc > V]) == sentinels and list(tgt[tgt > V]) == sentinels
    assert V not in enc and V not in tgt
    assert tgt[0] == V + 1
    assert not np.any((enc[1:] > V) & (enc[:-1] > V))
    starts = np.flatnonzero(tgt > V)
    span_lengths.extend(np.diff(list(starts) + [len(tgt)]) - 1)
    original, row_noise = reconstruct(enc, tgt)
    np.testing.assert_array_equal(original, row)  # the targets restore the input exactly
    noise.append(row_noise)
  span_lengths, noise = np.array(span_lengths), np.array(noise)
  assert span_lengths.min() >= 1 and len(np.unique(span_lengths)) >= 4  # random, not fixed
  assert span_lengths.mean() == pytest.approx(10 / 3)  # mean span length 3, rounded counts
  assert noise.mean() == pytest.approx(10 / 64)        # noise density 0.15, rounded
  # Noise falls evenly over the sequence (T5's interleaving would always end it in noise). An end
  # token is noise when a span starts (ends) there: in 3 of the 55 gaps around the kept tokens.
  assert abs(noise[:, 32:].mean() - noise[:, :32].mean()) < 0.03
  assert noise[:, 0].mean() == pytest.approx(3 / 55, abs=0.03)
  assert noise[:, -1].mean() == pytest.approx(3 / 55, abs=0.03)
  again, _ = corrupt(jax.random.key(3), tokens, V)
  np.testing.assert_array_equal(again, encoder)  # a pure function of the key


def test_decoder_inputs_shift_the_targets_behind_the_start_token():
  targets = jnp.array([[65, 3, 4, 66, 5]])
  np.testing.assert_array_equal(corruption.decoder_inputs(targets, V), [[64, 65, 3, 4, 66]])


SMALL = dict(vocab_size=32, max_len=16, n_layer=1, d_model=32, n_heads=2, d_ff=64)


def random_model(cfg):
  """A Transformer(cfg) with normal(0, 0.1) weights drawn by numpy: no compilation, where nnx's
  initialisers compile a random draw per parameter shape (seconds on a busy 2-core machine)."""
  graphdef, state = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(0)
  return nnx.merge(graphdef, jax.tree.map(lambda x: rng.normal(0, 0.1, x.shape).astype(x.dtype),
                                          state))


def jitted(model):
  """The model's forward under plain jax.jit, split into graph and state as train.py does (eager
  JAX would compile every operation on its own)."""
  graphdef, state = nnx.split(model)
  function = jax.jit(lambda state, *args: nnx.merge(graphdef, state)(*args))
  return lambda *args: function(state, *args)


def test_encoder_is_bidirectional_and_the_encoder_decoder_reads_all_its_input():
  x = np.random.default_rng(0).integers(0, 32, (2, 12))
  changed = x.copy()
  changed[:, 7] = (x[:, 7] + 1) % 32
  encoder = random_model(ModelConfig(**SMALL, family="encoder"))
  forward = jitted(encoder)
  assert forward(x).shape == (2, 12, 33)  # the mask id is in the vocabulary
  assert float(jnp.abs(forward(changed)[:, :7] - forward(x)[:, :7]).max()) > 1e-4
  seq2seq = random_model(ModelConfig(**SMALL, family="encoder_decoder"))
  assert seq2seq.cfg.model_vocab == 32 + 1 + corruption.span_lengths(16)["n_spans"]
  forward = jitted(seq2seq)
  decoder_in = x[:, :6]
  logits = forward(decoder_in, x)
  # Every decoder position sees every encoder token; the decoder itself stays causal.
  assert float(jnp.abs(forward(decoder_in, changed) - logits).max(axis=-1).min()) > 1e-5
  later = decoder_in.copy()
  later[:, 4] = (later[:, 4] + 1) % 32
  np.testing.assert_allclose(forward(later, x)[:, :4], logits[:, :4], atol=1e-6)
  with pytest.raises(ValueError, match="needs encoder_tokens"):
    jitted(seq2seq)(decoder_in)
  with pytest.raises(ValueError, match="takes no encoder_tokens"):
    jitted(encoder)(x, x)


def test_losses_are_means_over_the_chosen_targets():
  assert set(OBJECTIVES) == {"decoder", "encoder", "encoder_decoder"}
  # Weights pick the targets: a loss over two of four positions is their mean.
  logits = jax.random.normal(jax.random.key(1), (1, 4, 5))
  targets = jnp.array([[0, 1, 2, 3]])
  each = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
  weighted = objectives.cross_entropy(logits, targets, jnp.array([[1.0, 0, 1, 0]]))
  assert float(weighted) == pytest.approx(float(each[0, 0] + each[0, 2]) / 2, rel=1e-6)


# ------------------------------------------------------------- the three families via train.py

FAST = ["--config.model.n_layer=1", "--config.model.d_model=32", "--config.model.n_heads=2",
        "--config.train.tokens=61440", "--config.train.lr=0.01", "--config.train.log_every=10",
        "--config.train.eval_tokens=1024", "--config.train.checkpoint_every=60",
        "--config.wandb.mode=disabled"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """One tiny run per family (60 steps of 16 x 64 tokens): family -> run directory."""
  workdirs = {}
  for family in ("decoder", "encoder", "encoder_decoder"):
    workdir = tmp_path_factory.mktemp(family)
    assert train.main(["--config", TINY, "--workdir", str(workdir), *FAST,
                       f"--config.model.family={family}"]) == 0
    workdirs[family] = workdir
  return workdirs


@pytest.mark.slow
@pytest.mark.parametrize("family", ["decoder", "encoder", "encoder_decoder"])
def test_each_family_trains_through_train_py(runs, family):
  with open(runs[family] / "result.json") as f:
    result = json.load(f)
  with open(runs[family] / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert result["status"] == "completed"
  assert result["family"] == family and result["objective"] == OBJECTIVES[family]
  assert result["tokens"] == 60 * 16 * 64
  assert result["flops"] == pytest.approx(result["tokens"] * result["flops_per_token"])
  # From about uniform, the loss falls (the masked LM slowest: it must learn to attend to the
  # neighbours of a mask, where a decoder reads the token it continues from its own position).
  assert rows[0]["train_loss"] < math.log(64 + 4) + 0.05
  assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.08
  assert result["final_eval_loss"] < math.log(V) - 0.1
  config = json.load(open(runs[family] / "config.json"))
  assert config["model"]["family"] == family and config["model"]["vocab_size"] == V


def generate_cli(workdir, capsys, *args):
  assert gen.main(["--workdir", str(workdir), "--json", "--temperature", "0", *args]) == 0
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_generation_cli_for_each_family(runs, capsys):
  out = generate_cli(runs["decoder"], capsys, "--prompt", "abc", "--max-new-tokens", "1")
  assert out["completion"].startswith("abc") and len(out["completion"]) == 4
  # The encoder fills each [MASK] with one symbol and leaves the rest as it was.
  out = generate_cli(runs["encoder"], capsys, "--prompt", "ab[MASK]cd[MASK]")
  assert len(out["completion"]) == 6 and out["completion"][:2] + out["completion"][3:5] == "abcd"
  assert out["prompt_tokens"][2] == V and len(out["new_tokens"]) == 2
  assert out["completion"][2] + out["completion"][5] == data.load_tokenizer(
      str(runs["encoder"])).decode(out["new_tokens"])
  # The encoder-decoder writes sentinel-led spans; each fills its marker in the prompt.
  out = generate_cli(runs["encoder_decoder"], capsys, "--prompt", "abcd[MASK]efgh[MASK]ij",
                     "--max-new-tokens", "8")
  assert out["prompt_tokens"][4] == V + 1 and out["prompt_tokens"][9] == V + 2
  assert len(out["new_tokens"]) == 8 and V not in out["new_tokens"]
  spans = gen.fill_spans(out["prompt_tokens"], out["new_tokens"], V)
  assert out["completion"] == data.load_tokenizer(str(runs["encoder_decoder"])).decode(spans)
  assert out["completion"].startswith("abcd")
  for family, prompt, message in [("encoder", "abc", "put [MASK]"),
                                  ("decoder", "a[MASK]", "remove [MASK]"),
                                  ("encoder_decoder", "a[MASK]" * 9, "sentinels")]:
    assert gen.main(["--workdir", str(runs[family]), "--prompt", prompt]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ analysis/families.py

def law_fit(E, A, B, alpha, beta, budgets):
  """A fit.json of the analysis package for an exact law, with Approach 2 minima on its frontier."""
  a, b = beta / (alpha + beta), alpha / (alpha + beta)
  G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
  minima = [{"flops": c, "n_opt": G * (c / 6) ** a, "d_opt": (c / 6) ** b / G, "loss_opt": 3.0}
            for c in budgets]
  return {"n_points": 20, "loss_floor": 0.9,
          "chinchilla_approach3": dict(E=E, A=A, B=B, alpha=alpha, beta=beta, a=a, b=b, G=G,
                                       converged=True),
          "chinchilla_approach2": {"a": a, "b": b, "budgets": budgets, "profiles": minima}}


def test_families_comparison_puts_the_frontiers_side_by_side(tmp_path, capsys):
  from analysis import families
  budgets = [1e10, 1e11]
  paths = {}
  for family, law in [("decoder", (2.0, 400.0, 1000.0, 0.35, 0.30)),
                      ("encoder", (1.5, 200.0, 3000.0, 0.30, 0.40))]:
    paths[family] = tmp_path / f"{family}.json"
    paths[family].write_text(json.dumps(law_fit(*law, budgets)))
  out = tmp_path / "out"
  assert families.main(["--fit", f"decoder={paths['decoder']}", "--fit",
                        f"encoder={paths['encoder']}", "--out", str(out), "--json"]) == 0
  comparison = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert comparison == json.load(open(out / "families.json"))
  assert (out / "families.png").stat().st_size > 10_000 and "| encoder | masked_lm |" in (
      out / "families.md").read_text()
  decoder = comparison["families"]["decoder"]
  assert decoder["objective"] == "causal_lm" and decoder["a"] == pytest.approx(0.30 / 0.65)
  # D_opt / N_opt = G^-2 (C/6)^(b - a): the decoder's grows with C (b > a), the encoder's shrinks.
  assert [row["flops"] for row in comparison["frontier"]] == budgets
  for row in comparison["frontier"]:
    for family, (A, B, alpha, beta) in [("decoder", (400.0, 1000.0, 0.35, 0.30)),
                                        ("encoder", (200.0, 3000.0, 0.30, 0.40))]:
      G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
      expected = G ** -2 * (row["flops"] / 6) ** ((alpha - beta) / (alpha + beta))
      assert row[family]["tokens_per_param"] == pytest.approx(expected, rel=1e-9)
  rows = comparison["frontier"]
  assert rows[1]["decoder"]["tokens_per_param"] > rows[0]["decoder"]["tokens_per_param"]
  assert rows[1]["encoder"]["tokens_per_param"] < rows[0]["encoder"]["tokens_per_param"]


def test_families_comparison_bad_input_is_one_line_exit_2(tmp_path, capsys):
  from analysis import families
  table = tmp_path / "results.csv"
  table.write_text("run_id,status,n_params,tokens,final_eval_loss\nr0,completed,1e4,1e6,3.0\n")
  assert families.main(["--results", str(table), "--out", str(tmp_path / "o")]) == 2
  assert "no family column" in capsys.readouterr().err
  assert families.main(["--fit", "decoder", "--out", str(tmp_path / "o")]) == 2
  assert "FAMILY=PATH" in capsys.readouterr().err
