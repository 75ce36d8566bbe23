"""Gaussian mixtures, and Wasserstein gradient flows over their components (Part II).

The family: q(x) = Σ_k w_k N(x; m_k, S_k S_kᵀ), w = softmax(logits), full-covariance components. Every component is
reparameterised separately, x_{k,i} = m_k + S_k z_{k,i}, so an expectation under q is Σ_k w_k E_{z}[·(m_k + S_k z)]
(this is how Yi & Liu's estimators treat mixtures; `wvi.bbvi.fdiv_grad`).

**Flows over the parameters** (Nguyen et al., "Wasserstein gradient flow over variational parameter space";
chapter "Particles in parameter space"). Put a law ρ on the parameters λ = (m, Σ) of one Gaussian and let the
variational density be q_ρ(x) = ∫ N(x; λ) dρ(λ). With ρ = (1/K) Σ_k δ_{λ_k} (K particles), q_ρ is the uniform mixture
of the K components, and the Wasserstein gradient flow of L(ρ) = KL(q_ρ ‖ p) moves each particle along ::

    dλ_k/dt = −C(λ_k) ∇_λ ψ(λ_k),
    ψ(λ) = δL/δρ(λ) = E_{x ~ N(λ)}[log q_ρ(x) − log p(x)] + 1,

with q_ρ held fixed inside ψ. Two preconditioners:

* GFlow-VI (C = I), in the scale parameterisation λ = (m, S): ∇_λ ψ is the path-derivative estimator with the
  mixture's density under stop-gradient; for K = 1 it is exactly the path BBVI step of `wvi.bbvi`.
* NGFlow-VI (C = inverse Fisher of N(λ)), in the precision parameterisation λ = (m, P): Bonnet's and Price's
  theorems give the Bayesian-learning-rule update of each component ::

      G_k = E_{N(λ_k)}[∇² ℓ_k],   g_k = E_{N(λ_k)}[∇ ℓ_k],   ℓ_k = log q_ρ − log p,
      P_k ← P_k + β G_k (+ β²/2 G_k P_k⁻¹ G_k, the safeguard),
      m_k ← m_k − β P_k⁻¹ g_k.

  We split log q_ρ = log N(λ_k) + log(q_ρ / N(λ_k)): the Gaussian part has E[∇ log N] = 0 and E[∇² log N] = −P_k
  exactly, and only ψ_k = log(q_ρ/N(λ_k)) − log p is estimated by Monte Carlo. For K = 1 the ratio is 1 and the
  step is NGVI's (`wvi.ngvi.ngvi`): P ← (1 − β)P + β E[−∇² log p], m ← m + β P⁻¹ E[∇ log p].

  The safeguard is the "improved Bayesian learning rule" of Lin, Schmidt & Khan (2020), the mirror-descent
  correction Nguyen et al. adopt for targets whose Hessian is indefinite: P + βG + β²/2 GP⁻¹G =
  ½P + ½(P + βG)P⁻¹(P + βG) is positive definite for any symmetric G, and agrees with the plain step to O(β²).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.stats
import numpy as np
import optax
from jax.scipy.special import logsumexp

from wvi._checks import check_finite, check_log_density, check_ndim, is_concrete
from wvi.algorithm import Algorithm
from wvi.ngvi import blr_update, gaussian_draws


class Mixture(NamedTuple):
    """Σ_k softmax(logits)_k N(means_k, scales_k scales_kᵀ). logits: (K,); means: (K, d); scales: (K, d, d)."""

    logits: jax.Array
    means: jax.Array
    scales: jax.Array


def check(q: Mixture, name: str = "q") -> None:
    """Raise a ValueError naming `name` unless `q` is a well-formed Mixture (values checked when concrete)."""
    if not isinstance(q, Mixture):
        raise ValueError(f"{name} must be a wvi.mixtures.Mixture; got {type(q).__name__}")
    check_ndim(q.logits, 1, f"{name}.logits", "a vector of shape (K,)")
    check_ndim(q.means, 2, f"{name}.means", "an array of shape (K, d)")
    k, d = np.shape(q.means)
    if np.shape(q.logits) != (k,):
        raise ValueError(f"{name}.logits must have one entry per component, shape ({k},) to match {name}.means of "
                         f"shape {np.shape(q.means)}; got shape {np.shape(q.logits)}")
    if np.shape(q.scales) != (k, d, d):
        raise ValueError(f"{name}.scales must have shape ({k}, {d}, {d}) to match {name}.means of shape "
                         f"{np.shape(q.means)}; got shape {np.shape(q.scales)}")
    for field in ("logits", "means", "scales"):
        check_finite(getattr(q, field), f"{name}.{field}")
    if is_concrete(q.scales):
        det = np.abs(np.linalg.det(np.asarray(q.scales, dtype=np.float64)))
        if np.any(det <= 0):
            raise ValueError(f"{name}.scales must be invertible; component(s) {np.flatnonzero(det <= 0).tolist()} are singular")


def from_weights(weights, means, covs) -> Mixture:
    """The mixture with the given weights (non-negative, finite, not all zero; normalised here), means (K, d) and
    covariances (K, d, d), each symmetric positive definite. Floating inputs keep their precision (all three in
    the widest of theirs); Python numbers and integers become JAX's default float."""
    arrays = [jnp.asarray(a) for a in (weights, means, covs)]
    dtype = jnp.result_type(*arrays, 0.0)  # 0.0 (weakly typed) makes integers floating without widening floats
    weights, means, covs = (a.astype(dtype) for a in arrays)
    check_ndim(weights, 1, "weights", "a vector of shape (K,)")
    check_finite(weights, "weights")
    check_ndim(means, 2, "means", "an array of shape (K, d)")
    k, d = means.shape
    if weights.shape != (k,):
        raise ValueError(f"weights must have one entry per component, shape ({k},); got shape {weights.shape}")
    if covs.shape != (k, d, d):
        raise ValueError(f"covs must have shape ({k}, {d}, {d}) to match means of shape {means.shape}; got shape {covs.shape}")
    if is_concrete(weights):
        w = np.asarray(weights)
        if np.any(w < 0) or not w.sum() > 0:
            raise ValueError(f"weights must be non-negative and not all zero; got {np.round(w, 4).tolist()}")
    check_finite(covs, "covs")
    if is_concrete(covs):
        c = np.asarray(covs, dtype=np.float64)
        if not np.allclose(c, np.swapaxes(c, 1, 2)):
            raise ValueError("covs must be symmetric")
        smallest = np.linalg.eigvalsh(c)[:, 0]
        if np.any(smallest <= 0):
            raise ValueError(f"covs must be positive definite; component(s) {np.flatnonzero(smallest <= 0).tolist()} are not")
    return Mixture(jnp.log(weights), means, jnp.linalg.cholesky(covs))


def uniform(means, scales) -> Mixture:
    """The equally weighted mixture of N(means_k, scales_k scales_kᵀ): the q_ρ of K particles."""
    means = jnp.asarray(means)
    q = Mixture(jnp.zeros(np.shape(means)[:1], dtype=means.dtype), means, jnp.asarray(scales, dtype=means.dtype))
    check(q)
    return q


def num_components(q: Mixture) -> int:
    return int(np.shape(q.means)[0])


def dim(q: Mixture) -> int:
    return int(np.shape(q.means)[1])


def weights(q: Mixture) -> jax.Array:
    return jax.nn.softmax(q.logits)


def covariances(q: Mixture) -> jax.Array:
    return q.scales @ jnp.swapaxes(q.scales, -1, -2)


def moments(q: Mixture):
    """(mean, covariance) of the mixture: Σ w_k m_k and Σ w_k (Σ_k + m_k m_kᵀ) − mean meanᵀ."""
    w = weights(q)
    mean = w @ q.means
    second = jnp.einsum("k,kij->ij", w, covariances(q) + q.means[:, :, None] * q.means[:, None, :])
    return mean, second - jnp.outer(mean, mean)


def _check_points(q: Mixture, x, name: str = "x") -> None:
    if np.ndim(x) < 1 or np.shape(x)[-1] != dim(q):
        raise ValueError(f"{name} must have {dim(q)} coordinates in its last axis to match the mixture; got shape {np.shape(x)}")


def component_log_probs(q: Mixture, x) -> jax.Array:
    """log N(x; m_k, S_k S_kᵀ) for every component: points of shape (..., d) give shape (..., K)."""
    check(q)
    _check_points(q, x)
    x = jnp.asarray(x)
    diff = x[..., None, :] - q.means  # (..., K, d)
    flat = jnp.moveaxis(diff.reshape(-1, *q.means.shape), 0, -1)  # (K, d, n)
    z = jnp.linalg.solve(q.scales, flat)  # S_k⁻¹(x − m_k); any invertible S_k, not only triangular ones
    sq = jnp.sum(z**2, axis=1).T.reshape(diff.shape[:-1])  # (..., K)
    logdet = jnp.linalg.slogdet(q.scales)[1]
    return -0.5 * sq - logdet - 0.5 * dim(q) * math.log(2 * math.pi)


def log_prob(q: Mixture, x) -> jax.Array:
    """log q(x) = logsumexp_k (log w_k + log N(x; m_k, S_k S_kᵀ)) for points of shape (..., d)."""
    return logsumexp(jax.nn.log_softmax(q.logits) + component_log_probs(q, x), axis=-1)


def reparameterize(q: Mixture, noise) -> jax.Array:
    """x_{k,i} = m_k + S_k z_{k,i} for standard-normal noise of shape (K, n, d); returns shape (K, n, d)."""
    check(q)
    if np.ndim(noise) != 3 or np.shape(noise)[0] != num_components(q) or np.shape(noise)[2] != dim(q):
        raise ValueError(f"noise must have shape ({num_components(q)}, n, {dim(q)}): one batch per component; "
                         f"got shape {np.shape(noise)}")
    return q.means[:, None, :] + jnp.einsum("kij,knj->kni", q.scales, noise)


def sample(key, q: Mixture, num_samples: int) -> jax.Array:
    """`num_samples` draws from q, shape (num_samples, d): a component by its weight, then a reparameterised draw."""
    check(q)
    k_key, z_key = jax.random.split(key)
    component = jax.random.categorical(k_key, q.logits, shape=(num_samples,))
    z = jax.random.normal(z_key, (num_samples, dim(q)), dtype=q.means.dtype)
    return q.means[component] + jnp.einsum("nij,nj->ni", q.scales[component], z)


def interval_masses(q: Mixture, edges) -> jax.Array:
    """q's mass in each interval [edges_j, edges_{j+1}) of a 1D mixture, from the Gaussian CDF (edges may be ±inf)."""
    check(q)
    if dim(q) != 1:
        raise ValueError(f"interval_masses is for 1D mixtures; q has dimension {dim(q)}")
    edges = jnp.asarray(edges, dtype=q.means.dtype)
    cdf = jax.scipy.stats.norm.cdf((edges[:, None] - q.means[None, :, 0]) / jnp.abs(q.scales[None, :, 0, 0]))
    return jnp.diff(cdf, axis=0) @ weights(q)


def local_minima(values, points) -> np.ndarray:
    """The points where a 1D density evaluated on an increasing grid has a strict local minimum: the boundaries
    between the basins of its modes."""
    v, x = np.asarray(values), np.asarray(points).ravel()
    inner = (v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])
    return x[1:-1][inner]


def mode_masses(points, target: Mixture) -> jax.Array:
    """The fraction of `points` (n, d) whose most responsible component of `target` is k, for each k: how a
    sample (or a set of particles) shares its mass among the target's modes."""
    check(target, "target")
    _check_points(target, points, "points")
    nearest = jnp.argmax(jax.nn.log_softmax(target.logits) + component_log_probs(target, points), axis=-1)
    return jnp.mean(jax.nn.one_hot(nearest, num_components(target)), axis=0)


def components_on_modes(q: Mixture, target: Mixture, radius: float = 1.0):
    """How many of q's components sit on each of the target's components: a component of q counts for target
    component j when its mean lies within Mahalanobis distance `radius` of m_j under Σ_j. Returns (counts of shape
    (J,), the number of q's components on no target component)."""
    check(q)
    check(target, "target")
    if dim(q) != dim(target):
        raise ValueError(f"q and target must have the same dimension; got {dim(q)} and {dim(target)}")
    diff = q.means[:, None, :] - target.means[None]  # (K, J, d)
    z = jnp.linalg.solve(target.scales[None], diff[..., None])[..., 0]
    on = np.asarray(jnp.sum(z**2, axis=-1) < radius**2)  # (K, J)
    return on.sum(axis=0), int(np.sum(~on.any(axis=1)))


# --------------------------------------------------------------------------------------------------------------
# Wasserstein gradient flows over the components' parameters (Nguyen et al.)


class GFlowState(NamedTuple):
    q: Mixture  # the K particles (m_k, S_k) as an equally weighted mixture
    opt_state: optax.OptState

    @property
    def approximation(self) -> Mixture:
        """q_ρ, the equally weighted mixture of the K particles."""
        return self.q

    def sample(self, key, num_samples: int) -> jax.Array:
        """Draws (num_samples, d) from q_ρ."""
        return sample(key, self.q, num_samples)


class NGFlowState(NamedTuple):
    means: jax.Array  # (K, d)
    precisions: jax.Array  # (K, d, d), P_k = Σ_k⁻¹

    @property
    def approximation(self) -> Mixture:
        """q_ρ, the equally weighted mixture of N(m_k, P_k⁻¹) (`to_mixture`)."""
        return to_mixture(self)

    def sample(self, key, num_samples: int) -> jax.Array:
        """Draws (num_samples, d) from q_ρ."""
        return sample(key, to_mixture(self), num_samples)


class FlowInfo(NamedTuple):
    loss: jax.Array  # Monte Carlo estimate of KL(q_ρ ‖ p) − log Z before the step


def _check_flow_args(log_density, num_samples, name="log_density"):
    if not callable(log_density):
        raise ValueError(f"{name} must be a function x -> log p(x); got {type(log_density).__name__}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")


def _check_start(q0: Mixture, log_density: Callable) -> None:
    check(q0, "q0")
    if is_concrete(q0.logits) and not np.allclose(np.asarray(q0.logits), np.asarray(q0.logits)[0]):
        raise ValueError("q0 must be equally weighted (all logits equal): particles carry equal mass 1/K")
    check_log_density(log_density, q0.means[0], where="the first component's mean")


def flow_gradient(log_density: Callable, q: Mixture, noise):
    """(Σ_k ψ̂(λ_k) − K, (∇_m, ∇_S) of it): the Monte Carlo potentials of the K particles of q (module docstring) and
    their gradient in the scale parameterisation, with q_ρ = q held fixed (stop-gradient) inside ψ; noise of shape
    (K, n, d), one batch per particle. ∇_{λ_k} of the sum is K ∇_{λ_k} KL(q_ρ ‖ p): zero exactly at a stationary
    point of the objective. GFlow-VI steps along it; "Particles in parameter space" measures its norm."""
    batch_log_density = jax.vmap(jax.vmap(log_density))
    fixed = jax.lax.stop_gradient(q)

    def total(means, scales):
        x = means[:, None, :] + jnp.einsum("kij,knj->kni", scales, noise)
        return jnp.sum(jnp.mean(log_prob(fixed, x) - batch_log_density(x), axis=1))  # Σ_k (ψ(λ_k) − 1)

    return jax.value_and_grad(total, argnums=(0, 1))(q.means, q.scales)


def gflow_vi(log_density: Callable, optimizer: optax.GradientTransformation, num_samples: int) -> Algorithm:
    """GFlow-VI: K Gaussian particles λ_k = (m_k, S_k) moved along −∇_λ ψ(λ_k) (module docstring) by `optimizer`.

    init(q0: Mixture, equal weights) -> GFlowState; step(key, state) draws noise of shape (K, n, d). With
    `optax.sgd(η)` this is the explicit Euler scheme of the flow; for K = 1 the step is `wvi.bbvi`'s path step.
    """
    _check_flow_args(log_density, num_samples)

    def init(q0: Mixture) -> GFlowState:
        _check_start(q0, log_density)
        q0 = Mixture(jnp.zeros_like(q0.logits), q0.means, q0.scales)
        return GFlowState(q0, optimizer.init((q0.means, q0.scales)))

    def step(key, state: GFlowState):
        q = state.q
        noise = jax.random.normal(key, q.means.shape[:1] + (num_samples,) + q.means.shape[1:], dtype=q.means.dtype)
        psi, grads = flow_gradient(log_density, q, noise)
        updates, opt_state = optimizer.update(grads, state.opt_state, (q.means, q.scales))
        means, scales = optax.apply_updates((q.means, q.scales), updates)
        return GFlowState(Mixture(q.logits, means, scales), opt_state), FlowInfo(psi / q.means.shape[0])

    return Algorithm(init, step)


def to_mixture(state: NGFlowState) -> Mixture:
    """The equally weighted mixture of N(m_k, P_k⁻¹) held by an NGFlow-VI state."""
    scales = jnp.linalg.cholesky(jnp.linalg.inv(state.precisions))
    return Mixture(jnp.zeros(state.means.shape[:1], dtype=state.means.dtype), state.means, scales)


def ngflow_vi(log_density: Callable, step_size: float, num_samples: int, safeguard: bool = True) -> Algorithm:
    """NGFlow-VI: each particle takes the natural-gradient (Bayesian learning rule) step of the module docstring.

    init(q0: Mixture, equal weights) -> NGFlowState; step(key, state). Gradients and Hessians of
    ψ_k = log(q_ρ / N(λ_k)) − log p are exact per sample (autodiff) and averaged over `num_samples` draws from each
    component. For K = 1 the step is `wvi.ngvi.ngvi`'s. `safeguard=False` gives the plain rule, whose precision can
    lose positive definiteness where p's Hessian is indefinite.
    """
    _check_flow_args(log_density, num_samples)
    if not step_size > 0:
        raise ValueError(f"step_size must be positive; got {step_size!r}")

    def psi(x, k, fixed: Mixture):
        comp = component_log_probs(fixed, x)
        return logsumexp(jax.nn.log_softmax(fixed.logits) + comp) - comp[k] - log_density(x)

    grad_psi = jax.grad(psi)
    hess_psi = jax.hessian(psi)

    def init(q0: Mixture) -> NGFlowState:
        _check_start(q0, log_density)
        return NGFlowState(q0.means, jnp.linalg.inv(covariances(q0)))

    def step(key, state: NGFlowState):
        k_count, d = state.means.shape
        noise = jax.random.normal(key, (k_count, num_samples, d), dtype=state.means.dtype)
        x = jax.vmap(gaussian_draws)(state.means, state.precisions, noise)  # (K, n, d)
        fixed = to_mixture(state)
        ks = jnp.arange(k_count)
        per_sample = lambda fn: jax.vmap(lambda xk, k: jax.vmap(lambda xi: fn(xi, k, fixed))(xk))(x, ks)
        grads = jnp.mean(per_sample(grad_psi), axis=1)
        hessians = jnp.mean(per_sample(hess_psi), axis=1)
        loss = jnp.mean(log_prob(fixed, x) - jax.vmap(jax.vmap(log_density))(x))
        means, precisions = jax.vmap(lambda m, p, g, h: blr_update(m, p, g, h, step_size, safeguard))(
            state.means, state.precisions, grads, hessians)
        return NGFlowState(means, precisions), FlowInfo(loss)

    return Algorithm(init, step)
