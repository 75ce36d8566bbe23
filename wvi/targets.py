"""Target losses and log densities used across the book.

Part IV (Wild et al. §5) states its toys as losses ℓ(θ), the negative log likelihood side of the free energy:
    double_well(θ) = 1.5 (θ⁴/4 + θ³/3 − θ²) − 3/8           (θ scalar; global minimum −4.375 at θ = −2,
                                                              local minimum −1 at θ = 1, barrier at θ = 0)
    four_modes(θ)  = −log ¼ Σ_c N(θ; c, I),  c = (±3, ±3)   (θ in R²)

Part II (Yi & Liu §5; Nguyen et al. §4) states normalised log densities, because every f-divergence but reverse KL
depends on the normalising constant:
    rosenbrock(x)  = −(x₁ − 1)² − (x₂ − x₁²)² − log π        ("banana"; ∫ e^{−(x₁−1)²} e^{−(x₂−x₁²)²} = π)
    MIXTURE_1D     = 0.4 N(−1, 0.5²) + 0.3 N(0.8, 0.5²) + 0.3 N(3, 0.8²)        (Yi & Liu, Appendix B.1)
    FOUR_GAUSSIANS = an equal mixture of four correlated 2D Gaussians (our choice: Nguyen et al. do not state theirs)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from wvi import mixtures

FOUR_MODE_CENTRES = jnp.array([[3.0, 3.0], [3.0, -3.0], [-3.0, 3.0], [-3.0, -3.0]])


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


MIXTURE_1D = mixtures.from_weights(jnp.array([0.4, 0.3, 0.3]), jnp.array([[-1.0], [0.8], [3.0]]),
                                   jnp.array([[[0.5**2]], [[0.5**2]], [[0.8**2]]]))


def _rotated(stds, angle):
    c, s = jnp.cos(angle), jnp.sin(angle)
    rot = jnp.array([[c, -s], [s, c]])
    return rot @ jnp.diag(jnp.asarray(stds) ** 2) @ rot.T


FOUR_GAUSSIANS = mixtures.from_weights(
    jnp.full((4,), 0.25),
    jnp.array([[-2.5, 2.0], [2.5, 2.5], [-2.0, -2.5], [2.5, -2.0]]),
    jnp.stack([_rotated((1.0, 0.4), jnp.pi / 4), _rotated((0.8, 0.5), -jnp.pi / 6),
               _rotated((0.6, 0.6), 0.0), _rotated((1.1, 0.45), jnp.pi / 3)]),
)


def mixture_1d(x):
    """log p(x) of MIXTURE_1D for x of shape (..., 1)."""
    return mixtures.log_prob(MIXTURE_1D, x)


def four_gaussians(x):
    """log p(x) of FOUR_GAUSSIANS for x of shape (..., 2)."""
    return mixtures.log_prob(FOUR_GAUSSIANS, x)
