"""Gaussian families: full covariance N(m, S Sᵀ) and diagonal N(m, diag(σ²)).

Closed forms used throughout the book (derived in Part I, chapter "The Riemannian submersion"):

    log N(x; m, SSᵀ) = -d/2 log 2π - log|det S| - ½‖S⁻¹(x - m)‖²
    H(q)             = d/2 (1 + log 2π) + log|det S|
    KL(q‖p)          = ½[‖Sp⁻¹Sq‖²_F + ‖Sp⁻¹(mp - mq)‖² - d] + log|det Sp| - log|det Sq|
    W2²(p, q)        = ‖mp - mq‖² + tr Σp + tr Σq - 2 ‖Spᵀ Sq‖_*      (‖·‖_* the nuclear norm)

The last line is the Bures–Wasserstein distance: tr (Σp^½ Σq Σp^½)^½ equals the sum of the singular values of
Spᵀ Sq, so no matrix square root is needed. Any invertible square S is a valid scale (not only a triangular one);
S and S·R with R orthogonal describe the same distribution.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from wvi._checks import check_finite, check_ndim, is_concrete


class Gaussian(NamedTuple):
    """N(mean, scale @ scale.T). mean: (d,); scale: (d, d), any invertible matrix."""

    mean: jax.Array
    scale: jax.Array


class DiagGaussian(NamedTuple):
    """N(mean, diag(std**2)). mean: (d,); std: (d,), positive."""

    mean: jax.Array
    std: jax.Array


AnyGaussian = Union[Gaussian, DiagGaussian]


def check(q: AnyGaussian, name: str = "q") -> None:
    """Raise a ValueError naming `name` unless `q` is a well-formed Gaussian or DiagGaussian.

    Shapes are always checked; values (finiteness, invertibility, positivity) only when they are concrete,
    i.e. outside `jit`/`grad`/`vmap` tracing.
    """
    if not isinstance(q, (Gaussian, DiagGaussian)):
        raise ValueError(f"{name} must be a wvi.gaussian.Gaussian or DiagGaussian; got {type(q).__name__}")
    check_ndim(q.mean, 1, f"{name}.mean", "a vector of shape (d,)")
    d = np.shape(q.mean)[0]
    check_finite(q.mean, f"{name}.mean")
    if isinstance(q, Gaussian):
        if np.shape(q.scale) != (d, d):
            raise ValueError(
                f"{name}.scale must be a square ({d}, {d}) matrix matching {name}.mean of shape ({d},); "
                f"got shape {np.shape(q.scale)}"
            )
        check_finite(q.scale, f"{name}.scale")
        if is_concrete(q.scale):
            s = np.linalg.svd(np.asarray(q.scale, dtype=np.float64), compute_uv=False)
            eps = np.finfo(np.asarray(q.scale).dtype).eps
            if s[-1] <= d * eps * s[0] or s[0] == 0:
                raise ValueError(
                    f"{name}.scale is singular (smallest singular value {s[-1]:.3g}, largest {s[0]:.3g}); "
                    f"expected an invertible matrix S with covariance S Sᵀ"
                )
    else:
        if np.shape(q.std) != (d,):
            raise ValueError(f"{name}.std must have shape ({d},) like {name}.mean; got shape {np.shape(q.std)}")
        check_finite(q.std, f"{name}.std")
        if is_concrete(q.std) and not np.all(np.asarray(q.std) > 0):
            raise ValueError(f"{name}.std must be positive; got minimum {float(np.min(q.std)):.3g}")


def check_same_dim(p: AnyGaussian, q: AnyGaussian, names=("p", "q")) -> None:
    if np.shape(p.mean) != np.shape(q.mean):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension; "
            f"got {names[0]}.mean of shape {np.shape(p.mean)} and {names[1]}.mean of shape {np.shape(q.mean)}"
        )


def _check_points(q: AnyGaussian, x, name: str = "x") -> None:
    d = np.shape(q.mean)[0]
    if np.ndim(x) < 1 or np.shape(x)[-1] != d:
        raise ValueError(f"{name} must have shape (..., {d}) to match the dimension of the Gaussian; got {np.shape(x)}")


def dim(q: AnyGaussian) -> int:
    """Dimension d of the distribution."""
    return int(np.shape(q.mean)[0])


def scale_matrix(q: AnyGaussian) -> jax.Array:
    """A dense (d, d) scale S with Σ = S Sᵀ (diag(std) for a DiagGaussian)."""
    return q.scale if isinstance(q, Gaussian) else jnp.diag(q.std)


def covariance(q: AnyGaussian) -> jax.Array:
    """Σ = S Sᵀ, shape (d, d)."""
    check(q)
    s = scale_matrix(q)
    return s @ s.T


def from_covariance(mean, cov) -> Gaussian:
    """Gaussian(mean, cholesky(cov)); `cov` must be symmetric positive definite."""
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    check_ndim(mean, 1, "mean", "a vector of shape (d,)")
    d = mean.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}) to match mean; got {cov.shape}")
    check_finite(cov, "cov")
    if is_concrete(cov):
        c = np.asarray(cov, dtype=np.float64)
        if not np.allclose(c, c.T, rtol=1e-6, atol=1e-9 * max(1.0, np.abs(c).max())):
            raise ValueError("cov must be symmetric")
        if np.linalg.eigvalsh(c)[0] <= 0:
            raise ValueError(f"cov must be positive definite; its smallest eigenvalue is {np.linalg.eigvalsh(c)[0]:.3g}")
    return Gaussian(mean, jnp.linalg.cholesky(cov))


def reparameterize(q: AnyGaussian, z) -> jax.Array:
    """x = m + S z for standard-normal noise z of shape (..., d)."""
    check(q)
    _check_points(q, z, "z")
    if isinstance(q, Gaussian):
        return q.mean + z @ q.scale.T
    return q.mean + z * q.std


def sample(key, q: AnyGaussian, num_samples: int) -> jax.Array:
    """`num_samples` reparameterised draws, shape (num_samples, d)."""
    z = jax.random.normal(key, (num_samples, dim(q)), dtype=jnp.result_type(q.mean))
    return reparameterize(q, z)


def _logabsdet(q: AnyGaussian) -> jax.Array:
    if isinstance(q, Gaussian):
        return jnp.linalg.slogdet(q.scale)[1]
    return jnp.sum(jnp.log(q.std))


def whiten(q: AnyGaussian, x) -> jax.Array:
    """z = S⁻¹(x - m) for points x of shape (..., d): the inverse of `reparameterize`."""
    check(q)
    _check_points(q, x)
    diff = jnp.asarray(x) - q.mean
    if isinstance(q, DiagGaussian):
        return diff / q.std
    flat = diff.reshape(-1, diff.shape[-1])
    return jnp.linalg.solve(q.scale, flat.T).T.reshape(diff.shape)


def log_prob(q: AnyGaussian, x) -> jax.Array:
    """log N(x; m, SSᵀ) for points x of shape (..., d); returns shape (...)."""
    z = whiten(q, x)
    d = dim(q)
    return -0.5 * jnp.sum(z**2, axis=-1) - _logabsdet(q) - 0.5 * d * math.log(2 * math.pi)


def entropy(q: AnyGaussian) -> jax.Array:
    """Differential entropy d/2 (1 + log 2π) + log|det S|."""
    check(q)
    return 0.5 * dim(q) * (1.0 + math.log(2 * math.pi)) + _logabsdet(q)


def kl(q: AnyGaussian, p: AnyGaussian) -> jax.Array:
    """KL(q‖p) in closed form (see the module docstring)."""
    check(q, "q")
    check(p, "p")
    check_same_dim(q, p, ("q", "p"))
    d = dim(q)
    if isinstance(q, DiagGaussian) and isinstance(p, DiagGaussian):
        trace = jnp.sum((q.std / p.std) ** 2)
        maha = jnp.sum(((p.mean - q.mean) / p.std) ** 2)
    else:
        sp, sq = scale_matrix(p), scale_matrix(q)
        trace = jnp.sum(jnp.linalg.solve(sp, sq) ** 2)
        maha = jnp.sum(jnp.linalg.solve(sp, p.mean - q.mean) ** 2)
    return 0.5 * (trace + maha - d) + _logabsdet(p) - _logabsdet(q)


def w2(p: AnyGaussian, q: AnyGaussian) -> jax.Array:
    """The 2-Wasserstein distance W2(p, q) (not its square), in closed form for any mix of the two kinds.

    ``W2² = |mp - mq|² + tr Σp + tr Σq - 2‖Spᵀ Sq‖_*`` (nuclear norm), derived in book/part1/submersion.ipynb.
    Accuracy: the covariance term subtracts quantities of size tr Σ, so distances below about
    sqrt(machine epsilon · (tr Σp + tr Σq)) are not resolved: 2e-8 in float64 and 5e-4 in float32 when
    tr Σp = tr Σq = 1, growing like the square root of the traces. A negative rounded W2² is clipped to 0.
    """
    check(p, "p")
    check(q, "q")
    check_same_dim(p, q)
    mean_term = jnp.sum((p.mean - q.mean) ** 2)
    if isinstance(p, DiagGaussian) and isinstance(q, DiagGaussian):
        cov_term = jnp.sum((p.std - q.std) ** 2)
    else:
        sp, sq = scale_matrix(p), scale_matrix(q)
        fidelity = jnp.sum(jnp.linalg.svd(sp.T @ sq, compute_uv=False))
        cov_term = jnp.sum(sp**2) + jnp.sum(sq**2) - 2.0 * fidelity
    return jnp.sqrt(jnp.maximum(mean_term + cov_term, 0.0))


def sqrtm_psd(a) -> jax.Array:
    """Principal square root of a symmetric positive semi-definite matrix by its eigendecomposition."""
    a = 0.5 * (a + a.T)
    w, v = jnp.linalg.eigh(a)
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


def geodesic(p: AnyGaussian, q: AnyGaussian, t) -> AnyGaussian:
    """The point at time t ∈ [0, 1] on the W2 geodesic from p to q (McCann interpolation).

    With T(x) = mq + A(x - mp) the optimal map (A symmetric positive definite, A Σp A = Σq),
    q_t = ((1-t) Id + t T)#p, i.e. m_t = (1-t) mp + t mq and S_t = ((1-t) I + t A) Sp, where
    A Sp = Sp⁻ᵀ (Spᵀ Σq Sp)^½. For two DiagGaussians this is linear interpolation of the stds and the result is a
    DiagGaussian; otherwise a Gaussian whose scale S_t has covariance Σ_t (at t = 1 the scale is A Sp, not q.scale:
    same covariance, another square root).
    """
    check(p, "p")
    check(q, "q")
    check_same_dim(p, q)
    if np.ndim(t) != 0:
        raise ValueError(f"t must be a scalar in [0, 1]; got an array of shape {np.shape(t)}")
    if is_concrete(t) and not (0.0 <= float(t) <= 1.0):
        raise ValueError(f"t must lie in [0, 1]; got {float(t)}")
    mean = (1 - t) * p.mean + t * q.mean
    if isinstance(p, DiagGaussian) and isinstance(q, DiagGaussian):
        return DiagGaussian(mean, (1 - t) * p.std + t * q.std)
    sp, sq = scale_matrix(p), scale_matrix(q)
    a_sp = jnp.linalg.solve(sp.T, sqrtm_psd(sp.T @ (sq @ sq.T) @ sp))
    return Gaussian(mean, (1 - t) * sp + t * a_sp)


def from_samples(x) -> Gaussian:
    """The moment-matched Gaussian of samples x of shape (n, d): sample mean and unbiased covariance."""
    x = jnp.asarray(x)
    check_ndim(x, 2, "x", "an array of samples of shape (n, d)")
    if x.shape[0] < x.shape[1] + 1:
        raise ValueError(f"x must hold at least d + 1 = {x.shape[1] + 1} samples for a full covariance; got {x.shape[0]}")
    check_finite(x, "x")
    mean = jnp.mean(x, axis=0)
    centred = x - mean
    return from_covariance(mean, centred.T @ centred / (x.shape[0] - 1))


def expect(q: AnyGaussian, f, num_points: int = 10):
    """E_q[f(x)] by tensor-product Gauss–Hermite quadrature with `num_points` nodes per dimension.

    With x = m + S z, E_q[f(x)] = Σ_k w_k f(m + S z_k) over the probabilists' Hermite nodes z_k; exact when
    f(m + S z) is a polynomial of degree ≤ 2·num_points - 1 in each coordinate of z. `f` maps (d,) to any
    pytree of arrays; cost grows as num_points**d, so this is for small d (Part I uses d ≤ 5).
    """
    check(q)
    d = dim(q)
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_points)
    grids = np.meshgrid(*([nodes] * d), indexing="ij")
    z = jnp.asarray(np.stack([g.ravel() for g in grids], axis=-1), dtype=jnp.result_type(q.mean))
    w = np.prod(np.stack(np.meshgrid(*([weights] * d), indexing="ij"), axis=-1).reshape(-1, d), axis=-1)
    w = jnp.asarray(w / np.sqrt(2 * np.pi) ** d, dtype=z.dtype)
    values = jax.vmap(f)(reparameterize(q, z))
    return jax.tree_util.tree_map(lambda v: jnp.tensordot(w, v, axes=1), values)


def best_gaussian(log_density, q0: Gaussian, num_points: int = 10):
    """The Gaussian closest to p in reverse KL: minimises KL(q‖p) − log Z = −H(q) − E_q[log p] over the mean and a
    lower-triangular scale (log-diagonal), by scipy's BFGS from q0, with E_q by Gauss–Hermite quadrature (`expect`).

    Exact when log p is a polynomial of degree ≤ 2·num_points − 1 (the Rosenbrock banana of Part II has degree 4).
    Returns (the Gaussian, the minimised KL(q‖p) − log Z). Raises a RuntimeError when BFGS does not converge.
    """
    import scipy.optimize

    check(q0, "q0")
    d = dim(q0)
    rows, cols = np.tril_indices(d, k=-1)

    def unpack(theta):
        scale = jnp.diag(jnp.exp(theta[d : 2 * d])).at[rows, cols].set(theta[2 * d :])
        return Gaussian(theta[:d], scale)

    def objective(theta):
        q = unpack(theta)
        return -entropy(q) - expect(q, log_density, num_points)

    chol = np.linalg.cholesky(np.asarray(covariance(q0), dtype=np.float64))
    theta0 = np.concatenate([np.asarray(q0.mean, np.float64), np.log(np.diag(chol)), chol[rows, cols]])
    value_and_grad = jax.jit(jax.value_and_grad(objective))
    result = scipy.optimize.minimize(lambda t: tuple(np.asarray(v, np.float64) for v in value_and_grad(jnp.asarray(t))),
                                     theta0, jac=True, method="BFGS", options=dict(gtol=1e-9))
    if not np.isfinite(result.fun) or np.linalg.norm(result.jac) > 1e-5:
        raise RuntimeError(f"best_gaussian did not converge: {result.message} (gradient norm {np.linalg.norm(result.jac):.2g})")
    return unpack(jnp.asarray(result.x)), float(result.fun)
