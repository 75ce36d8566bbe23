"""Gaussian VI algorithms as discretisations of the Wasserstein (or Fisher–Rao) gradient flow of KL(q‖p).

Part I showed that BBVI with the path gradient is the forward Euler scheme of the Bures–Wasserstein (BW) gradient
flow of F(q) = KL(q‖p) = E_q[V] − H(q) + log Z, V = −log p, over Gaussians q = N(m, Σ). The algorithms here
discretise the same flow (or its Fisher–Rao counterpart) differently; chapter "Gaussian VI algorithms side by side"
(Part I) derives each update and runs them all on the same problems. With g = E_q[∇V] and H = E_q[∇²V] (Monte
Carlo averages over draws x_i = m + L z_i, Σ = LLᵀ, in the algorithms below)::

    BW-SGD (Lambert et al. 2022)      m ← m − h g,  Σ ← (I − hM) Σ (I − hM),  M = H − Σ⁻¹
        the BW exponential map along the gradient field x ↦ g + M(x − m):
        explicit in V and in the entropy;
    FB-GVI (Diao et al. 2023)         m ← m − h g,  Σ½ = (I − hH) Σ (I − hH),
                                      Σ ← ½(Σ½ + 2hI + [Σ½(Σ½ + 4hI)]^½)
        forward (explicit) on the potential, backward (the exact JKO step) on the entropy;
    proximal BBVI (Domke et al. 2023) (m, S) ← prox_{−h log det}((m, S) − h Ĝ),
                                      Ĝ an estimate of ∇_{(m,S)} E_q[V], S lower
                                      triangular, the prox acting on the diagonal only:
                                      s_jj ← (s_jj + √(s_jj² + 4h)) / 2
        SGD in parameter space on the energy, the entropy's proximal operator on the scale;
    batch-and-match (Cai et al. 2024) the closed-form proximal point of a score-based
                                      divergence (`batch_and_match_update`);
    NGVI / the Bayesian learning rule (`wvi.ngvi`), the Fisher–Rao counterpart,
    and BBVI rep and path (`wvi.bbvi`).

`METHODS` names the seven with one constructor signature `(log_density, step_size, num_samples) -> Algorithm`, and
`gradients_per_step` the cost model the chapter compares them by. Each update is also a pure function of the
expectations it needs (`bw_sgd_update`, `fb_gvi_update`, `proximal_update`, `batch_and_match_update`), so that
exact expectations (`gaussian_expectations`) give the deterministic scheme of each on a Gaussian target.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import bbvi, ngvi
from wvi import gaussian as G
from wvi._checks import check_log_density, is_concrete
from wvi.algorithm import Algorithm
from wvi.flows import BWState, ScaleState


class GaussianVIInfo(NamedTuple):
    loss: jax.Array  # Monte Carlo estimate of KL(q‖p) − log Z at q before the step: mean V(x_i) − H(q)
    grad_norm: jax.Array  # ‖ĝ‖, the norm of the estimate of E_q[∇V] = −E_q[∇log p]


# ------------------------------------------------------------------------------------------------ the pure updates


def _sym(a):
    return 0.5 * (a + a.T)


def bw_sgd_update(mean, cov, grad, hessian, step_size):
    """One BW-SGD step (Lambert, Chewi, Bach, Bonnabel, Rigollet, NeurIPS 2022, §5): the BW exponential map of
    (m, Σ) along minus the gradient field x ↦ g + M(x − m), M = H − Σ⁻¹, ::

        m ← m − h g,     Σ ← (I − hM) Σ (I − hM).

    Args:
      mean: the current mean, shape (d,).
      cov: the current covariance, shape (d, d).
      grad: an estimate of E_q[∇V], shape (d,).
      hessian: an estimate of E_q[∇²V], shape (d, d).
      step_size: h > 0.
    Returns:
      (mean, cov) after the step; cov stays positive semi-definite for any h (a congruence), but loses rank where
      I − hM is singular.
    """
    eye = jnp.eye(mean.shape[0], dtype=cov.dtype)
    m_mat = _sym(hessian) - jnp.linalg.inv(cov)
    a = eye - step_size * m_mat
    return mean - step_size * grad, _sym(a @ cov @ a.T)


def entropy_jko(cov, step_size):
    """The JKO (backward) step of the negative entropy −H over Gaussians, in closed form (Diao et al. 2023, Eq. 5)::

        argmin_Σ' { −H(N(m, Σ')) + W2²(N(m, Σ'), N(m, Σ)) / (2h) }
            = ½(Σ + 2hI + [Σ(Σ + 4hI)]^½),

    computed on the eigenvalues s of Σ (Σ and Σ + 4hI commute): s ← ½(s + 2h + √(s(s + 4h))). Every eigenvalue
    becomes > h: the step is stable for any h > 0 and any Σ ⪰ 0."""
    s, u = jnp.linalg.eigh(_sym(cov))
    s = jnp.maximum(s, 0.0)
    new = 0.5 * (s + 2.0 * step_size + jnp.sqrt(s * (s + 4.0 * step_size)))
    return _sym((u * new) @ u.T)


def fb_gvi_update(mean, cov, grad, hessian, step_size):
    """One FB-GVI step (Diao, Balasubramanian, Chewi, Salim, ICML 2023, Algorithm 1): a forward (gradient) step on
    the potential energy E_q[V], then the backward (JKO) step on the entropy (`entropy_jko`)::

        m ← m − h g,     Σ½ = (I − hH) Σ (I − hH),     Σ ← ½(Σ½ + 2hI + [Σ½(Σ½ + 4hI)]^½).

    For a Gaussian target with exact g, H and h ≤ 1/L its fixed point is the target itself (the scheme is unbiased;
    above 1/L, I − hH is indefinite and the JKO step's positive root does not undo the forward step), and for an
    α-strongly convex, L-smooth V with h ≤ 1/L, W2 contracts by (1 − αh) per step (their Theorem 3).
    Args and Returns as `bw_sgd_update`."""
    eye = jnp.eye(mean.shape[0], dtype=cov.dtype)
    a = eye - step_size * _sym(hessian)
    return mean - step_size * grad, entropy_jko(a @ cov @ a.T, step_size)


def entropy_prox(scale, step_size):
    """The proximal operator of −h log det S = −h Σ_j log s_jj over lower-triangular S with a positive diagonal
    (Domke, Gower, Garrigos, NeurIPS 2023, §4): s_jj ← (s_jj + √(s_jj² + 4h)) / 2, the entries below the diagonal
    unchanged. Every diagonal entry becomes > 0 (at least √h when it was ≥ 0): the step cannot leave the family."""
    diagonal = jnp.diagonal(scale)
    new = 0.5 * (diagonal + jnp.sqrt(diagonal**2 + 4.0 * step_size))
    return jnp.tril(scale, -1) + jnp.diag(new)


def proximal_update(mean, scale, grad_mean, grad_scale, step_size):
    """One step of proximal BBVI (Domke et al. 2023): SGD on the energy E_q[V] over (m, S), S lower triangular,
    then the entropy's proximal operator (`entropy_prox`)::

        m ← m − h ĝ_m,     S ← prox_{−h log det}(S − h Ĝ_S),

    with ĝ_m, Ĝ_S estimates of ∇_m E_q[V] = E[∇V(x)] and ∇_S E_q[V] = E[∇V(x) zᵀ] (x = m + Sz); `entropy_prox`
    keeps the lower triangle, which projects the step onto the lower-triangular parameters."""
    return mean - step_size * grad_mean, entropy_prox(scale - step_size * grad_scale, step_size)


def batch_and_match_update(mean, cov, x_mean, x_cov, score_mean, score_cov, step_size):
    """One batch-and-match step (Cai, Modi, Pillaud-Vivien, Margossian, Gower, Blei, Saul, ICML 2024, Eqs. 13–14):
    the proximal point of the score-based divergence, with a KL proximity term of weight 1/λ, in closed form.

    With the batch's mean x̄ and covariance C of the draws, the mean ḡ and covariance Γ of their scores ∇log p,
    and λ = step_size, ::

        U = λΓ + λ/(1+λ) ḡḡᵀ,     V = Σ + λC + λ/(1+λ) (m − x̄)(m − x̄)ᵀ,
        Σ ← 2V (I + (I + 4UV)^½)⁻¹,     m ← m/(1+λ) + λ/(1+λ) (Σ ḡ + x̄).

    Σ is the positive definite root of Σ U Σ + Σ = V, computed symmetrically: with V = LLᵀ and LᵀUL = QΛQᵀ,
    Σ = L Q diag(2 / (1 + √(1 + 4Λ))) Qᵀ Lᵀ.

    Args:
      mean: the current mean, shape (d,).
      cov: the current covariance, shape (d, d).
      x_mean: x̄, the batch's mean, shape (d,).
      x_cov: C, the batch's covariance (1/B normalisation, as the paper), shape (d, d).
      score_mean: ḡ, the mean of the scores, shape (d,).
      score_cov: Γ, the covariance of the scores, shape (d, d).
      step_size: λ > 0 (the paper's learning rate).
    Returns:
      (mean, cov) after the step.
    """
    lam = step_size
    shift = mean - x_mean
    u = lam * _sym(score_cov) + lam / (1 + lam) * jnp.outer(score_mean, score_mean)
    v = cov + lam * _sym(x_cov) + lam / (1 + lam) * jnp.outer(shift, shift)
    chol = jnp.linalg.cholesky(_sym(v))
    eig, q = jnp.linalg.eigh(_sym(chol.T @ u @ chol))
    f = 2.0 / (1.0 + jnp.sqrt(1.0 + 4.0 * jnp.maximum(eig, 0.0)))
    root = chol @ q
    new_cov = _sym((root * f) @ root.T)
    return mean / (1 + lam) + lam / (1 + lam) * (new_cov @ score_mean + x_mean), new_cov


def gaussian_expectations(target: G.AnyGaussian, mean, cov):
    """(E_q[∇V], E_q[∇²V]) = (A(m − m_p), A), A = Σp⁻¹, for the Gaussian target p = N(m_p, Σp) and q = N(m, Σ):
    the exact inputs of `bw_sgd_update`, `fb_gvi_update` and `ngvi.blr_update` (whose g and H are the same). The
    batch-and-match moments at q are x̄ = m, C = Σ, ḡ = −A(m − m_p), Γ = AΣA."""
    precision = jnp.linalg.inv(G.covariance(target))
    return precision @ (mean - target.mean), precision


# ------------------------------------------------------------------------------------------------ the algorithms


def _check_args(log_density, step_size, num_samples):
    if not callable(log_density):
        raise ValueError(f"log_density must be a function x -> log p(x); got {type(log_density).__name__}")
    if is_concrete(step_size) and not (np.ndim(step_size) == 0 and np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive finite number; got {step_size!r}")
    if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")


def _check_start(q0, log_density):
    G.check(q0, "q0")
    G.check_vector(q0, "q0", "a Gaussian VI algorithm (a full covariance over a vector)")
    check_log_density(log_density, q0.mean)
    cov = G.covariance(q0)
    if is_concrete(cov) and not np.all(np.linalg.eigvalsh(np.asarray(cov, np.float64)) > 0):
        raise ValueError("q0 must have a positive definite covariance (an invertible scale)")


def _draws(key, mean, chol, num_samples):
    z = jax.random.normal(key, (num_samples, mean.shape[0]), dtype=mean.dtype)
    return z, mean + z @ chol.T


def _entropy(chol):
    d = chol.shape[0]
    return 0.5 * d * (1.0 + jnp.log(2 * jnp.pi)) + jnp.sum(jnp.log(jnp.abs(jnp.diagonal(chol))))


def _bw_init(log_density):
    """The init of the algorithms on flows.BWState: q0 checked, then (mean, covariance)."""
    def init(q0: G.AnyGaussian) -> BWState:
        _check_start(q0, log_density)
        return BWState(q0.mean, G.covariance(q0))

    return init


def _bw_draws(key, state: BWState, num_samples):
    """(Cholesky factor of state.cov, num_samples draws x ~ N(state.mean, state.cov))."""
    chol = jnp.linalg.cholesky(state.cov)
    return chol, _draws(key, state.mean, chol, num_samples)[1]


def _second_order(log_density, step_size, num_samples, update) -> Algorithm:
    """An algorithm on BWState whose step estimates g = E[∇V], H = E[∇²V] from `num_samples` draws and applies
    `update(mean, cov, g, H, step_size)`."""
    potential = lambda x: -log_density(x)  # noqa: E731
    values = jax.vmap(potential)
    grads = jax.vmap(jax.grad(potential))
    hessians = jax.vmap(jax.hessian(potential))

    def step(key, state: BWState):
        chol, x = _bw_draws(key, state, num_samples)
        g, h = jnp.mean(grads(x), axis=0), jnp.mean(hessians(x), axis=0)
        loss = jnp.mean(values(x)) - _entropy(chol)
        mean, cov = update(state.mean, state.cov, g, h, step_size)
        return BWState(mean, cov), GaussianVIInfo(loss, jnp.linalg.norm(g))

    return Algorithm(_bw_init(log_density), step)


def bw_sgd(log_density: Callable, step_size: float, num_samples: int) -> Algorithm:
    """BW-SGD (`bw_sgd_update`) as an `Algorithm`: init(q0: Gaussian) -> flows.BWState;
    step(key, state) -> (BWState, GaussianVIInfo), with g and H averaged over `num_samples` draws x ~ q (exact
    gradients and Hessians of V = −log p at each draw). Lambert et al. use one draw a step.

    Args:
      log_density: x -> log p(x) for x of shape (d,), up to a constant; twice differentiable.
      step_size: h > 0 (may be a traced scalar, e.g. in `wvi.algorithm.sweep`).
      num_samples: draws per step.
    """
    _check_args(log_density, step_size, num_samples)
    return _second_order(log_density, step_size, num_samples, bw_sgd_update)


def fb_gvi(log_density: Callable, step_size: float, num_samples: int) -> Algorithm:
    """FB-GVI (`fb_gvi_update`) as an `Algorithm`, with the stochastic forward step of Diao et al.'s Algorithm 2
    (g and H averaged over `num_samples` draws x ~ q). Arguments, state and info as `bw_sgd`."""
    _check_args(log_density, step_size, num_samples)
    return _second_order(log_density, step_size, num_samples, fb_gvi_update)


def proximal_bbvi(log_density: Callable, step_size: float, num_samples: int) -> Algorithm:
    """Proximal BBVI (`proximal_update`) as an `Algorithm`: init(q0: Gaussian) -> flows.ScaleState holding
    N(m, SSᵀ) with S the Cholesky factor of q0's covariance; step(key, state) -> (ScaleState, GaussianVIInfo), with
    the energy's reparameterisation gradient (ĝ_m, Ĝ_S) = mean_i (∇V(x_i), ∇V(x_i) z_iᵀ), x_i = m + S z_i, over
    `num_samples` draws. Arguments as `bw_sgd` (first derivatives of log p only)."""
    _check_args(log_density, step_size, num_samples)
    potential = lambda x: -log_density(x)  # noqa: E731
    values, grads = jax.vmap(potential), jax.vmap(jax.grad(potential))

    def init(q0: G.AnyGaussian) -> ScaleState:
        _check_start(q0, log_density)
        return ScaleState(G.Gaussian(q0.mean, jnp.linalg.cholesky(G.covariance(q0))))

    def step(key, state: ScaleState):
        q = state.q
        z, x = _draws(key, q.mean, q.scale, num_samples)
        gx = grads(x)
        loss = jnp.mean(values(x)) - _entropy(q.scale)
        g_mean = jnp.mean(gx, axis=0)
        mean, scale = proximal_update(q.mean, q.scale, g_mean, gx.T @ z / num_samples, step_size)
        return ScaleState(G.Gaussian(mean, scale)), GaussianVIInfo(loss, jnp.linalg.norm(g_mean))

    return Algorithm(init, step)


def batch_and_match(log_density: Callable, step_size: float, num_samples: int) -> Algorithm:
    """Batch-and-match (`batch_and_match_update`) as an `Algorithm` with a constant λ = `step_size`:
    init(q0: Gaussian) -> flows.BWState; step(key, state) draws a batch of `num_samples` x ~ q, evaluates the
    scores ∇log p(x), and applies the closed-form update. Uses first derivatives of log p only. Cai et al. use
    λ = Bd for Gaussian targets and a decreasing λ_t elsewhere."""
    _check_args(log_density, step_size, num_samples)
    values, scores = jax.vmap(log_density), jax.vmap(jax.grad(log_density))

    def step(key, state: BWState):
        chol, x = _bw_draws(key, state, num_samples)
        s = scores(x)
        x_mean, s_mean = jnp.mean(x, axis=0), jnp.mean(s, axis=0)
        x_cov = (x - x_mean).T @ (x - x_mean) / num_samples
        s_cov = (s - s_mean).T @ (s - s_mean) / num_samples
        loss = -jnp.mean(values(x)) - _entropy(chol)
        mean, cov = batch_and_match_update(state.mean, state.cov, x_mean, x_cov, s_mean, s_cov, step_size)
        return BWState(mean, cov), GaussianVIInfo(loss, jnp.linalg.norm(s_mean))

    return Algorithm(_bw_init(log_density), step)


def _bbvi(estimator):
    def make(log_density, step_size, num_samples):
        _check_args(log_density, step_size, num_samples)
        return bbvi.bbvi(log_density, optax.sgd(step_size), num_samples, estimator)

    make.__doc__ = f"BBVI-{estimator}: `wvi.bbvi.bbvi` with `optax.sgd(step_size)` on (m, S)."
    return make


def _ngvi(log_density, step_size, num_samples):
    """NGVI: `wvi.ngvi.ngvi` (the Bayesian learning rule with Lin et al.'s safeguard), step size β."""
    _check_args(log_density, step_size, num_samples)
    return ngvi.ngvi(log_density, step_size, num_samples)


class Method(NamedTuple):
    """A Gaussian VI algorithm of the comparison: `make(log_density, step_size, num_samples) -> Algorithm` (init
    takes a full-covariance Gaussian q0), the flow it discretises, how (explicit or implicit), and whether a step
    evaluates Hessians of log p."""
    make: Callable
    flow: str
    scheme: str
    hessians: bool


METHODS = {
    "BBVI-rep": Method(_bbvi("rep"), "BW (through π(S) = SSᵀ)", "explicit, parameter space", False),
    "BBVI-path": Method(_bbvi("path"), "BW (through π(S) = SSᵀ)", "explicit, parameter space", False),
    "BW-SGD": Method(bw_sgd, "BW", "explicit (exponential map)", True),
    "FB-GVI": Method(fb_gvi, "BW", "explicit on V, JKO on the entropy", True),
    "proximal BBVI": Method(proximal_bbvi, "BW (through the Cholesky factor)", "explicit on V, prox on the entropy",
                            False),
    "NGVI": Method(_ngvi, "Fisher–Rao", "explicit (natural gradient)", True),
    "batch-and-match": Method(batch_and_match, "score-based divergence", "proximal point", False),
}
"""The methods compared in Part I's "Gaussian VI algorithms side by side", in the chapter's order."""


def gradients_per_step(name: str, dim: int, num_samples: int) -> int:
    """The chapter's cost model, in gradient evaluations of log p per step: one per draw for the first-order
    methods, `dim` per draw for those that need a Hessian (forward-over-reverse computes it as `dim`
    Hessian-vector products, each about one gradient's cost; the gradient comes with them)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(map(repr, METHODS))}")
    for arg, value in (("dim", dim), ("num_samples", num_samples)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer; got {value!r}")
    return int(num_samples) * (int(dim) if METHODS[name].hessians else 1)


class Comparison(NamedTuple):
    """What `compare` measured, per method label (dicts keyed like its `methods` argument)."""
    step_sizes: np.ndarray  # the sweep's grid
    final: dict  # label -> (len(step_sizes), sweep_seeds): the distance after the sweep's runs (NaN/inf: diverged)
    stable: dict  # label -> (len(step_sizes),) bool: every seed's run finite and ending closer than it started
    best: dict  # label -> the stable step size with the lowest median final distance (NaN when none is stable)
    evaluations: dict  # label -> (num_points + 1,): gradient evaluations at each measurement of the budget run
    curves: dict  # label -> (num_seeds, num_points + 1): the distance along the budget run at the best step size


def largest_stable(comparison: Comparison, label: str) -> float:
    """The largest step size of the grid at which every seed of `label`'s sweep was stable (NaN when none)."""
    ok = comparison.stable[label]
    return float(comparison.step_sizes[ok].max()) if ok.any() else float("nan")


def best_step(step_sizes, final, stable, resolution: float = 0.0) -> float:
    """The step size a sweep recommends: among the stable ones, that with the lowest median final distance over
    seeds, where medians below `resolution` (the distance's own rounding) count as equal to zero and ties go to the
    largest step, the one that gets there in the fewest steps. Without the resolution, rounding noise at the level
    of 1e-15 would pick among steps that all reached the optimum, and `argmin`'s first index would pick the
    smallest of them (Part I, "Gaussian VI algorithms side by side", section 4).

    Args:
      step_sizes: (K,) the grid. final: (K, seeds) the sweep's final distances (NaN or inf: diverged).
      stable: (K,) bool, every seed's run stable. resolution: a distance >= 0 below which distances are ties.
    Returns:
      The chosen step size, or NaN when no step size is stable.
    """
    grid, final, stable = np.asarray(step_sizes, np.float64), np.asarray(final, np.float64), np.asarray(stable, bool)
    if grid.ndim != 1 or final.shape[:1] != grid.shape or stable.shape != grid.shape:
        raise ValueError(f"step_sizes (K,), final (K, seeds) and stable (K,) must agree; got {grid.shape}, "
                         f"{final.shape} and {stable.shape}")
    if not (np.isscalar(resolution) and resolution >= 0):
        raise ValueError(f"resolution must be a number >= 0; got {resolution!r}")
    if not stable.any():
        return float("nan")
    medians = np.median(np.where(np.isfinite(final), final, np.inf), axis=1)
    medians = np.where(stable, np.where(medians < resolution, 0.0, medians), np.inf)
    return float(grid[medians == medians.min()].max())


def compare(key, methods: dict, log_density: Callable, q0: G.Gaussian, distance: Callable, step_sizes, *,
            sweep_steps: int, budget: int, num_points: int = 100, sweep_seeds: int = 2,
            num_seeds: int = 4, resolution: float = 0.0) -> Comparison:
    """The chapter's protocol for one problem: a step-size sweep of every method, then a run of each at its best
    step size with the same budget of gradient evaluations (`gradients_per_step`), several seeds each.

    Args:
      key: a `jax.random` key (the sweep and the budget runs use keys split from it).
      methods: label -> (name in `METHODS`, num_samples), e.g. {"BW-SGD": ("BW-SGD", 8)}.
      log_density: x -> log p(x), up to a constant.
      q0: the common start, a full-covariance Gaussian.
      distance: Gaussian -> scalar, traced: the distance to the optimum (W2, a KL gap, ...).
      step_sizes: the sweep's grid (1-D).
      sweep_steps: steps of every sweep run. budget: gradient evaluations of every budget run.
      num_points: measurements along a budget run. sweep_seeds, num_seeds: seeds of the sweep and budget runs.
      resolution: final distances below it count as equal when the best step size is chosen (`best_step`).
    Returns:
      a `Comparison`. A method with no stable step size gets best = NaN and NaN curves.
    """
    from wvi.algorithm import stable, sweep

    dim = int(np.shape(q0.mean)[0])
    start = float(distance(q0))
    grid = np.asarray(step_sizes, dtype=np.float64)
    key_sweep, key_budget = jax.random.split(key)
    final, ok, best, evaluations, curves = {}, {}, {}, {}, {}
    measure = lambda state: distance(state.approximation)  # noqa: E731
    for label, (name, num_samples) in methods.items():
        make = lambda h, name=name, n=num_samples: METHODS[name].make(log_density, h, n)  # noqa: E731
        runs = sweep(key_sweep, make, grid, (q0,), sweep_steps, measure, num_seeds=sweep_seeds,
                     every=sweep_steps)
        final[label], ok[label] = runs[..., -1], stable(runs, start).all(axis=1)
        best[label] = best_step(grid, runs[..., -1], ok[label], resolution)
        cost = gradients_per_step(name, dim, num_samples)
        every = max(1, budget // cost // num_points)
        steps = every * num_points
        evaluations[label] = cost * every * np.arange(num_points + 1)
        if np.isnan(best[label]):
            curves[label] = np.full((num_seeds, num_points + 1), np.nan)
            continue
        curves[label] = sweep(key_budget, make, np.array([best[label]]), (q0,), steps, measure,
                              num_seeds=num_seeds, every=every)[0]
    return Comparison(grid, final, ok, best, evaluations, curves)


def evaluations_to_reach(comparison: Comparison, label: str, tolerance: float) -> float:
    """The gradient evaluations after which the median over seeds of `label`'s budget run first reaches
    `tolerance` (inf when it never does within the budget)."""
    with np.errstate(invalid="ignore"):
        median = np.median(comparison.curves[label], axis=0)
    reached = np.nonzero(median <= tolerance)[0]
    return float(comparison.evaluations[label][reached[0]]) if reached.size else float("inf")
