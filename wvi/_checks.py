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


def check_log_density(log_density, point, name: str = "log_density", where: str = "the mean of q") -> None:
    """Raise unless `log_density` is a function that maps `point` (shape (d,)) to a finite scalar. Under jit/vmap
    the value is unknown and only its shape is checked."""
    if not callable(log_density):
        raise ValueError(f"{name} must be a function x -> log p(x); got {type(log_density).__name__}")
    value = log_density(point)
    if np.shape(value) != ():
        raise ValueError(f"{name} must return a scalar for a point of shape {np.shape(point)}; got shape {np.shape(value)}")
    if is_concrete(value) and not np.isfinite(np.asarray(value)):
        raise ValueError(f"{name} returned {np.asarray(value)} at {where}; expected a finite log density there")
