"""Paths between two mean-field Gaussian posteriors, and the loss barrier along them.

* W2 geodesic: between mean-field Gaussians the Wasserstein-2 geodesic interpolates means and standard deviations
  linearly, q_τ = N((1−τ)m0 + τ m1, diag((1−τ)s0 + τ s1)²), and W2²(q0, q1) = ‖m0 − m1‖² + ‖s0 − s1‖²
  (`wvi.gaussian.geodesic` and `wvi.gaussian.w2_squared` on the `wvi.gaussian.MeanField`s that `wvi.bnn` trains).
* Mixture path: q_τ = (1−τ) q0 + τ q1, whose predictive density is the same mixture of the two predictives.

The functional loss barrier (Rossi et al., Def. 3 in Sec. 3; 25 evenly spaced τ as in their Sec. 5). The paper writes
it with the predictive log likelihood L summed over the data; here the loss is ℓ(q) = −L(q)/N, the negative
predictive log likelihood in nats per data point, so that a barrier is a rise of the loss above the chord:

    B(q0, q1) = max_τ [ ℓ(q_τ) − ((1−τ) ℓ(q0) + τ ℓ(q1)) ].

Every τ uses the same sample keys (common random numbers), so the curve is smooth in τ. On the mixture path the
barrier is always 0: log is concave, so ℓ((1−τ)q0 + τq1) ≤ (1−τ)ℓ(q0) + τℓ(q1) point by point (Jensen).

`naive_and_aligned` aligns q1 to q0 and measures both barriers; `Plane` spans the 2D slice of parameter space
through three parameter vectors (the paper's Fig. 6). Chapters: Part V.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax.flatten_util import ravel_pytree

from wvi import align, bnn
from wvi import gaussian as G
from wvi._checks import check_choice

PATHS = ("geodesic", "mixture")


class BarrierCurve(NamedTuple):
    """`taus` (T,), `losses` (T,) the negative predictive log likelihood per data point at each τ, `barrier` B,
    `tau_max` where it is attained."""

    taus: np.ndarray
    losses: np.ndarray
    barrier: float
    tau_max: float


def barrier_from_losses(taus, losses) -> tuple[float, float]:
    """B = max_τ [ℓ(τ) − ((1−τ)ℓ(0) + τ ℓ(1))] and the τ attaining it, for losses on a grid from τ = 0 to 1."""
    taus, losses = np.asarray(taus, float), np.asarray(losses, float)
    if taus.ndim != 1 or taus.shape != losses.shape or taus[0] != 0.0 or taus[-1] != 1.0:
        raise ValueError("taus must be a 1D grid from 0 to 1 and losses one value per tau")
    if not np.all(np.isfinite(losses)):
        raise ValueError(f"losses hold non-finite values at tau = {taus[~np.isfinite(losses)].round(3).tolist()}")
    gap = losses - ((1 - taus) * losses[0] + taus * losses[-1])
    i = int(np.argmax(gap))
    return float(gap[i]), float(taus[i])


def loss_curve(key, q0: G.MeanField, q1: G.MeanField, apply_fn: Callable, x, y, num_taus: int = 25,
               num_samples: int = 128, path: str = "geodesic", likelihood: str = "categorical",
               noise_std: float = 1.0, batch: int = 16) -> BarrierCurve:
    """ℓ(q_τ) = −mean_n log (1/S) Σ_s p(y_n | x_n, θ_s), θ_s ~ q_τ, along `path` on `num_taus` evenly spaced τ,
    and the barrier. The same `key` draws the samples at every τ (and, on the mixture path, for both ends)."""
    check_choice(path, PATHS, "path")
    if not (isinstance(num_taus, (int, np.integer)) and num_taus >= 2):
        raise ValueError(f"num_taus must be an integer >= 2; got {num_taus!r}")
    taus = np.linspace(0.0, 1.0, num_taus)

    def density(q):
        return bnn.predictive_log_density(key, q, apply_fn, x, y, num_samples, likelihood, noise_std, batch)

    if path == "geodesic":
        losses = [-float(jnp.mean(density(G.geodesic(q0, q1, t)))) for t in taus]
    else:
        d0, d1 = density(q0), density(q1)
        losses = [-float(jnp.mean(jnp.logaddexp(jnp.log1p(-t) + d0 if t < 1 else -jnp.inf,
                                                jnp.log(t) + d1 if t > 0 else -jnp.inf))) for t in taus]
    losses = np.asarray(losses)
    barrier, tau_max = barrier_from_losses(taus, losses)
    return BarrierCurve(taus, losses, barrier, tau_max)


class NaiveAndAligned(NamedTuple):
    """`alignment` (a `wvi.align.Alignment`), `q1_aligned` = P#q1, and loss curves `naive[split]`, `aligned[split]`
    along the W2 geodesic from q0 to q1 and to P#q1."""

    alignment: align.Alignment
    q1_aligned: G.MeanField
    naive: dict
    aligned: dict


def naive_and_aligned(key, q0: G.MeanField, q1: G.MeanField, spec: align.PermutationSpec, apply_fn: Callable,
                      splits: dict, cost: str = "wasserstein", num_taus: int = 25, num_samples: int = 128,
                      likelihood: str = "categorical", noise_std: float = 1.0, batch: int = 16) -> NaiveAndAligned:
    """Align q1 to q0 (`align.align` with `cost`, sweep order from `key`) and compute the loss curves from q0 to q1
    and to P#q1 on each data split of `splits` ({name: (x, y)}), all with the same evaluation key."""
    k_align, k_eval = jax.random.split(key)
    alignment = align.align(q0, q1, spec, cost=cost, key=k_align)
    q1_aligned = align.permute(q1, spec, alignment.perms)
    curves = {}
    for label, q in (("naive", q1), ("aligned", q1_aligned)):
        curves[label] = {name: loss_curve(k_eval, q0, q, apply_fn, x, y, num_taus, num_samples, "geodesic",
                                          likelihood, noise_std, batch) for name, (x, y) in splits.items()}
    return NaiveAndAligned(alignment, q1_aligned, curves["naive"], curves["aligned"])


class Plane(NamedTuple):
    """The plane through three parameter vectors θ_a, θ_b, θ_c (pytrees): θ(x, y) = θ_a + x·u + y·v with u along
    θ_b − θ_a and v the unit vector of θ_c − θ_a orthogonal to u. `points` holds the (x, y) of θ_a, θ_b, θ_c."""

    origin: jax.Array
    u: jax.Array
    v: jax.Array
    points: np.ndarray
    unravel: Callable


def plane(theta_a, theta_b, theta_c) -> Plane:
    """The `Plane` through three parameter pytrees of the same structure (Gram–Schmidt on their differences)."""
    a, unravel = ravel_pytree(theta_a)
    b, c = ravel_pytree(theta_b)[0], ravel_pytree(theta_c)[0]
    if not (a.shape == b.shape == c.shape):
        raise ValueError("theta_a, theta_b and theta_c must have the same structure and shapes")
    u = b - a
    norm_u = jnp.linalg.norm(u)
    w = c - a - jnp.vdot(c - a, u) / norm_u ** 2 * u
    norm_w = jnp.linalg.norm(w)
    if not (float(norm_u) > 0 and float(norm_w) > 1e-12 * float(jnp.linalg.norm(c - a))):
        raise ValueError("the three parameter vectors are collinear (or equal): they span no plane")
    u, v = u / norm_u, w / norm_w
    points = np.array([[0.0, 0.0], [float(norm_u), 0.0], [float(jnp.vdot(c - a, u)), float(norm_w)]])
    return Plane(a, u, v, points, unravel)


def plane_point(p: Plane, x: float, y: float):
    """The parameter pytree at plane coordinates (x, y)."""
    return p.unravel(p.origin + x * p.u + y * p.v)


def spread(values, digits: int = 3) -> str:
    """"mean ± std (min–max, n = k)" of barriers over k replica pairs (std with ddof = 1), for ledger rows."""
    v = np.asarray(values, float)
    if v.size < 2:
        raise ValueError("spread needs at least two values")
    return (f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} ({v.min():.{digits}f}–{v.max():.{digits}f}, "
            f"n = {v.size})")


def alignment_verdict(naive, aligned, fraction: float, min_naive: float = 0.0, min_pairs: int = 3) -> str:
    """The verdict on "alignment removes the barrier" (Rossi et al., Figs. 1 and 4) over independent replica pairs,
    the rule the Part V chapters and their planted-defect tests share: a pair meets the claim when its naive barrier
    exceeds `min_naive` and its aligned barrier is below `fraction` times the naive one; all pairs →
    "reproduced", none → "not reproduced", some → "partly reproduced" (`wvi.report.verdict_of`). Fewer than
    `min_pairs` pairs raise: a barrier claim rests on at least three pairs."""
    from wvi import report

    naive, aligned = np.asarray(naive, float), np.asarray(aligned, float)
    if naive.shape != aligned.shape or naive.ndim != 1 or naive.size < min_pairs:
        raise ValueError(f"need one naive and one aligned barrier for each of at least {min_pairs} pairs; got "
                         f"{naive.shape} and {aligned.shape}")
    return report.verdict_of(*((naive > min_naive) & (aligned < fraction * naive)))


def trend_verdict(first: float, last: float, seed_std: float, falls: bool = True, k: float = 3.0) -> str:
    """The verdict on a sweep's trend measured with one replica pair per point (Rossi et al., Figs. 5, 7, 8): the
    change `last` − `first` of a barrier counts only when it exceeds `k` times `seed_std`, the seed-to-seed standard
    deviation of that barrier measured over independent pairs at one point of the sweep (the difference of two
    single pairs has standard deviation √2·seed_std, so k = 3 is about two of those). A change in the expected
    direction (`falls`: the barrier should fall) → "reproduced", in the other → "not reproduced", smaller than
    k·seed_std → "not testable at this scale" (one pair per point cannot tell it from the seeds)."""
    change = float(last) - float(first)
    if abs(change) <= k * float(seed_std):
        return "not testable at this scale"
    return "reproduced" if (change < 0) == bool(falls) else "not reproduced"
