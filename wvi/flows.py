"""Wasserstein gradient flows of KL(q‖p): the Bures–Wasserstein (BW) flow of Gaussians and Langevin particles.

Restricted to Gaussians q = N(m, Σ), the Wasserstein gradient flow of KL(q‖p) moves (m, Σ) with the velocity ::

    ṁ = E_q[g(x)],     Σ̇ = E_q[g(x)(x - m)ᵀ + (x - m) g(x)ᵀ],     g = ∇log p - ∇log q,

which by Stein's lemma equals ṁ = E_q[∇log p], Σ̇ = 2I + E_q[∇²log p] Σ + Σ E_q[∇²log p]. For a Gaussian target
p = N(mp, Σp) the expectations are closed form: ṁ = -Σp⁻¹(m - mp), Σ̇ = 2I - Σp⁻¹Σ - ΣΣp⁻¹ (derived in Part I,
"The Riemannian submersion"; used in "ODE vs BBVI on a 2D Gaussian").

Provided here: the closed-form and the sample-based velocity, the sample-based forward Euler scheme (the authors'
"ODE evolution"), forward Euler with exact velocities in Σ and in S (all three `Algorithm`s), an accurate solve with scipy's
`solve_ivp`, unadjusted Langevin particles, whose law follows the unrestricted Wasserstein flow of KL, and Stein
variational gradient descent (SVGD), the kernelised deterministic particle version of that flow (Part II).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.integrate import solve_ivp

from wvi import gaussian as G
from wvi._checks import check_finite, check_ndim
from wvi.algorithm import Algorithm, resample_particles


class BWState(NamedTuple):
    """A Gaussian tracked by its mean (d,) and covariance (d, d), as the BW flow moves them."""

    mean: jax.Array
    cov: jax.Array

    @property
    def approximation(self) -> G.Gaussian:
        """N(m, Σ) (`to_gaussian`)."""
        return to_gaussian(self)

    def sample(self, key, num_samples: int) -> jax.Array:
        """Draws (num_samples, d) from N(m, Σ)."""
        return G.sample(key, self.approximation, num_samples)


class BWInfo(NamedTuple):
    loss: jax.Array  # Monte Carlo estimate of KL(q‖p) − log Z at q before the step: mean of −log p(x_i) − H(q)
    mean_speed: jax.Array  # ‖ṁ‖ of the velocity used in the step
    cov_speed: jax.Array  # ‖Σ̇‖_F of the velocity used in the step


class ParticleState(NamedTuple):
    particles: jax.Array  # (n, d)

    @property
    def approximation(self) -> jax.Array:
        """The particles, an (n, d) array whose empirical measure is the approximation."""
        return self.particles

    def sample(self, key, num_samples: int) -> jax.Array:
        """Particles drawn with replacement, (num_samples, d)."""
        return resample_particles(key, self.particles, num_samples)


class ParticleInfo(NamedTuple):
    loss: jax.Array  # mean over particles of −log p(x) before the step: the potential part of KL(ρ‖p) − log Z
    #   (the entropy part has no estimate from n particles); a proxy, not the objective itself
    mean_drift: jax.Array  # mean over particles of ‖∇log p(x)‖


class SVGDState(NamedTuple):
    particles: jax.Array  # (n, d)
    opt_state: optax.OptState

    @property
    def approximation(self) -> jax.Array:
        """The particles, an (n, d) array whose empirical measure is the approximation."""
        return self.particles

    def sample(self, key, num_samples: int) -> jax.Array:
        """Particles drawn with replacement, (num_samples, d)."""
        return resample_particles(key, self.particles, num_samples)


def bw_state(q: G.AnyGaussian) -> BWState:
    """(m, Σ) of a Gaussian."""
    return BWState(q.mean, G.covariance(q))


def to_gaussian(state: BWState) -> G.Gaussian:
    """N(m, Σ) with the Cholesky factor of Σ as its scale."""
    return G.Gaussian(state.mean, jnp.linalg.cholesky(state.cov))


def bw_velocity_gaussian(mean, cov, target: G.AnyGaussian):
    """Exact BW velocity of KL(N(m, Σ)‖p) for a Gaussian target: (-Σp⁻¹(m - mp), 2I - Σp⁻¹Σ - ΣΣp⁻¹)."""
    G.check(target, "target")
    precision = jnp.linalg.inv(G.covariance(target))
    d_mean = -precision @ (mean - target.mean)
    pc = precision @ cov
    return d_mean, 2.0 * jnp.eye(mean.shape[0], dtype=cov.dtype) - pc - pc.T


def bw_velocity_samples(mean, scale, noise, grad_log_density: Callable):
    """Sample estimate of the BW velocity from x_i = m + S z_i, with g = ∇log p(x) - ∇log q(x) computed exactly.

    ∇log q(x) = -Σ⁻¹(x - m) = -S⁻ᵀz, so g_i = ∇log p(x_i) + S⁻ᵀ z_i. Returns (mean of g, mean of g(x-m)ᵀ + (x-m)gᵀ).
    """
    dx = noise @ scale.T
    g = jax.vmap(grad_log_density)(mean + dx) + jnp.linalg.solve(scale.T, noise.T).T
    outer = g.T @ dx / noise.shape[0]
    return jnp.mean(g, axis=0), outer + outer.T


def bw_euler(log_density: Callable, step_size: float, num_samples: int) -> Algorithm:
    """Forward Euler of the BW flow with the sample-based velocity (Yi & Liu's "ODE evolution").

    init(q0) -> BWState;  step(key, state): draw z, x = m + L z with L = chol(Σ), then
    m ← m + η mean(g),  Σ ← Σ + η mean(g(x - m)ᵀ + (x - m)gᵀ).
    """
    if not step_size > 0:
        raise ValueError(f"step_size must be positive; got {step_size!r}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
    grad_log_density = jax.grad(log_density)
    batch_log_density = jax.vmap(log_density)

    def init(q0: G.AnyGaussian) -> BWState:
        G.check(q0, "q0")
        return bw_state(q0)

    def step(key, state: BWState):
        noise = jax.random.normal(key, (num_samples, state.mean.shape[0]), dtype=state.mean.dtype)
        scale = jnp.linalg.cholesky(state.cov)
        d_mean, d_cov = bw_velocity_samples(state.mean, scale, noise, grad_log_density)
        new = BWState(state.mean + step_size * d_mean, state.cov + step_size * d_cov)
        # H(q) = d/2 (1 + log 2π) + Σ log L_ii, unvalidated: a step must run (and `run` report) where Σ stopped
        # being positive definite and L holds NaNs
        d = state.mean.shape[0]
        entropy = 0.5 * d * (1.0 + jnp.log(2 * jnp.pi)) + jnp.sum(jnp.log(jnp.abs(jnp.diagonal(scale))))
        loss = -jnp.mean(batch_log_density(state.mean + noise @ scale.T)) - entropy
        return new, BWInfo(loss, jnp.linalg.norm(d_mean), jnp.linalg.norm(d_cov))

    return Algorithm(init, step)


def _exact_kl(mean, cov, target: G.AnyGaussian):
    """KL(N(m, Σ)‖p) for a Gaussian p, with the log of the absolute determinant of Σ: finite while Σ is invertible,
    so that `run` reports where an unstable scheme's entries overflow, not where Σ first leaves the PD cone."""
    precision = jnp.linalg.inv(G.covariance(target))
    diff = mean - target.mean
    log_det_p = jnp.linalg.slogdet(G.covariance(target))[1]
    return 0.5 * (jnp.trace(precision @ cov) + diff @ precision @ diff - mean.shape[0] + log_det_p
                  - jnp.linalg.slogdet(cov)[1])


def _check_exact_args(target, step_size):
    G.check(target, "target")
    if not (np.isscalar(step_size) and np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive number; got {step_size!r}")


def bw_euler_exact(target: G.AnyGaussian, step_size: float) -> Algorithm:
    """Forward Euler of the BW flow with the exact velocity for a Gaussian target p = N(mp, Σp)::

        m ← m − η Σp⁻¹(m − mp),     Σ ← Σ + η (2I − Σp⁻¹Σ − ΣΣp⁻¹)     (`bw_velocity_gaussian`).

    init(q0) -> BWState; step(key, state) -> (BWState, BWInfo), the key unused (the scheme is deterministic); the
    info's loss is the exact KL(q‖p) before the step (with the log of the absolute determinant of Σ). Part I,
    "ODE vs BBVI on a 2D Gaussian", section 3. `wvi.algorithm.run` with `trace_fn=wvi.algorithm.trace_state` gives
    the iterates.
    """
    _check_exact_args(target, step_size)

    def init(q0: G.AnyGaussian) -> BWState:
        G.check(q0, "q0")
        G.check_same_dim(q0, target, ("q0", "target"))
        return bw_state(q0)

    def step(key, state: BWState):
        d_mean, d_cov = bw_velocity_gaussian(state.mean, state.cov, target)
        new = BWState(state.mean + step_size * d_mean, state.cov + step_size * d_cov)
        return new, BWInfo(_exact_kl(state.mean, state.cov, target), jnp.linalg.norm(d_mean), jnp.linalg.norm(d_cov))

    return Algorithm(init, step)


class ScaleState(NamedTuple):
    """A Gaussian N(m, SSᵀ) moved through its parameters (m, S)."""

    q: G.Gaussian

    @property
    def approximation(self) -> G.Gaussian:
        """The Gaussian itself."""
        return self.q

    def sample(self, key, num_samples: int) -> jax.Array:
        """Draws (num_samples, d) from q."""
        return G.sample(key, self.q, num_samples)


class ScaleInfo(NamedTuple):
    loss: jax.Array  # the exact KL(q‖p) before the step
    grad_norm: jax.Array  # ‖(∇_m KL, ∇_S KL)‖


def scale_euler_exact(target: G.AnyGaussian, step_size: float) -> Algorithm:
    """Forward Euler on (m, S) with the exact gradient of KL(q‖p) for a Gaussian target: the expected BBVI step, ::

        m ← m − η ∇_m KL,     S ← S − η ∇_S KL.

    Both BBVI estimators are unbiased for this gradient; pushed through π(S) = SSᵀ one step is `bw_euler_exact`'s
    step plus η²VVᵀ, V = −∇_S KL (Part I, "The Riemannian submersion"). init(q0: Gaussian) -> ScaleState;
    step(key, state) -> (ScaleState, ScaleInfo), the key unused.
    """
    _check_exact_args(target, step_size)
    kl_and_gradient = jax.value_and_grad(G.kl)

    def init(q0: G.Gaussian) -> ScaleState:
        G.check(q0, "q0")
        G.check_same_dim(q0, target, ("q0", "target"))
        if not isinstance(q0, G.Gaussian):
            raise ValueError(f"q0 must be a full-covariance Gaussian (mean, scale); got {type(q0).__name__}")
        return ScaleState(q0)

    def step(key, state: ScaleState):
        loss, grad = kl_and_gradient(state.q, target)
        q = jax.tree_util.tree_map(lambda w, g: w - step_size * g, state.q, grad)
        grad_norm = jnp.sqrt(sum(jnp.vdot(g, g) for g in jax.tree_util.tree_leaves(grad)))
        return ScaleState(q), ScaleInfo(loss, grad_norm)

    return Algorithm(init, step)


def solve_bw_ode(q0: G.AnyGaussian, target: G.AnyGaussian, times, rtol: float = 1e-11, atol: float = 1e-12) -> BWState:
    """Accurate solution of the BW flow toward a Gaussian target with scipy's `solve_ivp` (DOP853).

    `times`: increasing times ≥ 0 (the first may be 0). Returns a BWState stacking (m(t), Σ(t)) at those times, in
    float64 NumPy arrays.
    """
    G.check(q0, "q0")
    G.check(target, "target")
    G.check_same_dim(q0, target, ("q0", "target"))
    times = np.asarray(times, dtype=np.float64)
    check_ndim(times, 1, "times", "a vector of increasing times")
    check_finite(times, "times")
    if times[0] < 0 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be non-negative and strictly increasing")
    d = G.dim(q0)
    precision = np.linalg.inv(np.asarray(G.covariance(target), dtype=np.float64))
    mp = np.asarray(target.mean, dtype=np.float64)

    def rhs(_, y):
        m, cov = y[:d], y[d:].reshape(d, d)
        pc = precision @ cov
        return np.concatenate([-precision @ (m - mp), (2.0 * np.eye(d) - pc - pc.T).ravel()])

    y0 = np.concatenate([np.asarray(q0.mean, np.float64), np.asarray(G.covariance(q0), np.float64).ravel()])
    sol = solve_ivp(rhs, (0.0, float(times[-1])), y0, method="DOP853", t_eval=times, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    y = sol.y.T
    cov = y[:, d:].reshape(-1, d, d)
    return BWState(y[:, :d], 0.5 * (cov + np.swapaxes(cov, 1, 2)))


def _checked_particles(particles) -> jax.Array:
    particles = jnp.asarray(particles)
    check_ndim(particles, 2, "particles", "an array of shape (num_particles, d)")
    check_finite(particles, "particles")
    return particles


def langevin(log_density: Callable, step_size: float) -> Algorithm:
    """Unadjusted Langevin particles: x ← x + η∇log p(x) + √(2η) ξ, ξ ~ N(0, I).

    init(particles of shape (n, d)) -> ParticleState. As η → 0 the particles' law follows the Wasserstein gradient
    flow of KL(·‖p) (Fokker–Planck); for a Gaussian target it is an Ornstein–Uhlenbeck process.
    """
    if not step_size > 0:
        raise ValueError(f"step_size must be positive; got {step_size!r}")
    value_and_grad = jax.vmap(jax.value_and_grad(log_density))

    def init(particles) -> ParticleState:
        return ParticleState(_checked_particles(particles))

    def step(key, state: ParticleState):
        x = state.particles
        log_p, drift = value_and_grad(x)
        noise = jax.random.normal(key, x.shape, dtype=x.dtype)
        new = x + step_size * drift + jnp.sqrt(2.0 * step_size) * noise
        return ParticleState(new), ParticleInfo(-jnp.mean(log_p), jnp.mean(jnp.linalg.norm(drift, axis=-1)))

    return Algorithm(init, step)


def svgd_direction(x, grad_log_p, bandwidth):
    """φ(x_i) = (1/n) Σ_j [k(x_j, x_i) ∇log p(x_j) + ∇_{x_j} k(x_j, x_i)], k(x, y) = exp(−‖x − y‖²/h).

    The first term pulls particles toward high density, the second pushes them apart (Liu & Wang, 2016)."""
    diff = x[:, None, :] - x[None, :, :]  # diff[j, i] = x_j − x_i
    k = jnp.exp(-jnp.sum(diff**2, axis=-1) / bandwidth)  # k[j, i]
    attraction = k.T @ grad_log_p
    repulsion = -2.0 / bandwidth * jnp.einsum("ji,jid->id", k, diff)
    return (attraction + repulsion) / x.shape[0]


def median_bandwidth(x):
    """Liu & Wang's heuristic h = med²/log n, med the median pairwise distance between the particles."""
    sq = jnp.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    n = x.shape[0]
    return jnp.median(sq[jnp.triu_indices(n, k=1)]) / jnp.log(n)


def svgd(log_density: Callable, optimizer: optax.GradientTransformation, bandwidth="median") -> Algorithm:
    """Stein variational gradient descent: particles x ← x + update(φ(x)) (`svgd_direction`), with `optimizer`
    applied to −φ (so `optax.sgd(η)` is the plain x ← x + ηφ). `bandwidth`: a positive float h or "median".

    init(particles of shape (n, d)) -> SVGDState; step(key, state) (the key is unused: SVGD is deterministic).
    """
    if bandwidth != "median" and not (isinstance(bandwidth, (int, float)) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number or 'median'; got {bandwidth!r}")
    value_and_grad = jax.vmap(jax.value_and_grad(log_density))

    def init(particles) -> SVGDState:
        particles = _checked_particles(particles)
        if particles.shape[0] < 2:
            raise ValueError(f"SVGD needs at least 2 particles; got {particles.shape[0]}")
        return SVGDState(particles, optimizer.init(particles))

    def step(key, state: SVGDState):
        del key
        x = state.particles
        log_p, g = value_and_grad(x)
        h = median_bandwidth(x) if bandwidth == "median" else bandwidth
        phi = svgd_direction(x, g, h)
        updates, opt_state = optimizer.update(-phi, state.opt_state, x)
        info = ParticleInfo(-jnp.mean(log_p), jnp.mean(jnp.linalg.norm(g, axis=-1)))
        return SVGDState(optax.apply_updates(x, updates), opt_state), info

    return Algorithm(init, step)


COINCIDE_TOL = 0.1
"""Two trajectories coincide (`coincide`) when their gap is at most this fraction of the distance still to go."""


def relative_gap(qs: G.AnyGaussian, reference: G.AnyGaussian, target: G.AnyGaussian) -> np.ndarray:
    """W2(q_t, r_t) / W2(r_t, p) at every iterate t of two stacked Gaussian trajectories (leading axis t).

    By the triangle inequality ``|W2(q_t, p) − W2(r_t, p)| ≤ W2(q_t, r_t)``, so a relative gap ≤ 0.1 at every t puts
    the two curves of the distance to the target within 10% of each other on a log axis (Part I, "ODE vs BBVI").
    Unlike comparing the two distances to p, it measures how far apart the two Gaussians themselves are."""
    G.check(target, "target")
    return np.asarray(_relative_gap(qs, reference, target))


def _relative_gap(qs, reference, target) -> jax.Array:
    """`relative_gap` as a traceable function of stacked trajectories (no checks, no conversion)."""
    return jax.vmap(G.w2)(qs, reference) / jax.vmap(lambda r: G.w2(r, target))(reference)


def largest_relative_gaps(qs: G.AnyGaussian, reference: G.AnyGaussian, target: G.AnyGaussian) -> np.ndarray:
    """max over t of `relative_gap`, for each replica: `qs` has axes (t, replica), as `algorithm.run` traces a
    `replicate`d algorithm; `reference` has the same axes (replica r compared with replica r: two methods run on
    independent seeds) or only t (one reference, e.g. the exact flow, for every replica). Returns an array of shape
    (replica,). A figure drawn from one run shows one draw of these: Part I, "ODE vs BBVI", judges a claim that two
    methods coincide by their median and 95th percentile over seeds."""
    G.check(target, "target")
    q_axes, ref_axes = jnp.shape(qs.mean)[:-1], jnp.shape(reference.mean)[:-1]  # full-covariance Gaussians
    if len(q_axes) != 2 or ref_axes not in (q_axes, q_axes[:1]):
        raise ValueError(f"qs must have axes (t, replica) and reference (t,) or (t, replica) with the same t; got "
                         f"{q_axes} and {ref_axes}")
    ref_axis = 1 if len(ref_axes) == 2 else None
    largest = jax.vmap(lambda q, r: jnp.max(_relative_gap(q, r, target)), in_axes=(1, ref_axis))
    return np.asarray(largest(qs, reference))


def coincidence_verdict(gaps, tol: float = COINCIDE_TOL) -> str:
    """The verdict on "two methods coincide" from each seed's largest relative gap (`largest_relative_gaps`):
    "reproduced" when the 95th percentile over seeds is ≤ `tol` (nearly every run coincides), "partly reproduced"
    when only the median is (a typical run does), "not reproduced" otherwise (Part I, "ODE vs BBVI", section 1)."""
    from wvi.report import verdict_of

    gaps = np.asarray(gaps, float)
    if gaps.ndim != 1 or gaps.size < 2:
        raise ValueError(f"gaps must be one largest gap per seed, at least 2 of them; got shape {gaps.shape}")
    return verdict_of(np.median(gaps) <= tol, np.percentile(gaps, 95) <= tol)


@jax.jit
def w2_along(means_a, covs_a, means_b, covs_b) -> jax.Array:
    """W2 at equal times between two Gaussian trajectories, given as means (T, d) and covariances (T, d, d): one
    value per time (`gaussian.w2` of each pair of iterates)."""
    return jax.vmap(lambda m1, c1, m2, c2: G.w2(G.Gaussian(m1, jnp.linalg.cholesky(c1)),
                                                G.Gaussian(m2, jnp.linalg.cholesky(c2))))(means_a, covs_a, means_b,
                                                                                         covs_b)


def one_flow_gaps(paths: dict, seeds) -> tuple:
    """The two gaps `one_flow_verdict` compares, from Gaussian trajectories `paths[(method, seed)] = (means (T, d),
    covariances (T, d, d))`, every method run from the same start with every seed in `seeds` (an even number of
    seeds, and with the same seed every method draws the same noise). Returns the pair (between_methods,
    seed_pair_gaps): the largest W2 at equal times between two methods run with the same seed, over every seed; and
    for each disjoint pair of consecutive seeds (seeds[0], seeds[1]), (seeds[2], seeds[3]), ..., the largest W2 at
    equal times between the pair's two runs of a method, averaged over the methods (which share the pair's noise,
    so their gaps are nearly one number; the pairs are independent)."""
    seeds = list(seeds)
    methods = sorted({m for m, _ in paths})
    if len(seeds) < 4 or len(seeds) % 2:
        raise ValueError(f"seeds must be an even number of seeds, at least 4 (two pairs); got {seeds}")
    missing = [(m, s) for m in methods for s in seeds if (m, s) not in paths]
    if len(methods) < 2 or missing:
        raise ValueError(f"paths must hold every method (at least 2) for every seed; missing {missing[:3]}")

    def gap(a, b):
        return float(jnp.max(w2_along(*a, *b)))

    between_methods = max(gap(paths[a, s], paths[b, s]) for i, a in enumerate(methods) for b in methods[i + 1:]
                          for s in seeds)
    pair_gaps = np.array([np.mean([gap(paths[m, s], paths[m, t]) for m in methods])
                          for s, t in zip(seeds[::2], seeds[1::2])])
    return between_methods, pair_gaps


def one_flow_verdict(between_methods: float, seed_pair_gaps, k: float = 3.0) -> str:
    """Do several discretisations of one flow, driven by the same noise, follow it? (Part II, "Rosenbrock", section
    2.) The yardstick is the spread between seeds: `seed_pair_gaps` holds one gap per independent pair of seeds
    (each the largest W2 along the path between the two seeds' runs, averaged over the methods, which share the
    pair's noise), with mean g and standard error s over the n pairs. Against it, `between_methods` is the largest
    W2 along the path between two methods run with the same seed, over every seed. "reproduced" when
    between_methods < g − k·s (the methods are closer to each other than the seeds are, beyond the seeds' noise),
    "not reproduced" when between_methods ≥ g (no closer than two seeds of one method), otherwise "not testable at
    this scale" (too few pairs to tell)."""
    gaps = np.asarray(seed_pair_gaps, float)
    if gaps.ndim != 1 or gaps.size < 2 or not np.all(np.isfinite(gaps)):
        raise ValueError(f"seed_pair_gaps must be one finite gap per independent pair of seeds, at least 2; got "
                         f"{gaps.tolist() if gaps.size < 10 else gaps.shape}")
    mean, se = gaps.mean(), gaps.std(ddof=1) / np.sqrt(gaps.size)
    if between_methods < mean - k * se:
        return "reproduced"
    return "not reproduced" if between_methods >= mean else "not testable at this scale"


def coincide(qs: G.AnyGaussian, reference: G.AnyGaussian, target: G.AnyGaussian, tol: float = COINCIDE_TOL) -> bool:
    """The book's rule for "two discretisations coincide": `relative_gap` ≤ `tol` at every iterate."""
    return bool(np.max(relative_gap(qs, reference, target)) <= tol)
