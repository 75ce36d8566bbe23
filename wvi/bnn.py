"""Bayesian neural networks: mean-field Gaussian posteriors over network parameters, and their training (Part V).

A mean-field Gaussian over any parameter pytree of `wvi.networks` is a `wvi.gaussian.MeanField(mean, std)` of two
pytrees of the same structure (the one diagonal Gaussian type of `wvi`; build it with `wvi.gaussian.meanfield`).
`meanfield_vi` fits it by maximising the (tempered) ELBO with any optax optimiser (the paper:
SGD with momentum), `map_estimation` finds the MAP; `wvi.algorithm.run` runs either, replicas side by side under
vmap (`num_replicas`); `predictive_log_density` and `predictive_log_probs` evaluate the posterior predictive with
S samples. The prior is N(0, α² I) throughout (`log_prior`, `expected_log_prior`, `kl_to_prior`). Chapter: Part V,
"Permutation symmetries of VI solutions".
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import algorithm
from wvi import gaussian as G
from wvi._checks import check_choice, is_concrete
from wvi.networks import DATA_CHUNK, apply_in_chunks

def log_prior(params, prior_std: float) -> jax.Array:
    """log N(θ; 0, α² I) = Σ_i [−½ log(2πα²) − θ_i²/(2α²)] of a parameter pytree θ, the normaliser included."""
    leaves = jax.tree_util.tree_leaves(params)
    size = sum(np.size(a) for a in leaves)
    return -sum(jnp.sum(a ** 2) for a in leaves) / (2 * prior_std ** 2) - 0.5 * size * jnp.log(2 * jnp.pi * prior_std ** 2)


def _expected_log_prior(mean, log_std, prior_std: float) -> jax.Array:
    a2 = prior_std ** 2
    return sum(jnp.sum(-0.5 * jnp.log(2 * jnp.pi * a2) - (m ** 2 + jnp.exp(2 * ls)) / (2 * a2))
               for m, ls in zip(jax.tree_util.tree_leaves(mean), jax.tree_util.tree_leaves(log_std)))


def expected_log_prior(q: G.MeanField, prior_std: float) -> jax.Array:
    """E_q log N(θ; 0, α² I) = Σ_i [−½ log(2πα²) − (m_i² + s_i²)/(2α²)], exact."""
    return _expected_log_prior(q.mean, jax.tree_util.tree_map(jnp.log, q.std), prior_std)


def kl_to_prior(q: G.MeanField, prior_std: float) -> jax.Array:
    """KL(q ‖ N(0, α² I)) = Σ_i [log(α/s_i) + (s_i² + m_i²)/(2α²) − ½] = −E_q log p(θ) − H[q]."""
    return -expected_log_prior(q, prior_std) - G.entropy(q)


def _entropy(log_std) -> jax.Array:
    """H[q] = Σ_i [log s_i + ½ log(2πe)] from the log standard deviations (`wvi.gaussian.entropy` from q)."""
    return sum(jnp.sum(ls + 0.5 * jnp.log(2 * jnp.pi * jnp.e)) for ls in jax.tree_util.tree_leaves(log_std))


def _draw(key, q: G.MeanField):
    """One reparameterised draw θ = mean + std ⊙ ε: `wvi.gaussian.sample(key, q, 1)` without its leading axis
    (the predictive functions draw one θ per key, so that one network's outputs are in memory at a time)."""
    return jax.tree_util.tree_map(lambda a: a[0], G.sample(key, q, 1))


LIKELIHOODS = ("categorical", "gaussian")


def log_likelihood(outputs, y, likelihood: str = "categorical", noise_std: float = 1.0) -> jax.Array:
    """Per-point log p(y | outputs): log softmax(outputs)[y] for "categorical" (outputs (..., classes), y integer
    labels), log N(y; outputs[..., 0], noise_std²) for "gaussian"."""
    if likelihood == "categorical":
        return jnp.take_along_axis(jax.nn.log_softmax(outputs), jnp.asarray(y)[..., None], axis=-1)[..., 0]
    return -0.5 * (jnp.log(2 * jnp.pi * noise_std ** 2) + (y - outputs[..., 0]) ** 2 / noise_std ** 2)


class VIState(NamedTuple):
    """The mean-field VI state: q's means and log standard deviations (the optimiser's coordinates, in which every
    step keeps the stds positive), the optimiser's state and the number of steps taken."""

    mean: Any
    log_std: Any
    opt_state: Any
    step: jax.Array

    @property
    def approximation(self) -> G.MeanField:
        """q = MeanField(mean, exp(log_std)), the mean-field Gaussian over the network's parameters."""
        return G.MeanField(self.mean, jax.tree_util.tree_map(jnp.exp, self.log_std))

    def sample(self, key, num_samples: int):
        """Parameter draws θ ~ q (a pytree, leading axis num_samples)."""
        return G.sample(key, self.approximation, num_samples)


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
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar; got an array of shape {np.shape(value)}")
        if is_concrete(value) and not (np.isfinite(value) and value > 0):  # a traced value is checked by its caller
            raise ValueError(f"{name} must be positive and finite; got {value!r}")
    return x, y, n


def _check_augment(augment):
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be None or a function augment(key, xb) -> xb; got {type(augment).__name__}")


def _augmented(augment, key, xb):
    """`augment(key', xb)` with a key of its own derived from the step's key (so that the minibatch and the draws
    are the same as without augmentation), or xb when augment is None."""
    return xb if augment is None else augment(jax.random.fold_in(key, 7), xb)


def _check_optimizer(optimizer):
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise ValueError("optimizer must be an optax GradientTransformation (e.g. optax.sgd(0.1, momentum=0.9)); "
                         f"got {type(optimizer).__name__}")
    return optimizer


def _optax_step(loss_fn: Callable, optimizer):
    """One optax update of the variables x on `loss_fn(x, key) -> (loss, mean_ll)`: (x, opt_state, info)."""
    def update(key, x, opt_state):
        (loss, mean_ll), grads = jax.value_and_grad(loss_fn, has_aux=True)(x, key)
        updates, opt_state = optimizer.update(grads, opt_state, x)
        return optax.apply_updates(x, updates), opt_state, TrainInfo(loss, mean_ll)

    return update


def meanfield_vi(apply_fn: Callable, x, y, *, prior_std: float, batch_size: int,
                 optimizer: optax.GradientTransformation, temperature: float = 1.0, likelihood: str = "categorical",
                 noise_std: float = 1.0, num_samples: int = 1,
                 augment: Optional[Callable] = None) -> algorithm.Algorithm:
    """Mean-field VI for a BNN with prior N(0, α² I), in the `init(q) / step(key, state)` shape.

    Each step draws a minibatch of M = `batch_size` points without replacement and `num_samples` reparameterised
    draws θ ~ q, and takes a step of `optimizer` (the paper's: `optax.sgd(η, momentum=0.9)`) on the negative
    tempered ELBO per data point, ::

        loss(q) = −[ (N/M) Σ_batch E_q log p(y | x, θ) + E_q log p(θ) + T·H[q] ] / N,

    the ELBO of the tempered posterior p_T ∝ (p(Y|θ)p(θ))^{1/T} multiplied by T (T = 1: the usual ELBO;
    T < 1: cold). E_q log p(θ) and H[q] are exact. `init(q: G.MeanField) -> VIState`; `info` (`TrainInfo`) holds
    the loss and the batch's mean log likelihood. `augment(key, xb) -> xb` (e.g. `wvi.data.random_shifts`), if
    given, transforms each minibatch's inputs with a key of its own (data augmentation; Rossi et al., Fig. 12).

    `prior_std`, `temperature` and `noise_std` may be traced scalars: a trainer built inside `jax.vmap` over an
    array of them trains one replica per setting in one compiled program (a temperature or prior sweep), and
    `jax.grad` differentiates the loss with respect to them (their positivity is then the caller's to ensure).
    """
    x, y, n = _check_training_args(x, y, likelihood, batch_size, prior_std=prior_std, temperature=temperature,
                                   noise_std=noise_std)
    optimizer = _check_optimizer(optimizer)
    _check_augment(augment)

    def loss_fn(variables, key):
        mean, log_std = variables
        k_batch, k_theta = jax.random.split(key)
        idx = jax.random.permutation(k_batch, n)[:batch_size]
        xb, yb = _augmented(augment, key, x[idx]), y[idx]
        q = G.MeanField(mean, jax.tree_util.tree_map(jnp.exp, log_std))

        def one(k):
            return jnp.mean(log_likelihood(apply_fn(_draw(k, q), xb), yb, likelihood, noise_std))

        mean_ll = jnp.mean(jax.vmap(one)(jax.random.split(k_theta, num_samples)))
        objective = n * mean_ll + _expected_log_prior(mean, log_std, prior_std) + temperature * _entropy(log_std)
        return -objective / n, mean_ll

    update = _optax_step(loss_fn, optimizer)

    def init(q0: G.MeanField) -> VIState:
        G.check(q0, "q0")
        variables = (q0.mean, jax.tree_util.tree_map(jnp.log, q0.std))
        return VIState(*variables, optimizer.init(variables), jnp.array(0))

    def step(key, state: VIState):
        (mean, log_std), opt_state, info = update(key, (state.mean, state.log_std), state.opt_state)
        return VIState(mean, log_std, opt_state, state.step + 1), info

    return algorithm.Algorithm(init, step)


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
    def approximation(self) -> G.MeanField:
        """The point mass at the parameters (`wvi.gaussian.point_mass`: a MeanField with std 0)."""
        return G.point_mass(self.params)

    def sample(self, key, num_samples: int):
        """num_samples copies of the parameters (a pytree, leading axis num_samples)."""
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_samples,) + jnp.shape(x)), self.params)


def map_estimation(apply_fn: Callable, x, y, *, prior_std: float, batch_size: int,
                   optimizer: optax.GradientTransformation, likelihood: str = "categorical",
                   noise_std: float = 1.0, augment: Optional[Callable] = None) -> algorithm.Algorithm:
    """MAP estimation (the "SGD solutions" the paper compares VI with): steps of `optimizer` (the paper's: SGD with
    momentum) on −[(N/M) Σ_batch log p(y | x, θ) + log p(θ)] / N, the prior N(0, α² I) acting as weight decay
    1/(α² N). `init(params) -> MAPState`; `info` is a `TrainInfo`. `augment`, and traced `prior_std` and
    `noise_std`, as in `meanfield_vi`."""
    x, y, n = _check_training_args(x, y, likelihood, batch_size, prior_std=prior_std, noise_std=noise_std)
    optimizer = _check_optimizer(optimizer)
    _check_augment(augment)

    def loss_fn(params, key):
        idx = jax.random.permutation(key, n)[:batch_size]
        xb = _augmented(augment, key, x[idx])
        mean_ll = jnp.mean(log_likelihood(apply_fn(params, xb), y[idx], likelihood, noise_std))
        return -(n * mean_ll + log_prior(params, prior_std)) / n, mean_ll

    update = _optax_step(loss_fn, optimizer)

    def init(params) -> MAPState:
        return MAPState(params, optimizer.init(params), jnp.array(0))

    def step(key, state: MAPState):
        params, opt_state, info = update(key, state.params, state.opt_state)
        return MAPState(params, opt_state, state.step + 1), info

    return algorithm.Algorithm(init, step)


def train_replicas(key_init, key_train, trainer: algorithm.Algorithm, init_fn: Callable, num_steps: int, *,
                   num_replicas: int = 2, std_init: float | None = None, **run_options):
    """`num_replicas` independent solutions trained side by side (Part V's replica pairs).

    Replica r starts from `init_fn(k_r)`, k_r the r-th key of `jax.random.split(key_init, num_replicas)` (as a
    `wvi.gaussian.meanfield` with standard deviation `std_init` when given: the VI start), and all are stepped
    together by `wvi.algorithm.run` with `key_train` (minibatches and samples; `run_options` such as `chunk`,
    `loop`, `name`, `replicas` are passed on).

    Returns:
      The replicas' final approximations as a tuple (MeanFields; point masses for MAP), and the losses, an
      array (num_steps, num_replicas).
    """
    def start(k):
        params = init_fn(k)
        return params if std_init is None else G.meanfield(params, std_init)

    starts = jax.vmap(start)(jax.random.split(key_init, num_replicas))
    state, losses = algorithm.run(key_train, trainer, jax.vmap(trainer.init)(starts), num_steps, algorithm.trace_loss,
                                  num_replicas=num_replicas, **run_options)
    return tuple(algorithm.replica(state.approximation, r) for r in range(num_replicas)), losses


def _sample_outputs(key, q: G.MeanField, apply_fn, x, num_samples: int, batch: int, chunk: int):
    def one(k):
        return apply_in_chunks(apply_fn, _draw(k, q), x, chunk)

    return jax.lax.map(one, jax.random.split(key, num_samples), batch_size=min(batch, num_samples))


@partial(jax.jit, static_argnames=("apply_fn", "num_samples", "batch", "chunk"))
def predictive_log_probs(key, q: G.MeanField, apply_fn: Callable, x, num_samples: int = 128, batch: int = 16,
                         chunk: int = DATA_CHUNK) -> jax.Array:
    """log p(c | x) = log (1/S) Σ_s softmax(f(x; θ_s))_c with θ_s ~ q, for every point and class: (N, classes).
    Samples are evaluated `batch` at a time and points `chunk` at a time (memory)."""
    outs = _sample_outputs(key, q, apply_fn, x, num_samples, batch, chunk)
    return jax.scipy.special.logsumexp(jax.nn.log_softmax(outs), axis=0) - jnp.log(num_samples)


def predictive_log_density(key, q: G.MeanField, apply_fn: Callable, x, y, num_samples: int = 128,
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
