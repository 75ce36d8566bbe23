"""Input validation at the public boundary of `wvi`.

Every public function validates its arguments eagerly and raises a `ValueError` that names the argument and
says what was expected. Inside `jax.jit` / `vmap` / `grad` the arguments are tracers whose values are unknown,
so the checks that need values are skipped there (the design rule: keep traced code free of Python-side checks).
"""
from __future__ import annotations

import jax
import numpy as np


def is_concrete(*xs) -> bool:
    """True when none of `xs` is a JAX tracer, i.e. when their values can be inspected."""
    return not any(isinstance(leaf, jax.core.Tracer) for x in xs for leaf in jax.tree_util.tree_leaves(x))


def check_finite(x, name: str) -> None:
    """Raise if a concrete array holds NaN or infinite entries."""
    if is_concrete(x):
        arr = np.asarray(x)
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(f"{name} has {bad} non-finite (NaN or inf) entr{'y' if bad == 1 else 'ies'}; expected finite values")


def check_ndim(x, ndim: int, name: str, what: str) -> None:
    if np.ndim(x) != ndim:
        raise ValueError(f"{name} must be {what}; got an array of shape {np.shape(x)}")


def check_choice(value: str, known, name: str) -> None:
    if value not in known:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(repr(k) for k in known)}")
