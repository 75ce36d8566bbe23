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
    integrand_log: Callable  # q f(p/q) as a function of (log q, log p), finite wherever its value is


def _kl_integrand(log_a, log_b):
    """a log(a/b), the integrand of KL(a ‖ b); 0 where a = 0 (a log a → 0), with a finite gradient there."""
    present = log_a > -jnp.inf
    safe_a = jnp.where(present, log_a, 0.0)
    return jnp.where(present, jnp.exp(safe_a) * (safe_a - log_b), 0.0)


def _chi2_integrand(log_q, log_p):
    """(p − q)²/q, written so that neither factor overflows where the other underflows: p²/q (1 − q/p)² where
    p ≥ q, q (p/q − 1)² where p < q (each second factor lies in [0, 1]); the other branch is exactly 0."""
    s = log_p - log_q
    above, below = jnp.maximum(s, 0.0), jnp.minimum(s, 0.0)
    return jnp.exp(log_p + above) * jnp.expm1(-above) ** 2 + jnp.exp(log_q) * jnp.expm1(below) ** 2


DIVERGENCES = {
    "reverse_kl": Divergence("reverse_kl", lambda r: -jnp.log(r), lambda r: jnp.log(r) - 1.0,
                             lambda s: -s, lambda s: s - 1.0, _kl_integrand),
    "forward_kl": Divergence("forward_kl", lambda r: r * jnp.log(r), lambda r: r,
                             lambda s: s * jnp.exp(s), jnp.exp, lambda lq, lp: _kl_integrand(lp, lq)),
    "chi2": Divergence("chi2", lambda r: (r - 1.0) ** 2, lambda r: r**2 - 1.0,
                       lambda s: jnp.expm1(s) ** 2, lambda s: jnp.expm1(2.0 * s), _chi2_integrand),
    "hellinger": Divergence("hellinger", lambda r: (jnp.sqrt(r) - 1.0) ** 2, lambda r: jnp.sqrt(r) - 1.0,
                            lambda s: jnp.expm1(0.5 * s) ** 2, lambda s: jnp.expm1(0.5 * s),
                            lambda lq, lp: (jnp.exp(0.5 * lp) - jnp.exp(0.5 * lq)) ** 2),
}


def get(name: str) -> Divergence:
    """The f-divergence called `name`; an unknown name raises a ValueError listing the known ones."""
    check_choice(name, tuple(DIVERGENCES), "divergence")
    return DIVERGENCES[name]


def on_grid(name: str, log_q, log_p, cell_volume: float) -> jnp.ndarray:
    """D_f(q ‖ p) = Σ q f(p/q) ΔV by quadrature over grid cells, from log densities evaluated on the grid.
    Both densities must be normalised and the grid must hold essentially all of both masses.

    Each cell's term is computed from the two logs (`Divergence.integrand_log`: p log(p/q) for the forward KL,
    (√p − √q)² for Hellinger, …), never as q times f(p/q): where q underflows to 0 and p does not, that product
    is 0 × ∞, whose value and gradient are NaN. The value is +∞ only where the divergence's terms really
    exceed the float range (χ² of a q much narrower than p)."""
    div = get(name)
    log_q, log_p = jnp.asarray(log_q), jnp.asarray(log_p)
    if log_q.shape != log_p.shape:
        raise ValueError(f"log_q and log_p must be evaluated on the same grid; got shapes {log_q.shape} and {log_p.shape}")
    if not cell_volume > 0:
        raise ValueError(f"cell_volume must be positive; got {cell_volume}")
    return jnp.sum(div.integrand_log(log_q, log_p)) * cell_volume


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


def gaussian_optima_1d(name: str, log_p, g: Grid, start_means, start_stds=(0.3, 1.0, 3.0),
                       min_mass: float = 0.999) -> list:
    """Every distinct local minimum of D_f(N(m, s²) ‖ p) over (m, log s) for a 1D density given on the grid `g`
    (log_p: its values at g.points), found by scipy's BFGS from each (start mean, start std) pair; sorted by value.
    Minima closer than 0.01 in both m and s are merged (Part II, "Mixtures in 1D").

    A run counts only if BFGS reports convergence at a finite value and the grid holds at least `min_mass` of
    its Gaussian: a start whose divergence overflows (χ² from a Gaussian much narrower than p) cannot move, and a
    Gaussian wider than the grid has a quadrature that misses its mass, so either would be listed as a spurious
    minimum. Raises a ValueError when no start gives such a run."""
    import scipy.optimize

    if len(g.shape) != 1:
        raise ValueError(f"gaussian_optima_1d needs a 1D grid; got a grid of shape {g.shape}")
    get(name)
    x = g.points[:, 0]
    log_p = jnp.asarray(log_p)

    def log_q(theta):
        return -0.5 * ((x - theta[0]) / jnp.exp(theta[1])) ** 2 - theta[1] - 0.5 * jnp.log(2 * jnp.pi)

    value_and_grad = jax.jit(jax.value_and_grad(lambda theta: on_grid(name, log_q(theta), log_p, g.cell_volume)))
    found, starts = {}, 0
    for m0 in np.asarray(start_means, dtype=float):
        for s0 in np.asarray(start_stds, dtype=float):
            starts += 1
            r = scipy.optimize.minimize(lambda t: tuple(np.asarray(v, np.float64) for v in value_and_grad(jnp.asarray(t))),
                                        [m0, np.log(s0)], jac=True, method="BFGS")
            held = float(jnp.sum(jnp.exp(log_q(jnp.asarray(r.x)))) * g.cell_volume)
            if not (r.success and np.isfinite(r.fun) and held >= min_mass):
                continue
            optimum = Optimum(float(r.x[0]), float(np.exp(r.x[1])), float(r.fun))
            found.setdefault((round(optimum.mean, 2), round(optimum.std, 2)), optimum)
    if not found:
        raise ValueError(f"none of the {starts} starts converged to a finite {name} whose Gaussian the grid holds; "
                         "try wider starting standard deviations or a wider grid")
    return sorted(found.values(), key=lambda o: o.value)
