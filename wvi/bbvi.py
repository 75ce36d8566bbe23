"""Black-box variational inference (BBVI) for Gaussian families, with any optax optimiser.

The objective is KL(q‖p) = E_q[log q(x) - log p(x)] + log Z for an unnormalised log density log p. With
x = m + S z, z ~ N(0, I), two unbiased gradient estimators come from the same Monte Carlo loss

    L(m, S) = (1/n) Σ_i [log q(x_i; m', S') - log p(x_i)],   x_i = m + S z_i,

  * "rep"  (reparameterisation):        (m', S') = (m, S), differentiated through;
  * "path" (path derivative / STL):     (m', S') = stop_gradient(m, S), so only the path x(m, S) is differentiated.

The path estimator's expected update of S is E[∇log p(x) zᵀ] + S⁻ᵀ, whose push-forward through π(S) = SSᵀ is the
Bures–Wasserstein velocity of KL (Part I, "The Riemannian submersion"); with SGD its iterates are the forward Euler
scheme of that flow (Part I, "ODE vs BBVI on a 2D Gaussian"). At q = p its variance is zero; rep's is not.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import gaussian as G
from wvi._checks import check_choice
from wvi.algorithm import Algorithm

ESTIMATORS = ("rep", "path")


class BBVIState(NamedTuple):
    q: G.AnyGaussian
    opt_state: optax.OptState


class BBVIInfo(NamedTuple):
    loss: jax.Array  # Monte Carlo estimate of KL(q‖p) - log Z at q before the update
    grad_norm: jax.Array  # Euclidean norm of the gradient estimate over all parameters


def check_log_density(log_density: Callable, q: G.AnyGaussian, name: str = "log_density") -> None:
    """Raise unless `log_density` maps a point of shape (d,) to a finite scalar at q's mean."""
    if not callable(log_density):
        raise ValueError(f"{name} must be a function x -> log p(x); got {type(log_density).__name__}")
    value = log_density(q.mean)
    if np.shape(value) != ():
        raise ValueError(f"{name} must return a scalar for a point of shape {np.shape(q.mean)}; got shape {np.shape(value)}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} returned {float(value)} at the mean of q; expected a finite log density there")


def kl_loss(q: G.AnyGaussian, noise, log_density: Callable, estimator: str = "path") -> jax.Array:
    """The Monte Carlo loss L above for standard-normal `noise` of shape (n, d); its gradient is the estimator."""
    check_choice(estimator, ESTIMATORS, "estimator")
    x = G.reparameterize(q, noise)
    q_density = q if estimator == "rep" else jax.lax.stop_gradient(q)
    return jnp.mean(G.log_prob(q_density, x) - jax.vmap(log_density)(x))


def kl_grad(key, q: G.AnyGaussian, log_density: Callable, num_samples: int, estimator: str = "path"):
    """(loss, gradient) of `kl_loss` with `num_samples` fresh draws; the gradient has q's pytree structure."""
    noise = jax.random.normal(key, (num_samples, G.dim(q)), dtype=jnp.result_type(q.mean))
    return jax.value_and_grad(kl_loss)(q, noise, log_density, estimator)


def gradient_variance(key, q: G.AnyGaussian, log_density: Callable, num_samples: int, estimator: str, num_repeats: int = 1000):
    """Total variance tr Cov[ĝ] of the `num_samples`-sample gradient estimator at q, from `num_repeats` draws."""
    check_choice(estimator, ESTIMATORS, "estimator")
    keys = jax.random.split(key, num_repeats)
    grads = jax.vmap(lambda k: kl_grad(k, q, log_density, num_samples, estimator)[1])(keys)
    flat = jnp.concatenate([g.reshape(num_repeats, -1) for g in jax.tree_util.tree_leaves(grads)], axis=1)
    return jnp.sum(jnp.var(flat, axis=0, ddof=1))


def build(log_density: Callable, optimizer: optax.GradientTransformation, num_samples: int, estimator: str = "path") -> Algorithm:
    """BBVI as an `Algorithm`: `init(q0) -> BBVIState`, `step(key, state) -> (BBVIState, BBVIInfo)`.

    Each step draws `num_samples` standard-normal vectors, forms the rep or path gradient of KL(q‖p), and applies
    one update of `optimizer` (plain `optax.sgd(η)` gives the Euler scheme of Part I).
    """
    check_choice(estimator, ESTIMATORS, "estimator")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
    if not callable(log_density):
        raise ValueError(f"log_density must be a function x -> log p(x); got {type(log_density).__name__}")

    def init(q0: G.AnyGaussian) -> BBVIState:
        G.check(q0, "q0")
        check_log_density(log_density, q0)
        return BBVIState(q0, optimizer.init(q0))

    def step(key, state: BBVIState):
        loss, grad = kl_grad(key, state.q, log_density, num_samples, estimator)
        updates, opt_state = optimizer.update(grad, state.opt_state, state.q)
        q = optax.apply_updates(state.q, updates)
        grad_norm = jnp.sqrt(sum(jnp.vdot(g, g) for g in jax.tree_util.tree_leaves(grad)))
        return BBVIState(q, opt_state), BBVIInfo(loss, grad_norm)

    return Algorithm(init, step)
