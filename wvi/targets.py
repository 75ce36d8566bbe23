"""Target losses and log densities used across the book.

Part IV (Wild et al. §5) states its toys as losses ℓ(θ), the negative log likelihood side of the free energy::

    double_well(θ) = 1.5 (θ⁴/4 + θ³/3 − θ²) − 3/8   (θ scalar; global minimum −4.375
                                                     at θ = −2, local minimum −1 at θ = 1,
                                                     barrier at θ = 0)
    four_modes(θ)  = −log ¼ Σ_c N(θ; c, I),  c = (±3, ±3)   (θ in R²)

Part II (Yi & Liu §5; Nguyen et al. §4) states normalised log densities, because every f-divergence but reverse KL
depends on the normalising constant::

    rosenbrock(x) = −(x₁ − 1)² − (x₂ − x₁²)² − log π
                    ("banana"; ∫ e^{−(x₁−1)²} e^{−(x₂−x₁²)²} = π)
    mixture_1d_target() = 0.4 N(−1, 0.5²) + 0.3 N(0.8, 0.5²) + 0.3 N(3, 0.8²)
                          (Yi & Liu, Appendix B.1)
    four_gaussians_target() = an equal mixture of four correlated 2D Gaussians
                              (ours: Nguyen et al. do not state theirs)

`mixture_1d` and `four_gaussians` are their log densities.

Targets are built by functions, in the precision asked for (by default JAX's default float, float64 once a chapter
switches it on): nothing is built at import, which would fix the precision before a chapter chooses it and start the
JAX backend (and its preallocation of GPU memory) on `import wvi`.

Part III (Yi & Liu §5.3) is Bayesian logistic regression with labels y ∈ {0, 1} and weights w ∈ R^D::

    log p(w, y | X) = Σ_i [y_i x_iᵀw − softplus(x_iᵀw)] + Σ_j log N(w_j; 0, σ_j²)

(`logistic_log_joint`; Yi & Liu's code uses a flat prior, the book a proper Gaussian one). A minibatch of M of the
N points scales the likelihood by N/M, an unbiased estimate of the full sum (`logistic_minibatch_log_joint`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wvi import mixtures
from wvi._checks import check_finite, check_ndim

FOUR_MODE_CENTRES = np.array([[3.0, 3.0], [3.0, -3.0], [-3.0, 3.0], [-3.0, -3.0]], dtype=np.float32)


def double_well(theta):
    """ℓ(θ) = 1.5 (θ⁴/4 + θ³/3 − θ²) − 3/8, elementwise (Part IV, toy 1)."""
    return 1.5 * (theta**4 / 4 + theta**3 / 3 - theta**2) - 3 / 8


def four_modes(theta):
    """ℓ(θ) = −log of the equal mixture of N(c, I) over the four centres (±3, ±3), for θ of shape (..., 2)."""
    theta = jnp.asarray(theta)
    if theta.shape[-1:] != (2,):
        raise ValueError(f"theta must have 2 coordinates in its last axis; got shape {theta.shape}")
    sq = jnp.sum((theta[..., None, :] - FOUR_MODE_CENTRES) ** 2, axis=-1)
    return -(jax.scipy.special.logsumexp(-0.5 * sq, axis=-1) - jnp.log(4 * 2 * jnp.pi))


def rosenbrock(x):
    """log p(x) = −(x₁ − 1)² − (x₂ − x₁²)² − log π for x of shape (..., 2): the normalised banana."""
    x = jnp.asarray(x)
    if x.shape[-1:] != (2,):
        raise ValueError(f"x must have 2 coordinates in its last axis; got shape {x.shape}")
    return -((x[..., 0] - 1.0) ** 2) - (x[..., 1] - x[..., 0] ** 2) ** 2 - jnp.log(jnp.pi)


def _float(dtype):
    return jnp.dtype(dtype) if dtype is not None else jnp.dtype(jnp.result_type(float))


def mixture_1d_target(dtype=None) -> mixtures.Mixture:
    """0.4 N(−1, 0.5²) + 0.3 N(0.8, 0.5²) + 0.3 N(3, 0.8²), Yi & Liu's 1D mixture (Appendix B.1), in `dtype`
    (default: JAX's default float). Part II, "Mixtures in 1D"."""
    dtype = _float(dtype)
    return mixtures.from_weights(jnp.array([0.4, 0.3, 0.3], dtype), jnp.array([[-1.0], [0.8], [3.0]], dtype),
                                 jnp.array([[[0.5**2]], [[0.5**2]], [[0.8**2]]], dtype))


def _rotated(stds, angle, dtype):
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return jnp.asarray(rot @ np.diag(np.asarray(stds) ** 2) @ rot.T, dtype)


def four_gaussians_target(dtype=None) -> mixtures.Mixture:
    """An equal mixture of four correlated 2D Gaussians (ours: Nguyen et al. do not state theirs), in `dtype`
    (default: JAX's default float). Part II, "Particles in parameter space"."""
    dtype = _float(dtype)
    return mixtures.from_weights(
        jnp.full((4,), 0.25, dtype),
        jnp.array([[-2.5, 2.0], [2.5, 2.5], [-2.0, -2.5], [2.5, -2.0]], dtype),
        jnp.stack([_rotated((1.0, 0.4), np.pi / 4, dtype), _rotated((0.8, 0.5), -np.pi / 6, dtype),
                   _rotated((0.6, 0.6), 0.0, dtype), _rotated((1.1, 0.45), np.pi / 3, dtype)]),
    )


def mixture_1d(x):
    """log p(x) of `mixture_1d_target()` for x of shape (..., 1), the target in x's precision."""
    x = jnp.asarray(x)
    return mixtures.log_prob(mixture_1d_target(_inexact(x)), x)


def four_gaussians(x):
    """log p(x) of `four_gaussians_target()` for x of shape (..., 2), the target in x's precision."""
    x = jnp.asarray(x)
    return mixtures.log_prob(four_gaussians_target(_inexact(x)), x)


def _inexact(x):
    return x.dtype if jnp.issubdtype(x.dtype, jnp.inexact) else None


def check_logistic_data(x, y, prior_std) -> None:
    """Raise unless x is (N, D) and finite, y is (N,) with entries 0 or 1, and prior_std is positive (scalar or (D,))."""
    check_ndim(x, 2, "x", "a matrix of inputs (N, D)")
    check_finite(x, "x")
    check_ndim(y, 1, "y", "a vector of labels (N,)")
    if np.shape(y)[0] != np.shape(x)[0]:
        raise ValueError(f"x and y must hold the same number of points; got {np.shape(x)[0]} inputs and {np.shape(y)[0]} labels")
    if not np.all((np.asarray(y) == 0) | (np.asarray(y) == 1)):
        raise ValueError("y must hold labels 0 or 1")
    std = np.asarray(prior_std, dtype=float)
    if std.shape not in ((), (np.shape(x)[1],)) or not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ValueError(f"prior_std must be a positive number or a positive vector of length {np.shape(x)[1]}; got {prior_std!r}")


@jax.custom_jvp
def softplus(logits):
    """log(1 + e^l), written max(l, 0) + log1p(e^{−|l|}): stable for any l, and under jit its gradient runs about
    twice as fast as `jax.nn.softplus`'s (`benchmarks/logreg_vi.py`). The derivative is sigmoid(l) by a custom
    JVP: differentiating `max` and `|·|` themselves would be wrong at l = 0, where they tie."""
    return jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(logits)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (logits,), (tangent,) = primals, tangents
    return softplus(logits), jax.nn.sigmoid(logits) * tangent


def logistic_log_likelihood(w, x, y):
    """Σ_i [y_i x_iᵀw − softplus(x_iᵀw)] = Σ_i log Bernoulli(y_i; sigmoid(x_iᵀw)) for w of shape (D,);
    its gradient is Σ_i (y_i − sigmoid(x_iᵀw)) x_i, right at every logit (`softplus`)."""
    logits = x @ w
    return jnp.sum(y * logits - softplus(logits))


def gaussian_log_prior(w, prior_std):
    """Σ_j log N(w_j; 0, σ_j²)."""
    std = jnp.broadcast_to(jnp.asarray(prior_std, dtype=w.dtype), w.shape)
    return jnp.sum(-0.5 * (w / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi))


def logistic_log_joint(w, x, y, prior_std, likelihood_scale=1.0):
    """log N(w; 0, diag σ²) + likelihood_scale · Σ_i log Bernoulli(y_i; sigmoid(x_iᵀw)), for w of shape (D,).
    With the full data likelihood_scale = 1; on a minibatch of M of N points, N/M."""
    return gaussian_log_prior(w, prior_std) + likelihood_scale * logistic_log_likelihood(w, x, y)


def logistic_regression(x, y, prior_std):
    """The posterior's unnormalised log density w -> log p(w, y | x) on the full data, validated once.
    Append a column of ones to x for an intercept. Part III, "Bayesian logistic regression"."""
    check_logistic_data(x, y, prior_std)
    x, y = jnp.asarray(x), jnp.asarray(y, dtype=jnp.asarray(x).dtype)
    return lambda w: logistic_log_joint(w, x, y, prior_std)


def logistic_minibatch_log_joint(key, w, x, y, prior_std, batch_size: int):
    """An unbiased estimate of `logistic_log_joint(w, x, y, prior_std)`: the prior plus N/M times the likelihood of
    M = batch_size points drawn without replacement (E over the draw of (N/M) Σ_batch = Σ_all)."""
    num_data = x.shape[0]
    if not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= num_data:
        raise ValueError(f"batch_size must be an integer in [1, {num_data}]; got {batch_size!r}")
    batch = jax.random.choice(key, num_data, (batch_size,), replace=False)
    return logistic_log_joint(w, x[batch], y[batch], prior_std, num_data / batch_size)


def logistic_pointwise(draws, x, y) -> dict[str, jax.Array]:
    """The test metrics of a posterior (or an approximation) given by weight draws (S, D), point by point, on x
    (N, D), y (N,): "correct", whether the posterior predictive p(y = 1 | x_n) = mean_s sigmoid(x_nᵀw_s) thresholded
    at ½ gives y_n, and "lpd", the log predictive density log mean_s p(y_n | x_n, w_s) (a logsumexp over draws);
    each of shape (N,). Two predictives on the same points are compared pair by pair (`wvi.mcmc.mcnemar` on
    "correct", a paired standard error on "lpd"). Part III, "Bayesian logistic regression"."""
    check_ndim(draws, 2, "draws", "weight draws of shape (S, D)")
    check_logistic_data(x, y, 1.0)
    if np.shape(draws)[1] != np.shape(x)[1]:
        raise ValueError(f"draws must have {np.shape(x)[1]} coordinates to match x; got shape {np.shape(draws)}")
    logits = jnp.asarray(draws) @ jnp.asarray(x).T  # (S, N)
    y = jnp.asarray(y)
    log_lik = jnp.where(y == 1, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits))
    lpd = jax.scipy.special.logsumexp(log_lik, axis=0) - jnp.log(logits.shape[0])
    p1 = jnp.mean(jax.nn.sigmoid(logits), axis=0)
    return {"correct": (p1 > 0.5) == (y == 1), "lpd": lpd}


def logistic_predictive(draws, x, y) -> dict[str, jax.Array]:
    """Test metrics of a posterior (or an approximation) given by weight draws (S, D) on points x (N, D), y (N,):
    "accuracy" of the posterior predictive p(y = 1 | x) = mean_s sigmoid(x ᵀw_s) thresholded at ½, and "lpd", the
    mean over points of the log predictive density log mean_s p(y_n | x_n, w_s): the means over points of
    `logistic_pointwise`."""
    points = logistic_pointwise(draws, x, y)
    return {"accuracy": jnp.mean(points["correct"]), "lpd": jnp.mean(points["lpd"])}
