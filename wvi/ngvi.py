"""Natural-gradient VI (NGVI): the Bayesian learning rule for one full-covariance Gaussian (Part II).

The Fisher–Rao counterpart of BBVI's Bures–Wasserstein step, and the baseline of Part II's "Particles in parameter
space". In the precision parameterisation λ = (m, P = Σ⁻¹), the natural gradient of E_q[ℓ] − H(q), ℓ = −log p, is
given by Bonnet's and Price's theorems through g = E_q[∇ℓ] and H = E_q[∇²ℓ]::

    G = H − P,   P ← P + βG (+ β²/2 G P⁻¹ G, the safeguard),   m ← m − β P⁻¹ g,

that is P ← (1 − β)P + β E[−∇² log p], m ← m + β P⁻¹ E[∇ log p] without the safeguard. The safeguard is the
"improved Bayesian learning rule" of Lin, Schmidt & Khan (2020): P + βG + β²/2 GP⁻¹G = ½P + ½(P + βG)P⁻¹(P + βG) is
positive definite for any symmetric G. `wvi.mixtures.ngflow_vi` applies the same update to each component of a
mixture.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from wvi import gaussian as G
from wvi._checks import check_log_density, is_concrete
from wvi.algorithm import Algorithm


def blr_update(mean, precision, grad, hessian, step_size: float, safeguard: bool = True):
    """One Bayesian-learning-rule step of a Gaussian N(mean, precision⁻¹) for the loss E_q[ℓ] − H(q), given
    g = E_q[∇ℓ] and H = E_q[∇²ℓ]: G = H − P, P ← P + βG (+ β²/2 G P⁻¹ G with the safeguard), m ← m − β P⁻¹ g."""
    g_mat = 0.5 * (hessian + hessian.T) - precision
    new_precision = precision + step_size * g_mat
    if safeguard:
        new_precision = new_precision + 0.5 * step_size**2 * g_mat @ jnp.linalg.solve(precision, g_mat)
    new_precision = 0.5 * (new_precision + new_precision.T)
    return mean - step_size * jnp.linalg.solve(new_precision, grad), new_precision


def gaussian_draws(mean, precision, noise):
    """x = m + L⁻ᵀ z with P = L Lᵀ (Cholesky of the precision), so that Cov x = P⁻¹; noise of shape (n, d)."""
    chol = jnp.linalg.cholesky(precision)
    return mean + solve_triangular(chol, noise.T, lower=True, trans="T").T


class NGVIInfo(NamedTuple):
    loss: jax.Array  # Monte Carlo estimate of KL(q‖p) − log Z at q before the update
    grad_norm: jax.Array  # norm of g = E_q[∇(−log p)]


class NGVIState(NamedTuple):
    mean: jax.Array
    precision: jax.Array  # P = Σ⁻¹

    @property
    def approximation(self) -> G.Gaussian:
        """N(m, P⁻¹), with the Cholesky factor of P⁻¹ as its scale."""
        return G.Gaussian(self.mean, jnp.linalg.cholesky(jnp.linalg.inv(self.precision)))

    def sample(self, key, num_samples: int) -> jax.Array:
        """Draws (num_samples, d) from N(m, P⁻¹)."""
        return G.sample(key, self.approximation, num_samples)


def ngvi(log_density: Callable, step_size: float, num_samples: int, safeguard: bool = True) -> Algorithm:
    """Natural-gradient VI for a full-covariance Gaussian (the Bayesian learning rule of the module docstring).

    init(q0: Gaussian) -> NGVIState; step(key, state) draws z ~ N(0, I) of shape (n, d), x = m + L⁻ᵀz with P = LLᵀ,
    and averages ∇(−log p) and ∇²(−log p) (exact per sample) over the draws. `safeguard` adds Lin et al.'s
    β²/2 G P⁻¹ G, which keeps P positive definite where p's Hessian is indefinite.
    """
    if not callable(log_density):
        raise ValueError(f"log_density must be a function x -> log p(x); got {type(log_density).__name__}")
    if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
    # a traced step size (a sweep) cannot be checked here; its caller checks the values it sweeps over
    if is_concrete(step_size) and not (np.ndim(step_size) == 0 and np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive finite number; got {step_size!r}")
    neg_grad = jax.vmap(jax.grad(lambda x: -log_density(x)))
    neg_hess = jax.vmap(jax.hessian(lambda x: -log_density(x)))

    def init(q0: G.AnyGaussian) -> NGVIState:
        G.check(q0, "q0")
        G.check_vector(q0, "q0", "NGVI (a Gaussian over a vector)")
        check_log_density(log_density, q0.mean)
        return NGVIState(q0.mean, jnp.linalg.inv(G.covariance(q0)))

    def step(key, state: NGVIState):
        noise = jax.random.normal(key, (num_samples, state.mean.shape[0]), dtype=state.mean.dtype)
        x = gaussian_draws(state.mean, state.precision, noise)
        g, h = jnp.mean(neg_grad(x), axis=0), jnp.mean(neg_hess(x), axis=0)
        q = G.Gaussian(state.mean, jnp.linalg.cholesky(jnp.linalg.inv(state.precision)))
        loss = jnp.mean(G.log_prob(q, x) - jax.vmap(log_density)(x))
        mean, precision = blr_update(state.mean, state.precision, g, h, step_size, safeguard)
        return NGVIState(mean, precision), NGVIInfo(loss, jnp.linalg.norm(g))

    return Algorithm(init, step)
