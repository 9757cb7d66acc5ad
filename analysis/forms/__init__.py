"""Scaling-law forms behind one interface, one module per form, registered by name.

A form says what a law is; analysis/fitter.py fits any of them the same way. Adding one is one
module that calls `register(Form(...))` on import (the forms here are imported below; a form
elsewhere, such as a test's, registers when its module is imported). The pipeline then fits it,
bootstraps it, checks its extrapolation, and gives it its fit.json section, report rows and, when
it has an `optimum`, frontier columns.

Conventions: the optimiser works on `raw` variables (logs of scales, exponents as they are);
`loss` maps (raw, log inputs) to the predicted log L as a jnp function JAX can differentiate;
`to_params` maps raw rows ([..., P] numpy) to the reported parameters; `to_raw` is its inverse.
`shift(raw, centre)` rewrites raw variables for inputs log x - centre (log N and log D centred give
the same minima with a far better conditioned Hessian); None where a form is fitted uncentred.
"""
import dataclasses
from typing import Callable

import numpy as np

PRIMARY = "approach3"  # the form whose optimum is the frontier's top level and the verdict's law
PRETRAINING = "pretraining"  # forms of L(N, D) the pipeline fits on a table of pre-training runs
FINETUNING = "finetuning"
CURVES = "curves"  # laws of a whole loss curve L(step | lr schedule): python -m analysis.curves


@dataclasses.dataclass(frozen=True, eq=False)  # identity hash: a form is a static argument of jit
class Form:
  name: str                 # the key of its figures in fit.json's frontier and extrapolation
  section: str              # its fit.json section
  title: str                # its report heading
  params: tuple             # reported parameter names
  raw: tuple                # the optimiser's variable names
  inputs: tuple             # the Runs fields it reads, in order (n, n_kaplan, d)
  loss: Callable            # (raw [P] jnp, log inputs tuple) -> predicted log L
  to_params: Callable       # raw [..., P] -> {name: array}
  to_raw: Callable          # {name: value} -> raw [P]
  grid: np.ndarray          # [S, P] starting points in raw variables
  objective: str = "huber"  # "huber" (delta HUBER_DELTA on log L) or "squares" on log L
  shift: Callable | None = None
  optimum: Callable | None = None  # (params, flops, k, gamma) -> (N_opt, D_opt) under C = k N^g D
  derived: Callable | None = None  # params -> extra reported numbers (frontier exponents, ...)
  formula: str = ""
  study: str = PRETRAINING
  floor: str | None = None  # the raw variable that is log E, which a table's known floor can fix


_REGISTRY: dict[str, Form] = {}


def register(form: Form) -> Form:
  """Adds `form` under its name (a module's second import re-registers the same name)."""
  _REGISTRY[form.name] = form
  return form


def unregister(name: str) -> None:
  """Removes a form (a test's, after the test)."""
  _REGISTRY.pop(name, None)


def get(name: str) -> Form:
  return _REGISTRY[name]


def registered(study: str = PRETRAINING) -> list[Form]:
  """The forms of `study`, in registration order (the built-in ones first)."""
  return [form for form in _REGISTRY.values() if form.study == study]


# The built-in forms register themselves (after `register` exists).
from analysis.forms import chinchilla, kaplan, finetune, data_constrained  # noqa: E402,F401  pylint: disable=all
from analysis.forms import tissue, multipower, tissue_n  # noqa: E402,F401  pylint: disable=all (CURVES)
