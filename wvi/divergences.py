"""f-divergences by name (Part II, Yi & Liu's path-derivative estimator).

D_f(q ‖ p) = E_q[f(r)], r = p/q, for convex f with f(1) = 0. The Wasserstein gradient flow of D_f moves particles
along ∇_x h(r(x)) with ::

    h(r) = r f′(r) − f(r),

which the path-derivative ("distillation") estimator pushes through reparameterised samples. With r = p/q::

    name          f(r)            h(r)          D_f(q ‖ p)
    reverse_kl    −log r          log r − 1     KL(q ‖ p)
    forward_kl    r log r         r             KL(p ‖ q)
    chi2          (r − 1)²        r² − 1        χ²(p ‖ q) = ∫ p²/q − 1
    hellinger     (√r − 1)²       √r − 1        ∫ (√p − √q)²  (twice the squared Hellinger)

Every function here also has a log-space form taking log r, which is how ratios of densities should be passed:
r itself overflows where q has thin tails.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wvi._checks import check_choice


class Divergence(NamedTuple):
    name: str
    f: Callable  # f(r)
    h: Callable  # h(r) = r f'(r) - f(r)
    f_log: Callable  # f as a function of log r
    h_log: Callable  # h as a function of log r


DIVERGENCES = {
    "reverse_kl": Divergence("reverse_kl", lambda r: -jnp.log(r), lambda r: jnp.log(r) - 1.0,
                             lambda s: -s, lambda s: s - 1.0),
    "forward_kl": Divergence("forward_kl", lambda r: r * jnp.log(r), lambda r: r,
                             lambda s: s * jnp.exp(s), jnp.exp),
    "chi2": Divergence("chi2", lambda r: (r - 1.0) ** 2, lambda r: r**2 - 1.0,
                       lambda s: jnp.expm1(s) ** 2, lambda s: jnp.expm1(2.0 * s)),
    "hellinger": Divergence("hellinger", lambda r: (jnp.sqrt(r) - 1.0) ** 2, lambda r: jnp.sqrt(r) - 1.0,
                            lambda s: jnp.expm1(0.5 * s) ** 2, lambda s: jnp.expm1(0.5 * s)),
}


def get(name: str) -> Divergence:
    """The f-divergence called `name`; an unknown name raises a ValueError listing the known ones."""
    check_choice(name, tuple(DIVERGENCES), "divergence")
    return DIVERGENCES[name]


def on_grid(name: str, log_q, log_p, cell_volume: float) -> jnp.ndarray:
    """D_f(q ‖ p) = Σ q f(p/q) ΔV by quadrature over grid cells, from log densities evaluated on the grid.
    Both densities must be normalised and the grid must hold essentially all of both masses."""
    div = get(name)
    log_q, log_p = jnp.asarray(log_q), jnp.asarray(log_p)
    if log_q.shape != log_p.shape:
        raise ValueError(f"log_q and log_p must be evaluated on the same grid; got shapes {log_q.shape} and {log_p.shape}")
    if not cell_volume > 0:
        raise ValueError(f"cell_volume must be positive; got {cell_volume}")
    q = jnp.exp(log_q)
    return jnp.sum(jnp.where(q > 0, q * div.f_log(log_p - log_q), 0.0)) * cell_volume


class Grid(NamedTuple):
    points: jnp.ndarray  # (num_points, d), the cell centres
    cell_volume: float
    shape: tuple  # the grid's shape, (n₁, …, n_d), for reshaping values into images


def grid(limits, num) -> Grid:
    """A regular grid of cell centres over a box: `limits` = [(low, high)] per dimension, `num` cells per dimension
    (an int or one per dimension)."""
    limits = [tuple(map(float, lim)) for lim in limits]
    if not limits or any(len(lim) != 2 or not lim[1] > lim[0] for lim in limits):
        raise ValueError(f"limits must be a list of (low, high) pairs with high > low, one per dimension; got {limits}")
    nums = [int(num)] * len(limits) if isinstance(num, (int, np.integer)) else [int(n) for n in num]
    if len(nums) != len(limits) or min(nums) < 2:
        raise ValueError(f"num must be an int ≥ 2 or one such int per dimension; got {num!r}")
    widths = [(hi - lo) / n for (lo, hi), n in zip(limits, nums)]
    axes = [lo + w * (jnp.arange(n) + 0.5) for (lo, _), w, n in zip(limits, widths, nums)]
    mesh = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
    volume = 1.0
    for w in widths:
        volume *= w
    return Grid(mesh.reshape(-1, len(limits)), volume, tuple(nums))


def on_grid_fns(name: str, log_q: Callable, log_p: Callable, g: Grid, min_mass: float = 0.999,
                restrict: bool = False) -> jnp.ndarray:
    """D_f(q ‖ p) by quadrature on the grid `g`, for log densities given as functions of points (..., d).

    Raises a ValueError when the grid holds less than `min_mass` of either density (widen the grid), since the
    quadrature would then silently miss part of the divergence. `restrict=True` instead computes D_f(q_B ‖ p_B)
    between both laws restricted to the grid's box B and renormalised there: finite where the divergence over the
    whole space is not (χ²(p‖q) = ∞ whenever p has heavier tails than q)."""
    lq, lp = log_q(g.points), log_p(g.points)
    if restrict:
        log_cell = jnp.log(g.cell_volume)
        lq = lq - jax.scipy.special.logsumexp(lq + log_cell)
        lp = lp - jax.scipy.special.logsumexp(lp + log_cell)
        return on_grid(name, lq, lp, g.cell_volume)
    for label, values in (("q", lq), ("p", lp)):
        mass = float(jnp.sum(jnp.exp(values)) * g.cell_volume)
        if not abs(mass - 1.0) <= 1.0 - min_mass:
            raise ValueError(f"the grid holds mass {mass:.4f} of {label}; expected 1 within {1 - min_mass:.0e}: "
                             "widen or refine the grid (or normalise the density)")
    return on_grid(name, lq, lp, g.cell_volume)


class Optimum(NamedTuple):
    mean: float
    std: float
    value: float  # D_f(N(mean, std²) ‖ p) by quadrature


def gaussian_optima_1d(name: str, log_p, g: Grid, start_means, start_stds=(0.3, 1.0, 3.0)) -> list:
    """Every distinct local minimum of D_f(N(m, s²) ‖ p) over (m, log s) for a 1D density given on the grid `g`
    (log_p: its values at g.points), found by scipy's BFGS from each (start mean, start std) pair; sorted by value.
    Minima closer than 0.01 in both m and s are merged (Part II, "Mixtures in 1D")."""
    import scipy.optimize

    if len(g.shape) != 1:
        raise ValueError(f"gaussian_optima_1d needs a 1D grid; got a grid of shape {g.shape}")
    get(name)
    x = g.points[:, 0]
    log_p = jnp.asarray(log_p)

    def objective(theta):
        log_q = -0.5 * ((x - theta[0]) / jnp.exp(theta[1])) ** 2 - theta[1] - 0.5 * jnp.log(2 * jnp.pi)
        return on_grid(name, log_q, log_p, g.cell_volume)

    value_and_grad = jax.jit(jax.value_and_grad(objective))
    found = {}
    for m0 in np.asarray(start_means, dtype=float):
        for s0 in np.asarray(start_stds, dtype=float):
            r = scipy.optimize.minimize(lambda t: tuple(np.asarray(v, np.float64) for v in value_and_grad(jnp.asarray(t))),
                                        [m0, np.log(s0)], jac=True, method="BFGS")
            optimum = Optimum(float(r.x[0]), float(np.exp(r.x[1])), float(r.fun))
            found.setdefault((round(optimum.mean, 2), round(optimum.std, 2)), optimum)
    return sorted(found.values(), key=lambda o: o.value)
