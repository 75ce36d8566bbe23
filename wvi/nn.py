"""Neural networks as pure functions of parameter pytrees (Parts IV and V), and mean-field Gaussian BNNs (Part V).

An MLP's parameters are a list of layers `{"w": (fan_in, fan_out), "b": (fan_out,)}`; `mlp_apply` maps inputs
(..., fan_in) to outputs (..., fan_out) with the activation between layers and none after the last. An ensemble is
the same pytree with a leading member axis on every leaf: `jax.vmap(lambda k: mlp_init(k, sizes))(keys)`.

ResNet20 (`resnet20_init`, `resnet20_apply`) takes images (N, H, W, C) and uses Filter Response Normalisation with
a TLU, or LayerNorm with ReLU, instead of BatchNorm (no batch statistics, so the likelihood factorises).

A mean-field Gaussian over any such parameter pytree is a `MeanField(mean, log_std)` of two pytrees of the same
structure. `vi_trainer` fits it by maximising the (tempered) ELBO with optax SGD with momentum; `train` runs it,
replicas side by side under vmap; `predictive_log_density` and `predictive_log_probs` evaluate the posterior
predictive with S samples. Chapter: Part V, "Permutation symmetries of VI solutions".
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import algorithm
from wvi._checks import check_choice, check_finite, is_concrete

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


# ----------------------------------------------------------------------------------------------------------------
# Mean-field Gaussian BNNs (Part V)

class MeanField(NamedTuple):
    """q(θ) = Π_i N(θ_i; mean_i, exp(log_std_i)²) over a parameter pytree; `mean` and `log_std` share its structure."""

    mean: Any
    log_std: Any

    @property
    def std(self):
        return jax.tree_util.tree_map(jnp.exp, self.log_std)


def meanfield(mean, std) -> MeanField:
    """A mean-field Gaussian from pytrees of means and standard deviations (a scalar std applies to every leaf).
    Raises if a std is not positive and finite or the two pytrees do not match."""
    if np.ndim(std) == 0 and not isinstance(std, (list, tuple, dict)):
        std = jax.tree_util.tree_map(lambda m: jnp.full(jnp.shape(m), std, jnp.result_type(m)), mean)
    if jax.tree_util.tree_structure(mean) != jax.tree_util.tree_structure(std):
        raise ValueError("mean and std must be pytrees of the same structure")
    for (path, m), s in zip(jax.tree_util.tree_flatten_with_path(mean)[0], jax.tree_util.tree_leaves(std)):
        where = jax.tree_util.keystr(path)
        if jnp.shape(m) != jnp.shape(s):
            raise ValueError(f"std{where} has shape {jnp.shape(s)}; expected {jnp.shape(m)}, the shape of mean{where}")
        if is_concrete(s) and not (np.all(np.asarray(s) > 0) and np.all(np.isfinite(np.asarray(s)))):
            raise ValueError(f"std{where} must be positive and finite everywhere")
        check_finite(m, f"mean{where}")
    return MeanField(mean, jax.tree_util.tree_map(lambda s: jnp.log(jnp.asarray(s, jnp.result_type(float))), std))


def meanfield_sample(key, q: MeanField):
    """One draw θ = mean + std ⊙ ε, ε ~ N(0, I) (reparameterised). ε is one normal vector cut into the leaves'
    shapes: one random-number call however many leaves (much faster to compile than one call per leaf)."""
    leaves, tree = jax.tree_util.tree_flatten(q.mean)
    sizes = [int(np.size(m)) for m in leaves]
    flat = jax.random.normal(key, (sum(sizes),), jnp.result_type(*leaves))
    pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
    eps = [e.reshape(jnp.shape(m)) for e, m in zip(pieces, leaves)]
    return jax.tree_util.tree_map(lambda m, ls, e: m + jnp.exp(ls) * e, q.mean, q.log_std, jax.tree_util.tree_unflatten(tree, eps))


def kl_to_prior(q: MeanField, prior_std: float) -> jax.Array:
    """KL(q ‖ N(0, α² I)) = Σ_i [log(α/s_i) + (s_i² + m_i²)/(2α²) − ½]."""
    a2 = prior_std ** 2
    terms = jax.tree_util.tree_map(lambda m, ls: jnp.sum(jnp.log(prior_std) - ls + (jnp.exp(2 * ls) + m ** 2) / (2 * a2) - 0.5),
                                   q.mean, q.log_std)
    return sum(jax.tree_util.tree_leaves(terms))


def entropy(q: MeanField) -> jax.Array:
    """H[q] = Σ_i [log s_i + ½ log(2πe)]."""
    return sum(jnp.sum(ls + 0.5 * jnp.log(2 * jnp.pi * jnp.e)) for ls in jax.tree_util.tree_leaves(q.log_std))


LIKELIHOODS = ("categorical", "gaussian")


def log_likelihood(outputs, y, likelihood: str = "categorical", noise_std: float = 1.0) -> jax.Array:
    """Per-point log p(y | outputs): log softmax(outputs)[y] for "categorical" (outputs (..., classes), y integer
    labels), log N(y; outputs[..., 0], noise_std²) for "gaussian"."""
    if likelihood == "categorical":
        return jnp.take_along_axis(jax.nn.log_softmax(outputs), jnp.asarray(y)[..., None], axis=-1)[..., 0]
    return -0.5 * (jnp.log(2 * jnp.pi * noise_std ** 2) + (y - outputs[..., 0]) ** 2 / noise_std ** 2)


class VIState(NamedTuple):
    q: MeanField
    opt_state: Any
    step: jax.Array

    @property
    def approximation(self) -> MeanField:
        """q, the mean-field Gaussian over the network's parameters."""
        return self.q

    def sample(self, key, num_samples: int):
        """Parameter draws θ ~ q (a pytree, leading axis num_samples)."""
        return jax.vmap(lambda k: meanfield_sample(k, self.q))(jax.random.split(key, num_samples))


class TrainInfo(NamedTuple):
    loss: jax.Array  # the minibatch objective descended: the negative tempered ELBO (VI) or log joint (MAP), per point
    log_lik: jax.Array  # mean log likelihood of the minibatch


def _check_training_args(x, y, likelihood, batch_size, **positive):
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    x, y = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x and y must hold the same number of points; got {x.shape[0]} and {y.shape[0]}")
    if not (isinstance(batch_size, (int, np.integer)) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer in [1, {n}] (the number of training points); got {batch_size!r}")
    for name, value in positive.items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite; got {value!r}")
    return x, y, n


def _optimizer(learning_rate, momentum, optimizer):
    if optimizer is not None:
        if learning_rate is not None:
            raise ValueError("give either learning_rate (for SGD with momentum) or optimizer, not both")
        return optimizer
    if learning_rate is None:
        raise ValueError("learning_rate is required (or pass an optax optimizer as optimizer)")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be positive and finite; got {learning_rate!r}")
    return optax.sgd(learning_rate, momentum=momentum)


def _optax_algorithm(loss_fn: Callable, optimizer, state_type) -> algorithm.Algorithm:
    """init(x) -> state_type(x, opt_state, 0); step: one optax update of x on `loss_fn(x, key) -> (loss, mean_ll)`."""
    def init(x):
        return state_type(x, optimizer.init(x), jnp.array(0))

    def step(key, state):
        (loss, mean_ll), grads = jax.value_and_grad(loss_fn, has_aux=True)(state[0], key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state[0])
        return state_type(optax.apply_updates(state[0], updates), opt_state, state.step + 1), TrainInfo(loss, mean_ll)

    return algorithm.Algorithm(init, step)


def vi_trainer(apply_fn: Callable, x, y, *, prior_std: float, batch_size: int, learning_rate: Optional[float] = None,
               momentum: float = 0.9, temperature: float = 1.0, likelihood: str = "categorical",
               noise_std: float = 1.0, num_samples: int = 1,
               optimizer: Optional[optax.GradientTransformation] = None) -> algorithm.Algorithm:
    """Mean-field VI for a BNN with prior N(0, α² I), in the `init(q) / step(key, state)` shape.

    Each step draws a minibatch of M = `batch_size` points without replacement and `num_samples` reparameterised
    draws θ ~ q, and takes an optax SGD-with-momentum step on the negative tempered ELBO per data point,

        loss(q) = −[ (N/M) Σ_batch E_q log p(y | x, θ) + E_q log p(θ) + T·H[q] ] / N,

    the ELBO of the tempered posterior p_T ∝ (p(Y|θ)p(θ))^{1/T} multiplied by T (T = 1: the usual ELBO;
    T < 1: cold). E_q log p(θ) and H[q] are exact. `info` holds the loss and the batch's mean log likelihood.
    `optimizer` replaces SGD with momentum by any optax optimiser (then omit `learning_rate`).
    """
    x, y, n = _check_training_args(x, y, likelihood, batch_size, prior_std=prior_std, temperature=temperature,
                                   noise_std=noise_std)
    optimizer = _optimizer(learning_rate, momentum, optimizer)
    a2 = prior_std ** 2

    def loss_fn(q, key):
        k_batch, k_theta = jax.random.split(key)
        idx = jax.random.permutation(k_batch, n)[:batch_size]
        xb, yb = x[idx], y[idx]

        def one(k):
            theta = meanfield_sample(k, q)
            return jnp.mean(log_likelihood(apply_fn(theta, xb), yb, likelihood, noise_std))

        mean_ll = jnp.mean(jax.vmap(one)(jax.random.split(k_theta, num_samples)))
        e_log_prior = sum(jnp.sum(-0.5 * jnp.log(2 * jnp.pi * a2) - (m ** 2 + jnp.exp(2 * ls)) / (2 * a2))
                          for m, ls in zip(jax.tree_util.tree_leaves(q.mean), jax.tree_util.tree_leaves(q.log_std)))
        objective = n * mean_ll + e_log_prior + temperature * entropy(q)
        return -objective / n, mean_ll

    return _optax_algorithm(loss_fn, optimizer, VIState)


def point_mass(params) -> MeanField:
    """The point mass at `params` as a degenerate MeanField (std 0, log_std −∞): a MAP solution on the paths and
    barriers of `wvi.barrier`, where the W2 geodesic between point masses is the straight line between them."""
    return MeanField(params, jax.tree_util.tree_map(lambda m: jnp.full(jnp.shape(m), -jnp.inf, jnp.result_type(m)), params))


def log_joint(params, apply_fn: Callable, x, y, prior_std: float, likelihood: str = "categorical",
              noise_std: float = 1.0) -> jax.Array:
    """log p(Y | X, θ) + log N(θ; 0, α² I), the log joint density (the log posterior up to log p(Y | X)) of one
    parameter vector θ, the prior's normalising constant included."""
    ll = jnp.sum(log_likelihood(apply_fn(params, x), y, likelihood, noise_std))
    leaves = jax.tree_util.tree_leaves(params)
    size = sum(np.size(a) for a in leaves)
    return ll - sum(jnp.sum(a ** 2) for a in leaves) / (2 * prior_std ** 2) - 0.5 * size * jnp.log(2 * jnp.pi * prior_std ** 2)


class MAPState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array

    @property
    def approximation(self) -> MeanField:
        """The point mass at the parameters (`point_mass`)."""
        return point_mass(self.params)

    def sample(self, key, num_samples: int):
        """num_samples copies of the parameters (a pytree, leading axis num_samples)."""
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_samples,) + jnp.shape(x)), self.params)


def map_trainer(apply_fn: Callable, x, y, *, prior_std: float, batch_size: int, learning_rate: Optional[float] = None,
                momentum: float = 0.9, likelihood: str = "categorical", noise_std: float = 1.0,
                optimizer: Optional[optax.GradientTransformation] = None) -> algorithm.Algorithm:
    """MAP estimation (the "SGD solutions" the paper compares VI with): optax SGD with momentum on
    −[(N/M) Σ_batch log p(y | x, θ) + log p(θ)] / N, the prior N(0, α² I) acting as weight decay 1/(α² N)."""
    x, y, n = _check_training_args(x, y, likelihood, batch_size, prior_std=prior_std, noise_std=noise_std)
    optimizer = _optimizer(learning_rate, momentum, optimizer)

    def loss_fn(params, key):
        idx = jax.random.permutation(key, n)[:batch_size]
        mean_ll = jnp.mean(log_likelihood(apply_fn(params, x[idx]), y[idx], likelihood, noise_std))
        log_prior = -sum(jnp.sum(a ** 2) for a in jax.tree_util.tree_leaves(params)) / (2 * prior_std ** 2)
        return -(n * mean_ll + log_prior) / n, mean_ll

    return _optax_algorithm(loss_fn, optimizer, MAPState)


def replica(tree, index: int):
    """One replica out of a pytree stacked along a leading replica axis (as `train` returns them)."""
    return jax.tree_util.tree_map(lambda a: a[index], tree)


REPLICA_MODES = ("vmap", "sequential")


def train(key, trainer: algorithm.Algorithm, state, num_steps: int, num_replicas: Optional[int] = None,
          chunk: int = 250, progress: bool = False, name: str = "VI training", replicas: str = "vmap",
          loop: str = "scan"):
    """Run `trainer` for `num_steps` steps in compiled chunks of `chunk` steps, with a tqdm progress bar when
    `progress`. Returns (state, losses) with the loss after every step ((num_steps,) or (num_steps, replicas)).
    Raises `DivergenceError` naming the step. Each chunk gets its own key split from `key`: the same key and `chunk`
    give the same result, with or without the progress bar.

    With `num_replicas`, `state` carries a leading replica axis (e.g. `jax.vmap(trainer.init)(qs)`) and every step
    key is split into one key per replica. `replicas="vmap"` steps them together in one program; `"sequential"`
    trains one replica after the other with the same keys (for replicas that do not fit in memory together); the
    results agree up to floating-point rounding, which a long chaotic training run can amplify. `loop` is passed to `algorithm.run`: for convolutional networks on CPU use
    `loop="python"`, since XLA's CPU backend runs convolution gradients inside `lax.scan` several times slower than
    in a separately jitted step (`benchmarks/train_throughput.py`).
    """
    from tqdm import tqdm  # the plain bar: tqdm.auto warns in kernels without ipywidgets

    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
    check_choice(replicas, REPLICA_MODES, "replicas")
    chunk_keys = jax.random.split(key, -(-num_steps // chunk))

    def run_all(algo, state, bar, label):
        losses, done = [], 0
        for key_chunk in chunk_keys:
            todo = min(chunk, num_steps - done)
            state, loss = algorithm.run(key_chunk, algo, state, todo, trace_fn=_loss_only, name=label,
                                        steps_before=done, total_steps=num_steps, loop=loop)
            losses.append(np.asarray(loss))
            done += todo
            bar.update(todo)
        return state, np.concatenate(losses)

    if num_replicas is None:
        with tqdm(total=num_steps, desc=name, disable=not progress) as bar:
            return run_all(trainer, state, bar, name)
    if replicas == "vmap":
        with tqdm(total=num_steps, desc=name, disable=not progress) as bar:
            return run_all(algorithm.Algorithm(trainer.init, _vmapped_step(trainer.step, num_replicas)), state, bar, name)
    finals, losses = [], []
    with tqdm(total=num_steps * num_replicas, desc=name, disable=not progress) as bar:
        for r in range(num_replicas):
            algo = algorithm.Algorithm(trainer.init, _replica_step(trainer.step, num_replicas, r))
            final, loss = run_all(algo, replica(state, r), bar, f"{name} (replica {r})")
            finals.append(final)
            losses.append(loss)
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *finals), np.stack(losses, axis=1)


def _vmapped_step(step, num_replicas: int):
    """All replicas' step under vmap, one key each (one object per (step, replicas), kept on `step` by
    `algorithm.compiled`: compiled once, reused by later calls of `train`, freed with the trainer)."""
    def all_replicas(key, state):
        return jax.vmap(step)(jax.random.split(key, num_replicas), state)

    return algorithm.compiled(step, ("vmap", num_replicas), lambda: all_replicas)


def _replica_step(step, num_replicas: int, index: int):
    """Replica `index`'s step with the key it gets under vmap (one object per (step, replica), kept on `step`)."""
    def one(key, state):
        return step(jax.random.split(key, num_replicas)[index], state)

    return algorithm.compiled(step, ("replica", num_replicas, index), lambda: one)


def _loss_only(state, info):
    return info.loss


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


def _sample_outputs(key, q: MeanField, apply_fn, x, num_samples: int, batch: int, chunk: int):
    def one(k):
        return apply_in_chunks(apply_fn, meanfield_sample(k, q), x, chunk)

    return jax.lax.map(one, jax.random.split(key, num_samples), batch_size=min(batch, num_samples))


@partial(jax.jit, static_argnames=("apply_fn", "num_samples", "batch", "chunk"))
def predictive_log_probs(key, q: MeanField, apply_fn: Callable, x, num_samples: int = 128, batch: int = 16,
                         chunk: int = DATA_CHUNK) -> jax.Array:
    """log p(c | x) = log (1/S) Σ_s softmax(f(x; θ_s))_c with θ_s ~ q, for every point and class: (N, classes).
    Samples are evaluated `batch` at a time and points `chunk` at a time (memory)."""
    outs = _sample_outputs(key, q, apply_fn, x, num_samples, batch, chunk)
    return jax.scipy.special.logsumexp(jax.nn.log_softmax(outs), axis=0) - jnp.log(num_samples)


def predictive_log_density(key, q: MeanField, apply_fn: Callable, x, y, num_samples: int = 128,
                           likelihood: str = "categorical", noise_std: float = 1.0, batch: int = 16,
                           chunk: int = DATA_CHUNK) -> jax.Array:
    """Per-point log predictive density log (1/S) Σ_s p(y_n | x_n, θ_s), θ_s ~ q: shape (N,). Averaged over the
    points, it is the predictive log likelihood L(q) (nats per data point) of the barrier."""
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    return _predictive_log_density(key, q, apply_fn, x, y, num_samples, likelihood, noise_std, batch, chunk)


@partial(jax.jit, static_argnames=("apply_fn", "num_samples", "likelihood", "batch", "chunk"))
def _predictive_log_density(key, q, apply_fn, x, y, num_samples, likelihood, noise_std, batch, chunk):
    outs = _sample_outputs(key, q, apply_fn, x, num_samples, batch, chunk)
    ll = log_likelihood(outs, jnp.asarray(y)[None], likelihood, noise_std)
    return jax.scipy.special.logsumexp(ll, axis=0) - jnp.log(num_samples)


def accuracy(log_probs, y) -> jax.Array:
    """Fraction of points whose most probable class is the label."""
    return jnp.mean(jnp.argmax(log_probs, axis=-1) == jnp.asarray(y))
