"""Neural networks as pure functions of parameter pytrees (Part IV; Part V extends this module).

An MLP's parameters are a list of layers `{"w": (fan_in, fan_out), "b": (fan_out,)}`; `mlp_apply` maps inputs
(..., fan_in) to outputs (..., fan_out) with the activation between layers and none after the last. An ensemble is
the same pytree with a leading member axis on every leaf: `jax.vmap(lambda k: mlp_init(k, sizes))(keys)`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}


def _check_sizes(sizes):
    if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
        raise ValueError(f"sizes must list at least two positive layer widths (input, ..., output); got {list(sizes)!r}")


def mlp_prior_std(sizes: Sequence[int], weight_scale: float = 1.0, bias_std: float = 1.0) -> list:
    """Per-leaf prior (and initialisation) standard deviations: w ~ N(0, weight_scale²/fan_in), b ~ N(0, bias_std²).
    A pytree shaped like one MLP, usable as `prior_std` in `wvi.ensembles.build`."""
    _check_sizes(sizes)
    return [{"w": weight_scale / np.sqrt(m), "b": bias_std} for m in sizes[:-1]]


def mlp_init(key, sizes: Sequence[int], prior_std=None) -> list:
    """Draw MLP parameters from N(0, prior_std²) leaf by leaf (default: `mlp_prior_std(sizes)`)."""
    _check_sizes(sizes)
    prior_std = mlp_prior_std(sizes) if prior_std is None else prior_std
    if len(prior_std) != len(sizes) - 1:
        raise ValueError(f"prior_std must hold one {{'w', 'b'}} entry per layer ({len(sizes) - 1}); got {len(prior_std)}")
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    return [{"w": std["w"] * jax.random.normal(keys[2 * i], (m, n)), "b": std["b"] * jax.random.normal(keys[2 * i + 1], (n,))}
            for i, (m, n, std) in enumerate(zip(sizes[:-1], sizes[1:], prior_std))]


def mlp_apply(params: list, x: jax.Array, activation: str = "tanh") -> jax.Array:
    """f(x) = W_L σ(... σ(W_1 x + b_1) ...) + b_L, for x of shape (..., fan_in)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(map(repr, ACTIVATIONS))}")
    act: Callable = ACTIVATIONS[activation]
    fan_in = params[0]["w"].shape[0]
    if jnp.shape(x)[-1] != fan_in:
        raise ValueError(f"x must have {fan_in} features in its last axis; got shape {jnp.shape(x)}")
    for layer in params[:-1]:
        x = act(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def gaussian_nll(mean, log_var, y) -> jax.Array:
    """−log N(y; mean, exp(log_var)) elementwise: ½[log 2π + log_var + (y − mean)² e^{−log_var}]."""
    return 0.5 * (jnp.log(2 * jnp.pi) + log_var + (y - mean) ** 2 * jnp.exp(-log_var))


def mixture_metrics(means, log_vars, y, y_scale: float = 1.0) -> tuple[float, float]:
    """Test metrics of an ensemble's predictive, the equal mixture of its members' Gaussians N(mean_s, exp(log_var_s)):
    (mean negative log likelihood, RMSE of the mixture mean), for means and log_vars of shape (S, N) and y (N,).
    With standardised targets, `y_scale` (the training std) returns both in the original units."""
    means, log_vars, y = jnp.asarray(means), jnp.asarray(log_vars), jnp.asarray(y)
    if means.ndim != 2 or means.shape != log_vars.shape or means.shape[1:] != y.shape:
        raise ValueError(f"means and log_vars must be (S, N) and y (N,); got {means.shape}, {log_vars.shape}, {y.shape}")
    log_lik = jax.scipy.special.logsumexp(-gaussian_nll(means, log_vars, y), axis=0) - jnp.log(means.shape[0])
    nll = -jnp.mean(log_lik) + jnp.log(y_scale)
    rmse = jnp.sqrt(jnp.mean((means.mean(0) - y) ** 2)) * y_scale
    return float(nll), float(rmse)


def floored_log_var(raw, floor: float = -4.0) -> jax.Array:
    """A log variance that cannot fall below `floor`: floor + softplus(raw − floor) (≈ raw well above the floor).
    Keeps a network's predicted variance away from 0, where the Gaussian NLL's gradients blow up under SGD."""
    return floor + jax.nn.softplus(raw - floor)


def gaussian_head(params: list, x: jax.Array, activation: str = "tanh") -> tuple[jax.Array, jax.Array]:
    """A regression network's predictive N(mean, exp(log_var)): its two outputs, the second through
    `floored_log_var`. Returns (mean, log_var), each of shape x.shape[:-1]."""
    out = mlp_apply(params, x, activation)
    if out.shape[-1] != 2:
        raise ValueError(f"a Gaussian head needs an MLP with 2 outputs (mean, log variance); this one has {out.shape[-1]}")
    return out[..., 0], floored_log_var(out[..., 1])
