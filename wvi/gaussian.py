"""Gaussian families: full covariance N(m, S Sᵀ) and mean-field (diagonal) N(m, diag(σ²)).

`MeanField(mean, std)` is the one diagonal type of `wvi`: its mean and std are a vector (d,) for the targets of
Parts I–III or any pytree of arrays (a network's parameters in Parts IV–V), read coordinate by coordinate. Its
entropy, KL, W2 and geodesic need no matrix; a mixed pair (a `Gaussian` and a `MeanField`) needs vectors.

Closed forms used throughout the book (derived in Part I, chapter "The Riemannian submersion")::

    log N(x; m, SSᵀ) = -d/2 log 2π - log|det S| - ½‖S⁻¹(x - m)‖²
    H(q)             = d/2 (1 + log 2π) + log|det S|
    KL(q‖p)          = ½[‖Sp⁻¹Sq‖²_F + ‖Sp⁻¹(mp - mq)‖² - d] + log|det Sp| - log|det Sq|
    W2²(p, q)        = ‖mp - mq‖² + tr Σp + tr Σq - 2 ‖Spᵀ Sq‖_*   (‖·‖_*: nuclear norm)

The last line is the Bures–Wasserstein distance: tr (Σp^½ Σq Σp^½)^½ equals the sum of the singular values of
Spᵀ Sq, so no matrix square root is needed. Any invertible square S is a valid scale (not only a triangular one);
S and S·R with R orthogonal describe the same distribution.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from wvi._checks import check_finite, check_ndim, is_concrete


class Gaussian(NamedTuple):
    """N(mean, scale @ scale.T). mean: (d,); scale: (d, d), any invertible matrix."""

    mean: jax.Array
    scale: jax.Array


class MeanField(NamedTuple):
    """q(θ) = Π_i N(θ_i; mean_i, std_i²): a Gaussian with diagonal covariance over a vector (d,) or any pytree of
    arrays. `mean` and `std` share one structure and their leaves one shape; std ≥ 0 (std = 0 is the point mass at
    the mean, which `w2`, `geodesic` and `sample` accept and densities do not). Build one with `meanfield`, which
    checks it and broadcasts a scalar std."""

    mean: Any
    std: Any


AnyGaussian = Union[Gaussian, MeanField]


def _is_leaf(x) -> bool:
    return jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(x))


def _float_dtype(m):
    """The floating dtype of a MeanField leaf with mean m: m's own if floating, else the default float."""
    return jnp.result_type(m, float)


def meanfield(mean, std) -> MeanField:
    """A MeanField from a pytree of means and a pytree of standard deviations of the same structure, or one scalar
    std for every coordinate. Each std takes its mean's floating dtype (the default float for an integer mean).
    Raises a ValueError naming the leaf when structures or shapes differ or a std is not positive and finite."""
    if _is_leaf(std) and np.ndim(std) == 0:
        std = jax.tree_util.tree_map(lambda m: jnp.full(np.shape(m), std, _float_dtype(m)), mean)
    q = MeanField(mean, std)
    _check_meanfield(q, "", degenerate=False)
    return MeanField(mean, jax.tree_util.tree_map(lambda m, s: jnp.asarray(s, _float_dtype(m)), mean, std))


def point_mass(params) -> MeanField:
    """The point mass at `params` (a vector or a pytree) as a degenerate MeanField with std 0: on a W2 geodesic
    between point masses the path is the straight line between them (Part V compares MAP solutions this way)."""
    return MeanField(params, jax.tree_util.tree_map(lambda m: jnp.zeros(np.shape(m), _float_dtype(m)), params))


def _is_vector(q) -> bool:
    return _is_leaf(q.mean) and np.ndim(q.mean) == 1


def _check_meanfield(q: MeanField, name: str, degenerate: bool) -> None:
    """Structure, shapes, finiteness and the sign of the stds; fields are named `{name}.mean` (or `mean` when
    `name` is empty: the arguments of `meanfield`)."""
    prefix = f"{name}." if name else ""
    if jax.tree_util.tree_structure(q.mean) != jax.tree_util.tree_structure(q.std):
        raise ValueError(f"{prefix}std must be a pytree of the same structure as {prefix}mean (or, in meanfield, one "
                         f"scalar); got {jax.tree_util.tree_structure(q.std)} for {jax.tree_util.tree_structure(q.mean)}")
    means = jax.tree_util.tree_flatten_with_path(q.mean)[0]
    if not means:
        raise ValueError(f"{prefix}mean must hold at least one array; got an empty pytree")
    for (path, m), s in zip(means, jax.tree_util.tree_leaves(q.std)):
        where = jax.tree_util.keystr(path)
        mean_name, std_name = f"{prefix}mean{where}", f"{prefix}std{where}"
        if np.shape(m) != np.shape(s):
            raise ValueError(f"{std_name} must have shape {np.shape(m)} like {mean_name}; got shape {np.shape(s)}")
        check_finite(m, mean_name)
        if is_concrete(s):
            arr = np.asarray(s)
            ok = np.all(arr >= 0) if degenerate else np.all(arr > 0)
            if not (ok and np.all(np.isfinite(arr))):
                bound = "non-negative" if degenerate else "positive"
                hint = "" if degenerate else (" (std = 0, a point mass, is accepted by w2, w2_squared, sample, and "
                                              "geodesic between two MeanFields)")
                raise ValueError(f"{std_name} must be {bound} and finite everywhere; got minimum "
                                 f"{float(np.min(arr)):.3g}{hint}")


def check(q: AnyGaussian, name: str = "q", degenerate: bool = False) -> None:
    """Raise a ValueError naming `name` unless `q` is a well-formed Gaussian or MeanField (std > 0; std ≥ 0 when
    `degenerate`, for the functions that accept point masses).

    Shapes are always checked; values (finiteness, invertibility, positivity) only when they are concrete,
    i.e. outside `jit`/`grad`/`vmap` tracing.
    """
    if not isinstance(q, (Gaussian, MeanField)):
        raise ValueError(f"{name} must be a wvi.gaussian.Gaussian or MeanField; got {type(q).__name__}")
    if isinstance(q, MeanField):
        _check_meanfield(q, name, degenerate)
        return
    check_ndim(q.mean, 1, f"{name}.mean", "a vector of shape (d,)")
    d = np.shape(q.mean)[0]
    check_finite(q.mean, f"{name}.mean")
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


def check_vector(q: AnyGaussian, name: str, what: str) -> None:
    """Raise a ValueError naming `name` if q is a MeanField over a pytree where `what` needs vectors (shape (d,))."""
    if isinstance(q, MeanField) and not _is_vector(q):
        got = (f"a mean of shape {np.shape(q.mean)}" if _is_leaf(q.mean)
               else f"a pytree mean of {len(jax.tree_util.tree_leaves(q.mean))} arrays")
        raise ValueError(f"{name} must be a MeanField over a vector (mean of shape (d,)) for {what}; got {got} "
                         f"(sample, entropy, kl, w2, w2_squared and geodesic take any pytree)")


def check_same_dim(p: AnyGaussian, q: AnyGaussian, names=("p", "q")) -> None:
    """Raise unless p and q live on the same space: vectors of one dimension, or two MeanFields of one structure
    and leaf shapes. A Gaussian and a MeanField must both be over vectors."""
    if isinstance(p, MeanField) and isinstance(q, MeanField):
        shapes = [jax.tree_util.tree_map(np.shape, r.mean) for r in (p, q)]
        if jax.tree_util.tree_structure(p.mean) != jax.tree_util.tree_structure(q.mean) or shapes[0] != shapes[1]:
            raise ValueError(f"{names[0]} and {names[1]} must have means of the same structure and shapes; "
                             f"got {shapes[0]} and {shapes[1]}")
        return
    for r, name in zip((p, q), names):
        check_vector(r, name, "a pair of a Gaussian and a MeanField")
    if np.shape(p.mean) != np.shape(q.mean):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension; "
            f"got {names[0]}.mean of shape {np.shape(p.mean)} and {names[1]}.mean of shape {np.shape(q.mean)}"
        )


def _check_points(q: AnyGaussian, x, name: str = "x") -> None:
    d = np.shape(q.mean)[0]
    if np.ndim(x) < 1 or np.shape(x)[-1] != d:
        raise ValueError(f"{name} must have shape (..., {d}) to match the dimension of the Gaussian; got {np.shape(x)}")


def _tree_sum(f, *trees) -> jax.Array:
    """Σ over the leaves of f(leaf, ...), each f a scalar."""
    return sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map(f, *trees)))


def dim(q: AnyGaussian) -> int:
    """Dimension d of the distribution (for a MeanField over a pytree, its number of coordinates)."""
    if isinstance(q, MeanField):
        return int(sum(np.size(m) for m in jax.tree_util.tree_leaves(q.mean)))
    return int(np.shape(q.mean)[0])


def scale_matrix(q: AnyGaussian) -> jax.Array:
    """A dense (d, d) scale S with Σ = S Sᵀ (diag(std) for a MeanField over a vector)."""
    if isinstance(q, Gaussian):
        return q.scale
    check_vector(q, "q", "a dense scale matrix")
    return jnp.diag(q.std)


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
    """x = m + S z for standard-normal noise z of shape (..., d) (q over vectors)."""
    check(q, degenerate=True)
    check_vector(q, "q", "reparameterize (sample works on pytrees)")
    _check_points(q, z, "z")
    if isinstance(q, Gaussian):
        return q.mean + z @ q.scale.T
    return q.mean + z * q.std


def sample(key, q: AnyGaussian, num_samples: int):
    """`num_samples` reparameterised draws x = m + S z: shape (num_samples, d) for q over vectors; for a
    MeanField over a pytree, a pytree like its mean with a leading axis num_samples. The noise is one normal
    array (num_samples, d) cut into the leaves' shapes, so a pytree and its flattened vector get the same draws
    (and one random-number call serves any number of leaves)."""
    check(q, degenerate=True)
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
    if isinstance(q, Gaussian) or _is_vector(q):
        z = jax.random.normal(key, (num_samples, dim(q)), dtype=_float_dtype(q.mean))
        return reparameterize(q, z)
    leaves, tree = jax.tree_util.tree_flatten(q.mean)
    sizes = [int(np.size(m)) for m in leaves]
    flat = jax.random.normal(key, (num_samples, sum(sizes)), jnp.result_type(*leaves, float))
    pieces = jnp.split(flat, np.cumsum(sizes)[:-1], axis=1)
    eps = jax.tree_util.tree_unflatten(tree, [e.reshape((num_samples,) + np.shape(m)) for e, m in zip(pieces, leaves)])
    return jax.tree_util.tree_map(lambda m, s, e: m + s * e, q.mean, q.std, eps)


def _logabsdet(q: AnyGaussian) -> jax.Array:
    if isinstance(q, Gaussian):
        return jnp.linalg.slogdet(q.scale)[1]
    return _tree_sum(lambda s: jnp.sum(jnp.log(s)), q.std)


def whiten(q: AnyGaussian, x) -> jax.Array:
    """z = S⁻¹(x - m) for points x of shape (..., d): the inverse of `reparameterize` (q over vectors)."""
    check(q)
    check_vector(q, "q", "whiten and log_prob")
    _check_points(q, x)
    diff = jnp.asarray(x) - q.mean
    if isinstance(q, MeanField):
        return diff / q.std
    flat = diff.reshape(-1, diff.shape[-1])
    return jnp.linalg.solve(q.scale, flat.T).T.reshape(diff.shape)


def log_prob(q: AnyGaussian, x) -> jax.Array:
    """log N(x; m, SSᵀ) for points x of shape (..., d); returns shape (...)."""
    z = whiten(q, x)
    d = dim(q)
    return -0.5 * jnp.sum(z**2, axis=-1) - _logabsdet(q) - 0.5 * d * math.log(2 * math.pi)


def entropy(q: AnyGaussian) -> jax.Array:
    """Differential entropy d/2 (1 + log 2π) + log|det S| (for a MeanField, Σ_i log s_i)."""
    check(q)
    return 0.5 * dim(q) * (1.0 + math.log(2 * math.pi)) + _logabsdet(q)


def kl(q: AnyGaussian, p: AnyGaussian) -> jax.Array:
    """KL(q‖p) in closed form (see the module docstring); for two MeanFields, coordinate by coordinate:
    Σ_i [log(s_p,i/s_q,i) + (s_q,i² + (m_q,i − m_p,i)²)/(2 s_p,i²) − ½]."""
    check(q, "q")
    check(p, "p")
    check_same_dim(q, p, ("q", "p"))
    d = dim(q)
    if isinstance(q, MeanField) and isinstance(p, MeanField):
        trace = _tree_sum(lambda sq, sp: jnp.sum((sq / sp) ** 2), q.std, p.std)
        maha = _tree_sum(lambda mp, mq, sp: jnp.sum(((mp - mq) / sp) ** 2), p.mean, q.mean, p.std)
    else:
        sp, sq = scale_matrix(p), scale_matrix(q)
        trace = jnp.sum(jnp.linalg.solve(sp, sq) ** 2)
        maha = jnp.sum(jnp.linalg.solve(sp, p.mean - q.mean) ** 2)
    return 0.5 * (trace + maha - d) + _logabsdet(p) - _logabsdet(q)


def w2_squared(p: AnyGaussian, q: AnyGaussian) -> jax.Array:
    """W2²(p, q) in closed form (module docstring); for two MeanFields (point masses allowed, std 0) it is
    ‖mp − mq‖² + ‖sp − sq‖² summed over all coordinates of the pytree. Accuracy: see `w2`."""
    check(p, "p", degenerate=True)
    check(q, "q", degenerate=True)
    check_same_dim(p, q)
    if isinstance(p, MeanField) and isinstance(q, MeanField):
        return (_tree_sum(lambda a, b: jnp.sum((a - b) ** 2), p.mean, q.mean)
                + _tree_sum(lambda a, b: jnp.sum((a - b) ** 2), p.std, q.std))
    mean_term = jnp.sum((p.mean - q.mean) ** 2)
    sp, sq = scale_matrix(p), scale_matrix(q)
    fidelity = jnp.sum(jnp.linalg.svd(sp.T @ sq, compute_uv=False))
    cov_term = jnp.sum(sp**2) + jnp.sum(sq**2) - 2.0 * fidelity
    return jnp.maximum(mean_term + cov_term, 0.0)


def w2(p: AnyGaussian, q: AnyGaussian) -> jax.Array:
    """The 2-Wasserstein distance W2(p, q) (not its square), in closed form for two MeanFields over any pytree, or
    any mix of the two kinds over vectors. Its gradient is NaN where p = q (the square root at 0): differentiate
    `w2_squared` instead.

    ``W2² = |mp - mq|² + tr Σp + tr Σq - 2‖Spᵀ Sq‖_*`` (nuclear norm), derived in book/part1/submersion.ipynb.
    Accuracy: the covariance term subtracts quantities of size tr Σ, so distances below about
    sqrt(machine epsilon · (tr Σp + tr Σq)) are not resolved: 2e-8 in float64 and 5e-4 in float32 when
    tr Σp = tr Σq = 1, growing like the square root of the traces. A negative rounded W2² is clipped to 0.
    Two MeanFields need no subtraction of traces and have no such floor.
    """
    return jnp.sqrt(w2_squared(p, q))


def sqrtm_psd(a) -> jax.Array:
    """Principal square root of a symmetric positive semi-definite matrix by its eigendecomposition."""
    a = 0.5 * (a + a.T)
    w, v = jnp.linalg.eigh(a)
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


def geodesic(p: AnyGaussian, q: AnyGaussian, t) -> AnyGaussian:
    """The point at time t ∈ [0, 1] on the W2 geodesic from p to q (McCann interpolation).

    With T(x) = mq + A(x - mp) the optimal map (A symmetric positive definite, A Σp A = Σq),
    q_t = ((1-t) Id + t T)#p, i.e. m_t = (1-t) mp + t mq and S_t = ((1-t) I + t A) Sp, where
    A Sp = Sp⁻ᵀ (Spᵀ Σq Sp)^½. For two MeanFields (over vectors or pytrees, point masses allowed) this is linear
    interpolation of the means and of the stds and the result is a MeanField; otherwise a Gaussian whose scale S_t
    has covariance Σ_t (at t = 1 the scale is A Sp, not q.scale: same covariance, another square root).
    """
    check(p, "p", degenerate=True)
    check(q, "q", degenerate=True)
    check_same_dim(p, q)
    if np.ndim(t) != 0:
        raise ValueError(f"t must be a scalar in [0, 1]; got an array of shape {np.shape(t)}")
    if is_concrete(t) and not (0.0 <= float(t) <= 1.0):
        raise ValueError(f"t must lie in [0, 1]; got {float(t)}")
    if isinstance(p, MeanField) and isinstance(q, MeanField):
        line = lambda a, b: (1 - t) * a + t * b
        return MeanField(jax.tree_util.tree_map(line, p.mean, q.mean), jax.tree_util.tree_map(line, p.std, q.std))
    check(p, "p")
    check(q, "q")
    mean = (1 - t) * p.mean + t * q.mean
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
    check_vector(q, "q", "expect")
    d = dim(q)
    if num_points ** d > 10 ** 7:
        raise ValueError(f"expect needs num_points**d = {num_points}**{d} nodes; more than 1e7 (use Monte Carlo)")
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
