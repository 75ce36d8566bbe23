"""Target losses and log densities used across the book.

Part IV (Wild et al. §5) states its toys as losses ℓ(θ), the negative log likelihood side of the free energy:
    double_well(θ) = 1.5 (θ⁴/4 + θ³/3 − θ²) − 3/8           (θ scalar; global minimum −4.375 at θ = −2,
                                                              local minimum −1 at θ = 1, barrier at θ = 0)
    four_modes(θ)  = −log ¼ Σ_c N(θ; c, I),  c = (±3, ±3)   (θ in R²)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

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
