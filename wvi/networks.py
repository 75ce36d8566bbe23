"""Neural networks as pure functions of parameter pytrees (Parts IV and V).

An MLP's parameters are a list of layers `{"w": (fan_in, fan_out), "b": (fan_out,)}`; `mlp_apply` maps inputs
(..., fan_in) to outputs (..., fan_out) with the activation between layers and none after the last. An ensemble is
the same pytree with a leading member axis on every leaf: `jax.vmap(lambda k: mlp_init(k, sizes))(keys)`.

ResNet20 (`resnet20_init`, `resnet20_apply`) takes images (N, H, W, C) and uses Filter Response Normalisation with
a TLU, or LayerNorm with ReLU, instead of BatchNorm (no batch statistics, so the likelihood factorises).

Regression heads (Part IV): `gaussian_head` gives a mean and a floored log variance per input, `gaussian_nll` the
per-point loss, `mixture_metrics` an ensemble's test NLL and RMSE. `apply_in_chunks` evaluates a network on many
inputs a chunk at a time. Bayesian inference over these parameters lives in `wvi.bnn`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wvi._checks import check_choice

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}


def _check_sizes(sizes):
    if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
        raise ValueError(f"sizes must list at least two positive layer widths (input, ..., output); got {list(sizes)!r}")


def mlp_prior_std(sizes: Sequence[int], weight_scale: float = 1.0, bias_std: float = 1.0) -> list:
    """Per-leaf prior (and initialisation) standard deviations: w ~ N(0, weight_scale²/fan_in), b ~ N(0, bias_std²).
    A pytree shaped like one MLP, usable as `prior_std` in `wvi.ensembles.ensemble`."""
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
    hidden = mlp_hidden(params, x, activation)
    return (hidden[-1] if hidden else x) @ params[-1]["w"] + params[-1]["b"]


def mlp_hidden(params: list, x: jax.Array, activation: str = "tanh") -> list:
    """The hidden layers' activations h_l = σ(W_l h_{l−1} + b_l), h_0 = x, of `mlp_apply`'s network: a list of
    (..., width_l) arrays, one per hidden layer (the output layer's logits are not included). Used for the
    variance of activations along a path (`wvi.barrier.activation_variance_curve`, Part V)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(map(repr, ACTIVATIONS))}")
    act: Callable = ACTIVATIONS[activation]
    fan_in = params[0]["w"].shape[0]
    if jnp.shape(x)[-1] != fan_in:
        raise ValueError(f"x must have {fan_in} features in its last axis; got shape {jnp.shape(x)}")
    hidden = []
    for layer in params[:-1]:
        x = act(x @ layer["w"] + layer["b"])
        hidden.append(x)
    return hidden


def gaussian_nll(mean, log_var, y) -> jax.Array:
    """−log N(y; mean, exp(log_var)) elementwise: ½[log 2π + log_var + (y − mean)² e^{−log_var}]."""
    return 0.5 * (jnp.log(2 * jnp.pi) + log_var + (y - mean) ** 2 * jnp.exp(-log_var))


def mixture_metrics(means, log_vars, y, y_scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """Test metrics of an ensemble's predictive, the equal mixture of its members' Gaussians N(mean_s, exp(log_var_s)):
    (mean negative log likelihood, RMSE of the mixture mean), for means and log_vars of shape (S, N) and y (N,).
    With standardised targets, `y_scale` (the training std) returns both in the original units."""
    means, log_vars, y = jnp.asarray(means), jnp.asarray(log_vars), jnp.asarray(y)
    if means.ndim != 2 or means.shape != log_vars.shape or means.shape[1:] != y.shape:
        raise ValueError(f"means and log_vars must be (S, N) and y (N,); got {means.shape}, {log_vars.shape}, {y.shape}")
    log_lik = jax.scipy.special.logsumexp(-gaussian_nll(means, log_vars, y), axis=0) - jnp.log(means.shape[0])
    nll = -jnp.mean(log_lik) + jnp.log(y_scale)
    rmse = jnp.sqrt(jnp.mean((means.mean(0) - y) ** 2)) * y_scale
    return nll, rmse


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


# ----------------------------------------------------------------------------------------------------------------
# MLP classifiers and ResNet20 (Part V)

def mlp_he_init(key, sizes: Sequence[int]) -> list:
    """He initialisation for ReLU MLPs: w ~ N(0, 2/fan_in), b = 0 (the usual start for SGD and for VI means)."""
    _check_sizes(sizes)
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jnp.sqrt(2.0 / m) * jax.random.normal(k, (m, n)), "b": jnp.zeros(n)}
            for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


NORMS = ("frn", "layernorm")


def _norm_init(channels: int, norm: str, with_tau: bool = True) -> dict:
    p = {"scale": jnp.ones(channels), "bias": jnp.zeros(channels)}
    if norm == "frn" and with_tau:
        p["tau"] = jnp.zeros(channels)
    return p


def frn(x, scale, bias, eps: float = 1e-6):
    """Filter Response Normalisation (Singh & Krishnan 2020): ν² = mean over H, W of x²; γ x / √(ν² + ε) + β.
    Per example and per channel, so permuting channels commutes with it."""
    nu2 = jnp.mean(jnp.square(x), axis=(-3, -2), keepdims=True)
    return scale * x * jax.lax.rsqrt(nu2 + eps) + bias


def layer_norm(x, scale, bias, eps: float = 1e-5):
    """LayerNorm over (H, W, C) of each example with a per-channel scale and bias."""
    mean = jnp.mean(x, axis=(-3, -2, -1), keepdims=True)
    var = jnp.var(x, axis=(-3, -2, -1), keepdims=True)
    return scale * (x - mean) * jax.lax.rsqrt(var + eps) + bias


def _conv(x, w, stride: int = 1):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _he_conv(key, k: int, c_in: int, c_out: int):
    return jnp.sqrt(2.0 / (k * k * c_in)) * jax.random.normal(key, (k, k, c_in, c_out))


def resnet20_init(key, num_classes: int = 10, in_channels: int = 3, width: int = 1, norm: str = "frn") -> dict:
    """ResNet20 (He et al. 2016; the paper's Table 3): a 3×3 stem with 16·width channels, three groups of three basic
    blocks with 16, 32, 64 (× width) channels, strides 1, 2, 2, a projection shortcut (1×1 strided conv + norm)
    where the shape changes, global average pooling and a dense head. Convolutions have no bias (the norm's β is it).
    He-normal initialisation; FRN scale 1, bias 0, τ 0."""
    check_choice(norm, NORMS, "norm")
    if not (isinstance(width, (int, np.integer)) and width >= 1):
        raise ValueError(f"width must be a positive integer multiplier; got {width!r}")
    keys = iter(jax.random.split(key, 64))
    widths = [16 * width, 32 * width, 64 * width]
    params = {"stem": {"conv": _he_conv(next(keys), 3, in_channels, widths[0]), "norm": _norm_init(widths[0], norm)}}
    blocks, c_in = [], widths[0]
    for g, c in enumerate(widths):
        for b in range(3):
            block = {"conv1": _he_conv(next(keys), 3, c_in, c), "norm1": _norm_init(c, norm),
                     "conv2": _he_conv(next(keys), 3, c, c), "norm2": _norm_init(c, norm)}
            if c_in != c:
                block["shortcut"] = {"conv": _he_conv(next(keys), 1, c_in, c), "norm": _norm_init(c, norm, with_tau=False)}
            blocks.append(block)
            c_in = c
    params["blocks"] = blocks
    params["head"] = {"w": jax.random.normal(next(keys), (c_in, num_classes)) / jnp.sqrt(c_in), "b": jnp.zeros(num_classes)}
    return params


def resnet20_norm(params: dict) -> str:
    """"frn" or "layernorm", read from the parameters (FRN layers carry a TLU threshold τ)."""
    return "frn" if "tau" in params["stem"]["norm"] else "layernorm"


def resnet20_apply(params: dict, x: jax.Array) -> jax.Array:
    """Logits (N, classes) of images x (N, H, W, C). With FRN the activation is the TLU max(y, τ); with LayerNorm,
    ReLU. In each block: z = act(norm2(conv2(act(norm1(conv1(x))))) + shortcut(x)), the last activation using norm2's τ."""
    norm = resnet20_norm(params)
    stem = params["stem"]
    c_in = stem["conv"].shape[2]
    if jnp.ndim(x) != 4 or jnp.shape(x)[-1] != c_in:
        raise ValueError(f"x must be images (N, H, W, {c_in}); got shape {jnp.shape(x)}")
    normalise = frn if norm == "frn" else layer_norm

    def act(y, p):
        return jnp.maximum(y, p["tau"]) if norm == "frn" else jax.nn.relu(y)

    def norm_layer(y, p):
        return normalise(y, p["scale"], p["bias"])

    h = act(norm_layer(_conv(x, stem["conv"]), stem["norm"]), stem["norm"])
    for block in params["blocks"]:
        stride = 2 if "shortcut" in block and block["conv1"].shape[2] != block["conv1"].shape[3] else 1
        y = act(norm_layer(_conv(h, block["conv1"], stride), block["norm1"]), block["norm1"])
        y = norm_layer(_conv(y, block["conv2"]), block["norm2"])
        if "shortcut" in block:
            short = norm_layer(_conv(h, block["shortcut"]["conv"], stride), block["shortcut"]["norm"])
        else:
            short = h
        h = act(y + short, block["norm2"])
    pooled = jnp.mean(h, axis=(1, 2))
    return pooled @ params["head"]["w"] + params["head"]["b"]


def num_params(params) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


DATA_CHUNK = 5_000
"""The default `chunk` of `apply_in_chunks` and the predictive functions (an argument: changing this constant after
import changes nothing). Points a network is applied to at once when evaluating predictive densities: memory grows with batch × chunk
(a ResNet20 ×1's first-stage activations for 16 samples × 5,000 CIFAR-10 images take 5.2 GB in float32). Networks
without batch statistics (all of this book's) give each point's output independently of the chunking."""


def apply_in_chunks(apply_fn: Callable, params, x, chunk: int = DATA_CHUNK) -> jax.Array:
    """apply_fn(params, x) evaluated `chunk` points at a time (the last chunk zero-padded, its padding dropped)."""
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer; got {chunk!r}")
    n = x.shape[0]
    if n <= chunk:
        return apply_fn(params, x)
    pad = -n % chunk
    xs = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]).reshape((-1, chunk) + x.shape[1:])
    outs = jax.lax.map(lambda xb: apply_fn(params, xb), xs)
    return outs.reshape((-1,) + outs.shape[2:])[:n]
