"""Bayesian neural networks: mean-field Gaussian posteriors over network parameters, and their training (Part V).

A mean-field Gaussian over any parameter pytree of `wvi.networks` is a `MeanField(mean, log_std)` of two pytrees of
the same structure. `meanfield_vi` fits it by maximising the (tempered) ELBO with any optax optimiser (the paper:
SGD with momentum), `map_estimation` finds the MAP; `wvi.algorithm.run` runs either, replicas side by side under
vmap (`num_replicas`); `predictive_log_density` and `predictive_log_probs` evaluate the posterior predictive with
S samples. The prior is N(0, α² I) throughout (`log_prior`, `expected_log_prior`, `kl_to_prior`). Chapter: Part V,
"Permutation symmetries of VI solutions".
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import algorithm
from wvi._checks import check_choice, check_finite, is_concrete
from wvi.networks import DATA_CHUNK, apply_in_chunks

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


def log_prior(params, prior_std: float) -> jax.Array:
    """log N(θ; 0, α² I) = Σ_i [−½ log(2πα²) − θ_i²/(2α²)] of a parameter pytree θ, the normaliser included."""
    leaves = jax.tree_util.tree_leaves(params)
    size = sum(np.size(a) for a in leaves)
    return -sum(jnp.sum(a ** 2) for a in leaves) / (2 * prior_std ** 2) - 0.5 * size * jnp.log(2 * jnp.pi * prior_std ** 2)


def expected_log_prior(q: MeanField, prior_std: float) -> jax.Array:
    """E_q log N(θ; 0, α² I) = Σ_i [−½ log(2πα²) − (m_i² + s_i²)/(2α²)], exact."""
    a2 = prior_std ** 2
    return sum(jnp.sum(-0.5 * jnp.log(2 * jnp.pi * a2) - (m ** 2 + jnp.exp(2 * ls)) / (2 * a2))
               for m, ls in zip(jax.tree_util.tree_leaves(q.mean), jax.tree_util.tree_leaves(q.log_std)))


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


def _check_optimizer(optimizer):
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise ValueError("optimizer must be an optax GradientTransformation (e.g. optax.sgd(0.1, momentum=0.9)); "
                         f"got {type(optimizer).__name__}")
    return optimizer


def _optax_algorithm(loss_fn: Callable, optimizer, state_type) -> algorithm.Algorithm:
    """init(x) -> state_type(x, opt_state, 0); step: one optax update of x on `loss_fn(x, key) -> (loss, mean_ll)`."""
    def init(x):
        return state_type(x, optimizer.init(x), jnp.array(0))

    def step(key, state):
        (loss, mean_ll), grads = jax.value_and_grad(loss_fn, has_aux=True)(state[0], key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state[0])
        return state_type(optax.apply_updates(state[0], updates), opt_state, state.step + 1), TrainInfo(loss, mean_ll)

    return algorithm.Algorithm(init, step)


def meanfield_vi(apply_fn: Callable, x, y, *, prior_std: float, batch_size: int,
                 optimizer: optax.GradientTransformation, temperature: float = 1.0, likelihood: str = "categorical",
                 noise_std: float = 1.0, num_samples: int = 1) -> algorithm.Algorithm:
    """Mean-field VI for a BNN with prior N(0, α² I), in the `init(q) / step(key, state)` shape.

    Each step draws a minibatch of M = `batch_size` points without replacement and `num_samples` reparameterised
    draws θ ~ q, and takes a step of `optimizer` (the paper's: `optax.sgd(η, momentum=0.9)`) on the negative
    tempered ELBO per data point,

        loss(q) = −[ (N/M) Σ_batch E_q log p(y | x, θ) + E_q log p(θ) + T·H[q] ] / N,

    the ELBO of the tempered posterior p_T ∝ (p(Y|θ)p(θ))^{1/T} multiplied by T (T = 1: the usual ELBO;
    T < 1: cold). E_q log p(θ) and H[q] are exact. `init(q: MeanField) -> VIState`; `info` (`TrainInfo`) holds
    the loss and the batch's mean log likelihood.
    """
    x, y, n = _check_training_args(x, y, likelihood, batch_size, prior_std=prior_std, temperature=temperature,
                                   noise_std=noise_std)
    optimizer = _check_optimizer(optimizer)

    def loss_fn(q, key):
        k_batch, k_theta = jax.random.split(key)
        idx = jax.random.permutation(k_batch, n)[:batch_size]
        xb, yb = x[idx], y[idx]

        def one(k):
            theta = meanfield_sample(k, q)
            return jnp.mean(log_likelihood(apply_fn(theta, xb), yb, likelihood, noise_std))

        mean_ll = jnp.mean(jax.vmap(one)(jax.random.split(k_theta, num_samples)))
        objective = n * mean_ll + expected_log_prior(q, prior_std) + temperature * entropy(q)
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
    return jnp.sum(log_likelihood(apply_fn(params, x), y, likelihood, noise_std)) + log_prior(params, prior_std)


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


def map_estimation(apply_fn: Callable, x, y, *, prior_std: float, batch_size: int,
                   optimizer: optax.GradientTransformation, likelihood: str = "categorical",
                   noise_std: float = 1.0) -> algorithm.Algorithm:
    """MAP estimation (the "SGD solutions" the paper compares VI with): steps of `optimizer` (the paper's: SGD with
    momentum) on −[(N/M) Σ_batch log p(y | x, θ) + log p(θ)] / N, the prior N(0, α² I) acting as weight decay
    1/(α² N). `init(params) -> MAPState`; `info` is a `TrainInfo`."""
    x, y, n = _check_training_args(x, y, likelihood, batch_size, prior_std=prior_std, noise_std=noise_std)
    optimizer = _check_optimizer(optimizer)

    def loss_fn(params, key):
        idx = jax.random.permutation(key, n)[:batch_size]
        mean_ll = jnp.mean(log_likelihood(apply_fn(params, x[idx]), y[idx], likelihood, noise_std))
        return -(n * mean_ll + log_prior(params, prior_std)) / n, mean_ll

    return _optax_algorithm(loss_fn, optimizer, MAPState)


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
