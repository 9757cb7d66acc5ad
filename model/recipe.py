"""The training recipe: the documented rules that fill in what a config leaves at 0, as one object.

A sweep is only as fair as its worst-tuned point, so when a config leaves the learning rate, batch,
warmup, AdamW beta2 or the shape to be derived, they follow a recipe's rules of the non-embedding
parameter count N and the budget D. The config's `recipe.name` picks one of RECIPES and each
`recipe.*` constant set in the config overrides the named recipe's (core/defaults.py documents
them). A recipe only ever resolves to explicit values (train.lr, train.batch_size,
train.warmup_tokens, train.b2, the model shape), which is why the recipe section is not hashed.

The default recipe:
- Peak learning rate  lr(N) = 3e-3 * (N / 1e6) ** (-1/3): the N^-1/3 scaling of the OLMo model
  ladder, anchored so that ~1M-parameter models get 3e-3 and ~100M get 6.5e-4 (GPT-3 125M: 6e-4).
- Batch               tokens(N) = 4096 * sqrt(N / 1e5), rounded to a power of two in sequences, then
  lowered (by powers of two) until the run has at least 100 optimiser steps, and never below one
  sequence per device. Larger models tolerate larger batches (Kaplan's critical batch grows as the
  loss falls); the step floor keeps small budgets from being a handful of huge steps.
- Warmup              min(N tokens, 10% of D): one token per parameter as in the OLMo ladder,
  capped so that short runs spend most of their budget in the cosine.
- AdamW beta2         0.95 at every batch (b2_small below b2_small_below tokens per step is the seam
                      for a batch-dependent rule: small batches want a longer second-moment memory).
- Shape               model/sizing.py's rule at d_model / depth = 64.
- Parametrization     sp (model/parametrization.py): the lr rule above carries the width/depth
                      dependence.

The `mup` recipe (recipe.name=mup) transfers one learning rate instead: every run whose config
leaves model.parametrization at sp (the default) trains under mup with model.base_width =
recipe.base_width where the config leaves 0, at lr(N) = lr_base (lr_exponent 0: muP's per-group
lr, init and output multipliers carry the width dependence). Its base width is fixed, not each
sweep's smallest shape, so a run's numbers and id are a function of its own config (the same run
in any sweep, its verification run and a rerun with another ladder), and because lr_base was tuned
at exactly that base: a base moved elsewhere would need lr_base tuned again. Batch, warmup, beta2
and shape stay the default recipe's. An explicit model.parametrization other than sp
(e.g. completep), model.base_width or train.lr still wins; under the mup recipe a config cannot ask
for sp (the default value means "the recipe's"): to train sp, use the default recipe.
"""
import dataclasses
import math

from core.config import ConfigError
from model import sizing
from model.parametrization import PARAMETRIZATIONS


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The rule constants; its methods are the rules (pure functions of N, D and the batch)."""
  lr_base: float = 3e-3
  lr_anchor: float = 1e6
  lr_exponent: float = -1 / 3
  batch_tokens: float = 4096
  batch_anchor: float = 1e5
  min_steps: int = 100
  warmup_tokens_per_param: float = 1.0
  warmup_max_fraction: float = 0.1
  b2: float = 0.95
  b2_small: float = 0.95
  b2_small_below: float = 0
  aspect_ratio: float = sizing.ASPECT_RATIO
  parametrization: str = "sp"
  base_width: int = 0

  def lr(self, n_params: float) -> float:
    return self.lr_base * (n_params / self.lr_anchor) ** self.lr_exponent

  def batch(self, n_params: float, tokens: float, seq_len: int, multiple_of: int = 1) -> int:
    """Sequences per optimiser step, a multiple of `multiple_of` (devices x micro-batches)."""
    target_sequences = self.batch_tokens * math.sqrt(n_params / self.batch_anchor) / seq_len
    sequences = 2 ** max(0, round(math.log2(max(target_sequences, 1))))
    while sequences > 1 and tokens / (sequences * seq_len) < self.min_steps:
      sequences //= 2
    return max(multiple_of, sequences // multiple_of * multiple_of)

  def warmup(self, n_params: float, tokens: float) -> int:
    return int(min(self.warmup_tokens_per_param * n_params, self.warmup_max_fraction * tokens))

  def beta2(self, batch_size: int, seq_len: int) -> float:
    return self.b2_small if batch_size * seq_len < self.b2_small_below else self.b2

  def shape(self, n_params: float, mlp: str = "gelu", family: str = "decoder") -> dict:
    return sizing.shape_for_params(n_params, mlp, family, aspect_ratio=self.aspect_ratio)

  def parametrize(self, parametrization: str, base_width: int) -> tuple[str, int]:
    """(model.parametrization, model.base_width) of a config that gives these: sp (the default)
    becomes the recipe's parametrization and a base width of 0 the recipe's, under a parametrization
    that has one; anything else explicit is kept."""
    if parametrization == "sp":
      parametrization = self.parametrization
    if parametrization != "sp" and base_width == 0:
      base_width = self.base_width
    return parametrization, base_width


# Adding a recipe is one entry here (with its source in a comment) and one test.
RECIPES = {
    "default": Recipe(),
    # One lr tuned at the default sweep's smallest shape (d_model 16, 1 layer: base_width 16) and
    # transferred by muP: the scan, its parabola optimum and the transfer check are in
    # docs/results/2026-12-03-mup-recipe.md.
    "mup": Recipe(lr_base=0.044, lr_exponent=0.0, parametrization="mup", base_width=16),
}
FIELDS = tuple(field.name for field in dataclasses.fields(Recipe))


def from_config(config) -> Recipe:
  """The recipe `config.recipe` selects, with its overrides (a config without one: the default)."""
  section = config.get("recipe") or {}
  name = section.get("name", "default")
  if name not in RECIPES:
    raise ConfigError(f"recipe.name must be one of {', '.join(RECIPES)}, got {name!r}")
  overrides = {key: section[key] for key in FIELDS if section.get(key) is not None}
  recipe = dataclasses.replace(RECIPES[name], **overrides)
  positive = ("lr_base", "lr_anchor", "batch_tokens", "batch_anchor", "min_steps",
              "warmup_max_fraction", "aspect_ratio")
  if any(not getattr(recipe, key) > 0 for key in positive) or recipe.warmup_tokens_per_param < 0:
    raise ConfigError(f"recipe.{', recipe.'.join(positive)} must be positive and "
                      "recipe.warmup_tokens_per_param at least 0")
  if recipe.parametrization not in PARAMETRIZATIONS:
    raise ConfigError(f"recipe.parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got "
                      f"{recipe.parametrization!r}")
  if recipe.parametrization != "sp" and not (isinstance(recipe.base_width, int)
                                              and recipe.base_width > 0):
    raise ConfigError(f"recipe.parametrization={recipe.parametrization} needs recipe.base_width, "
                      f"the d_model its lr_base was tuned at (a positive integer), got "
                      f"{recipe.base_width!r}")
  if not (0 < recipe.b2 < 1 and 0 < recipe.b2_small < 1):
    raise ConfigError(f"recipe.b2 and recipe.b2_small must be within (0, 1), got {recipe.b2} "
                      f"and {recipe.b2_small}")
  return recipe
