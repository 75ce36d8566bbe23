"""Deep ensembles as particle discretisations of Wasserstein gradient flows (Part IV, Wild et al.).

The free energy over distributions Q of parameters θ, with P = N(0, σ0² I) the prior (= the initialisation law)::

    F(Q) = ∫ ℓ dQ + (λ1/2) MMD²(Q, P) + λ2 KL(Q ‖ P).

Its Wasserstein gradient flow, with N particles θ_1..θ_N standing for Q and step η (ξ ~ N(0, I))::

    DE    θ_i ← θ_i − η ∇ℓ(θ_i)                                      (λ1 = λ2 = 0)
    DLE   θ_i ← θ_i − η [∇ℓ(θ_i) + λ2 θ_i / σ0²] + √(2 λ2 η) ξ_i       (λ1 = 0)
    DRLE  θ_i ← θ_i − η [∇ℓ(θ_i) + λ2 θ_i / σ0² + λ1 r_i] + √(2 λ2 η) ξ_i,
          r_i = (1/N) Σ_j ∇_1 k(θ_i, θ_j) − (1/M) Σ_m ∇_1 k(θ_i, θ̃_m),
          θ̃_m ~ P drawn once (M = 200),

with the kernel k(θ, θ′) = exp(−d / (2σ)), d = mean over coordinates of (θ − θ′)². DLE's stationary law is
Q* ∝ exp(−ℓ/λ2)·p (`gibbs_density`); DRLE's is the unique minimiser of F, found on a grid in 1D by
`free_energy_minimiser`. Plain DE has no unique limit: where its particles end depends on where they start.

A particle set is any pytree whose leaves carry a leading axis of length N (one slice per ensemble member), so an
ensemble of MLPs is `jax.vmap(networks.mlp_init)(keys, ...)`. The drift is applied with `optax.sgd`; the Langevin noise
√(2 λ2 η) is calibrated for that plain SGD step.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from scipy.integrate import trapezoid

from wvi import networks
from wvi._checks import check_choice, check_finite
from wvi.algorithm import Algorithm, resample_particles, run, trace_loss

METHODS = ("de", "dle", "drle")


class EnsembleState(NamedTuple):
    particles: Any  # pytree, leading axis N on every leaf
    opt_state: Any
    prior_samples: jax.Array  # (M, D) flattened draws from P, fixed for the run (empty for DE and DLE)

    @property
    def approximation(self):
        """The members (a pytree with leading axis N), whose empirical measure is the approximation."""
        return self.particles

    def sample(self, key, num_samples: int):
        """Members drawn with replacement (a pytree, leading axis num_samples)."""
        return resample_particles(key, self.particles, num_samples)


class EnsembleInfo(NamedTuple):
    loss: jax.Array  # mean of ℓ over the particles, before the step
    bandwidth: jax.Array  # σ used by the kernel this step (0 without repulsion)


# ----------------------------------------------------------------------------------------------------------------
# Flattening particle pytrees
# ----------------------------------------------------------------------------------------------------------------

def num_particles(particles) -> int:
    """N, the common leading axis of every leaf; raises if the leaves disagree."""
    leaves = jax.tree_util.tree_leaves(particles)
    if not leaves:
        raise ValueError("particles is an empty pytree; expected arrays with a leading particle axis")
    sizes = {int(jnp.shape(x)[0]) if jnp.ndim(x) else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes:
        shapes = [jnp.shape(x) for x in leaves]
        raise ValueError(f"particles must share one leading axis (the ensemble members); got leaf shapes {shapes}")
    return sizes.pop()


def flatten(particles) -> jax.Array:
    """(N, D): each member's pytree raveled into one row."""
    return jax.vmap(lambda p: ravel_pytree(p)[0])(particles)


def _prior_std_vector(prior_std, particles) -> jax.Array:
    """σ0 as a length-D vector: a positive scalar, or a pytree shaped like one member (per-leaf or per-entry)."""
    member = jax.tree_util.tree_map(lambda x: x[0], particles)
    if jax.tree_util.tree_structure(prior_std) == jax.tree_util.tree_structure(0.0):
        flat_member = ravel_pytree(member)[0]
        return jnp.full(flat_member.shape, prior_std, dtype=flat_member.dtype)
    try:
        full = jax.tree_util.tree_map(lambda s, x: jnp.broadcast_to(jnp.asarray(s, x.dtype), x.shape), prior_std, member)
    except ValueError as err:  # structure or shape mismatch
        raise ValueError(f"prior_std must be a positive scalar or a pytree shaped like one ensemble member; {err}") from None
    return ravel_pytree(full)[0]


# ----------------------------------------------------------------------------------------------------------------
# The MMD kernel
# ----------------------------------------------------------------------------------------------------------------

def sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """d(x_i, y_j) = mean over the D coordinates of (x_i − y_j)², for x (N, D) and y (M, D)."""
    return jnp.mean((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def median_bandwidth(x: jax.Array) -> jax.Array:
    """The median heuristic σ = median over pairs i < j of d(x_i, x_j), so k = e^{-1/2} at the median distance.

    The median is found by 32 bisection steps on counts (to 2⁻³² of the largest distance, below float32 resolution) rather
    than by sorting, which is ten times slower on CPU for a few hundred particles. Treated as a constant
    (stop_gradient), as usual for this heuristic.
    """
    n = x.shape[0]
    d = jax.lax.stop_gradient(sq_distances(x, x))
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    half = n * (n - 1) / 4.0  # half the number of pairs

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        enough = jnp.sum(upper & (d <= mid)) >= half
        return jnp.where(enough, lo, mid), jnp.where(enough, mid, hi)

    _, hi = jax.lax.fori_loop(0, 32, bisect, (jnp.zeros((), d.dtype), jnp.max(d)))
    return hi


def kernel(x: jax.Array, y: jax.Array, bandwidth) -> jax.Array:
    """k(x_i, y_j) = exp(−d(x_i, y_j) / (2σ)), an (N, M) matrix."""
    return jnp.exp(-sq_distances(x, y) / (2.0 * bandwidth))


def mmd2(x: jax.Array, y: jax.Array, bandwidth) -> jax.Array:
    """The V-statistic MMD²(x, y) = mean k(x, x′) − 2 mean k(x, y) + mean k(y, y′) for x (N, D), y (M, D)."""
    return jnp.mean(kernel(x, x, bandwidth)) - 2.0 * jnp.mean(kernel(x, y, bandwidth)) + jnp.mean(kernel(y, y, bandwidth))


def repulsion(x: jax.Array, prior_samples: jax.Array, bandwidth) -> jax.Array:
    """r_i = (1/N) Σ_j ∇_1 k(x_i, x_j) − (1/M) Σ_m ∇_1 k(x_i, θ̃_m), shape (N, D).

    It is the gradient of the first variation of ½MMD²(Q, P) at x_i, i.e. r_i = (N/2) ∇_{x_i} MMD²(x, θ̃) for the
    V-statistic (tests/test_ensembles.py checks this against autodiff). With ∇_1 k(a, b) = −k(a, b)(a − b)/(σD).
    """
    scale = 1.0 / (bandwidth * x.shape[-1])

    def mean_grad(y):
        k = kernel(x, y, bandwidth)  # (N, M)
        return -scale * (jnp.mean(k, axis=1)[:, None] * x - k @ y / y.shape[0])

    return mean_grad(x) - mean_grad(prior_samples)


# ----------------------------------------------------------------------------------------------------------------
# The particle updates
# ----------------------------------------------------------------------------------------------------------------

def _check_lambda(value, name):
    if not (np.isscalar(value) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number ≥ 0; got {value!r}")


def ensemble(loss_fn: Callable, method: str, step_size: float, *, lam1: float = 0.0, lam2: float = 0.0,
          prior_std: Union[float, Any] = 1.0, bandwidth: Union[float, str] = "median", num_prior_samples: int = 200,
          loss_takes_key: bool = False) -> Algorithm:
    """DE, DLE or DRLE (see the module docstring) as `init(particles, key=None)` / `step(key, state)`.

    loss_fn(θ) -> scalar ℓ for one member's pytree θ (or loss_fn(θ, key) with `loss_takes_key`, e.g. a minibatch
    estimate from `minibatch_loss`; all members see the same minibatch). method: "de", "dle" or "drle".
    DE ignores λ1 and λ2 and must get neither; DLE needs λ2 > 0; DRLE needs λ1 ≥ 0 and λ2 > 0.
    prior_std: σ0, a scalar or a pytree shaped like one member. bandwidth: σ > 0 or "median" (`median_bandwidth`
    of the current particles). DRLE's M prior samples are drawn once, in `init`, from `key`.
    """
    check_choice(method, METHODS, "ensemble method")
    _check_lambda(lam1, "lam1")
    _check_lambda(lam2, "lam2")
    if not (np.isscalar(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive; got {step_size!r}")
    if method == "de" and (lam1 or lam2):
        raise ValueError(f"method 'de' has no regulariser; got lam1={lam1}, lam2={lam2} (use 'dle' or 'drle')")
    if method == "dle" and lam1:
        raise ValueError(f"method 'dle' has no MMD term; got lam1={lam1} (use 'drle')")
    if method in ("dle", "drle") and not lam2 > 0:
        raise ValueError(f"method {method!r} needs lam2 > 0 (the KL weight, which sets the Langevin noise); got {lam2}")
    if isinstance(bandwidth, str):
        check_choice(bandwidth, ("median",), "bandwidth")
    elif not (np.isscalar(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number or 'median'; got {bandwidth!r}")
    if not (isinstance(num_prior_samples, (int, np.integer)) and num_prior_samples > 0):
        raise ValueError(f"num_prior_samples must be a positive integer; got {num_prior_samples!r}")
    if not all(np.all(np.asarray(s) > 0) for s in jax.tree_util.tree_leaves(prior_std)):
        raise ValueError(f"prior_std must be positive (a scalar or a pytree shaped like one member); got {prior_std!r}")

    optimizer = optax.sgd(step_size)
    repulsive = method == "drle"

    def loss_and_grad(theta, key):
        f = (lambda t: loss_fn(t, key)) if loss_takes_key else loss_fn
        return jax.value_and_grad(f)(theta)

    def init(particles, key: Optional[jax.Array] = None) -> EnsembleState:
        n = num_particles(particles)
        for path, leaf in jax.tree_util.tree_flatten_with_path(particles)[0]:
            check_finite(leaf, "particles" + jax.tree_util.keystr(path))
        if n < 2 and repulsive:
            raise ValueError("method 'drle' needs at least 2 particles")
        sigma0 = _prior_std_vector(prior_std, particles)
        if repulsive:
            if key is None:
                raise ValueError("method 'drle' needs a key in init to draw its prior samples once")
            prior_samples = sigma0 * jax.random.normal(key, (num_prior_samples, sigma0.shape[0]), sigma0.dtype)
        else:
            prior_samples = jnp.zeros((0, sigma0.shape[0]), sigma0.dtype)
        return EnsembleState(particles, optimizer.init(particles), prior_samples)

    def step(key, state: EnsembleState):
        loss_key, noise_key = jax.random.split(key)
        losses, grads = jax.vmap(loss_and_grad, in_axes=(0, None))(state.particles, loss_key)
        sigma = jnp.zeros((), losses.dtype)
        if method != "de":  # the regularisers act on the flattened (N, D) particles
            x = flatten(state.particles)
            drift = lam2 * x / _prior_std_vector(prior_std, state.particles) ** 2
            if repulsive:
                sigma = median_bandwidth(x) if bandwidth == "median" else jnp.asarray(bandwidth, x.dtype)
                drift = drift + lam1 * repulsion(x, state.prior_samples, sigma)
            unravel_member = ravel_pytree(jax.tree_util.tree_map(lambda a: a[0], state.particles))[1]
            grads = jax.tree_util.tree_map(jnp.add, grads, jax.vmap(unravel_member)(drift))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.particles)
        particles = optax.apply_updates(state.particles, updates)
        if method != "de":
            leaves, treedef = jax.tree_util.tree_flatten(particles)
            keys = jax.random.split(noise_key, len(leaves))
            noise_scale = jnp.sqrt(2.0 * lam2 * step_size)
            leaves = [x + noise_scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
            particles = jax.tree_util.tree_unflatten(treedef, leaves)
        return EnsembleState(particles, opt_state, state.prior_samples), EnsembleInfo(jnp.mean(losses), sigma)

    return Algorithm(init, step)


def minibatch_loss(example_loss: Callable, data, batch_size: int) -> Callable:
    """ℓ(θ, key) = (N/M) Σ_{n in a random minibatch of size M} example_loss(θ, x_n, y_n): an unbiased estimate of the
    full-data loss Σ_n example_loss(θ, x_n, y_n). data = (inputs (N, ...), targets (N, ...))."""
    inputs, targets = data
    n = inputs.shape[0]
    if targets.shape[0] != n:
        raise ValueError(f"data: inputs have {n} rows but targets have {targets.shape[0]}")
    if not (isinstance(batch_size, (int, np.integer)) and 0 < batch_size <= n):
        raise ValueError(f"batch_size must be an integer in [1, {n}]; got {batch_size!r}")

    def loss(theta, key):
        idx = jax.random.choice(key, n, (batch_size,), replace=False)
        per_example = jax.vmap(example_loss, in_axes=(None, 0, 0))(theta, inputs[idx], targets[idx])
        return (n / batch_size) * jnp.sum(per_example)

    return loss


# ----------------------------------------------------------------------------------------------------------------
# Stationary laws on a 1D grid, and distances between particle sets
# ----------------------------------------------------------------------------------------------------------------

def _normal_pdf(grid, std):
    return np.exp(-0.5 * (grid / std) ** 2) / (np.sqrt(2 * np.pi) * std)


def _check_grid(grid):
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 3 or not np.all(np.diff(grid) > 0):
        raise ValueError("grid must be a 1D increasing array of at least 3 points")
    return grid


def gibbs_density(loss_values, grid, lam2: float, prior_std: float = 1.0) -> np.ndarray:
    """DLE's stationary density Q*(θ) ∝ exp(−ℓ(θ)/λ2) · N(θ; 0, σ0²) on a 1D grid, normalised by the trapezoid rule.
    loss_values: ℓ evaluated on `grid`."""
    grid = _check_grid(grid)
    _check_lambda(lam2, "lam2")
    if not lam2 > 0:
        raise ValueError("lam2 must be positive for a Gibbs density")
    log_q = -np.asarray(loss_values, np.float64) / lam2 - 0.5 * (grid / prior_std) ** 2
    q = np.exp(log_q - log_q.max())
    return q / trapezoid(q, grid)


def free_energy_minimiser(loss_values, grid, lam1: float, lam2: float, prior_std: float = 1.0, bandwidth: float = 1.0,
                          damping: float = 0.5, tol: float = 1e-10, max_iter: int = 10_000) -> np.ndarray:
    """The density minimising F(Q) = ∫ℓ dQ + (λ1/2) MMD²(Q, P) + λ2 KL(Q‖P) on a 1D grid.

    Stationarity: ℓ + λ1 (∫k(·, θ′) dQ(θ′) − ∫k(·, θ̃) dP(θ̃)) + λ2 log(q/p) = const, i.e.
    q = p · exp(−[ℓ + λ1 (K q − K p)] / λ2) / Z. We iterate this map with damping in log space until the density
    changes by less than `tol` (sup norm); F is strictly convex in Q, so the fixed point is its unique minimiser.
    The kernel is `kernel` with σ = bandwidth (D = 1); integrals use the trapezoid rule on `grid`.
    """
    grid = _check_grid(grid)
    _check_lambda(lam1, "lam1")
    if not lam2 > 0:
        raise ValueError(f"lam2 must be positive; got {lam2}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive; got {bandwidth}")
    w = np.gradient(grid)  # trapezoid-like weights
    w[0] *= 0.5
    w[-1] *= 0.5
    k = np.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2.0 * bandwidth))
    p = _normal_pdf(grid, prior_std)
    kp = k @ (w * p)
    ell = np.asarray(loss_values, np.float64)
    log_q = np.log(gibbs_density(ell, grid, lam2, prior_std))
    for _ in range(max_iter):
        q = np.exp(log_q)
        new = np.log(p) - (ell + lam1 * (k @ (w * q) - kp)) / lam2
        new -= np.log(np.sum(w * np.exp(new - new.max()))) + new.max()
        log_q_next = (1 - damping) * log_q + damping * new
        log_q_next -= np.log(np.sum(w * np.exp(log_q_next)))
        change = np.max(np.abs(np.exp(log_q_next) - q))
        log_q = log_q_next
        if change < tol:
            return np.exp(log_q)
    raise RuntimeError(f"free_energy_minimiser did not converge in {max_iter} iterations (last change {change:.1e}); "
                       f"increase max_iter or lower damping")


def _cdf(grid, density) -> np.ndarray:
    """The normalised CDF of a density on a 1D grid, at the grid points (trapezoid rule)."""
    density = np.asarray(density, np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return cdf / cdf[-1]


def bin_masses(grid, density, edges) -> np.ndarray:
    """The mass a density given on a 1D grid puts in each bin between consecutive `edges` (trapezoid rule)."""
    grid = _check_grid(grid)
    return np.diff(np.interp(np.asarray(edges, np.float64), grid, _cdf(grid, density)))


def tv_to_density(samples, grid, density, edges) -> float:
    """Total variation ``½ Σ_b |n_b/N − Q(b)|`` between the histogram of 1D `samples` over bins `edges` and the bin
    masses Q(b) of a density given on `grid` (`bin_masses`; mass outside the edges counts as its own bin)."""
    samples = np.asarray(samples, np.float64).ravel()
    counts = np.histogram(samples, bins=np.asarray(edges, np.float64))[0] / samples.size
    masses = bin_masses(grid, density, edges)
    return 0.5 * (np.abs(counts - masses).sum() + abs(masses.sum() - counts.sum()))


def sample_density(key, grid, density, num: int) -> np.ndarray:
    """`num` exact draws from a density on a 1D grid by inverting its (piecewise-linear) CDF."""
    grid = _check_grid(grid)
    u = np.asarray(jax.random.uniform(key, (num,), dtype=jnp.float32), np.float64)
    return np.interp(u, _cdf(grid, density), grid)


def two_sample_w2(key, grid, density, num: int, num_pairs: int = 200) -> np.ndarray:
    """W2 between two independent sets of `num` exact draws from a 1D density on a grid (`sample_density`), for
    `num_pairs` pairs of sets drawn from `key`: the Monte Carlo floor of comparing two particle sets of that size
    (Part IV's toys take its 99th percentile as the bar for "the same law")."""
    draws = [sample_density(k, grid, density, num) for k in jax.random.split(key, 2 * num_pairs)]
    return np.array([sliced_w2(None, a, b) for a, b in zip(draws[::2], draws[1::2])])


def sliced_w2(key, x, y, num_projections: int = 256) -> float:
    """Sliced W2 between two equally sized particle sets x, y of shape (N, D) (or (N,) in 1D, where it is exact W2):
    sqrt of the mean over random unit directions (drawn from `key`; unused, and may be None, in 1D) of the 1D W2²
    of the projections (sorted differences)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (N, D); got {x.shape} and {y.shape}")
    if x.shape[1] == 1:
        return float(np.sqrt(np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2)))
    dirs = np.asarray(jax.random.normal(key, (num_projections, x.shape[1]), dtype=jnp.float32), np.float64)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    px, py = np.sort(x @ dirs.T, axis=0), np.sort(y @ dirs.T, axis=0)
    return float(np.sqrt(np.mean((px - py) ** 2)))


def fit_regression(key, x_train, y_train, method: str = "de", hidden: tuple = (50,), num_members: int = 5,
                   step_size: float = 1e-4, num_steps: int = 1000, batch_size: int = 100, **method_kwargs):
    """An ensemble of MLP regressors with Gaussian heads (`networks.gaussian_head`), trained by `ensemble(loss, method, ...)` on the
    minibatch Gaussian negative log likelihood ℓ(θ) = Σ_n −log N(y_n; μ_θ(x_n), σ²_θ(x_n)) (`minibatch_loss`).

    Members are drawn from the prior `networks.mlp_prior_std(sizes)`, which DLE and DRLE also use as P. Returns the
    stacked final parameters (leading axis: members). The Part IV regression chapter uses it for the UCI protocol.
    """
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    if x_train.ndim != 2 or y_train.shape != x_train.shape[:1]:
        raise ValueError(f"x_train must be (N, D) and y_train (N,); got {x_train.shape} and {y_train.shape}")
    sizes = (x_train.shape[1], *hidden, 2)
    prior = networks.mlp_prior_std(sizes)

    def example_loss(params, x, y):
        mean, log_var = networks.gaussian_head(params, x)
        return networks.gaussian_nll(mean, log_var, y)

    loss = minibatch_loss(example_loss, (x_train, y_train), min(batch_size, x_train.shape[0]))
    kwargs = dict(method_kwargs, prior_std=prior) if method != "de" else method_kwargs
    algorithm = ensemble(loss, method, step_size, loss_takes_key=True, **kwargs)
    member_key, init_key, run_key = jax.random.split(key, 3)
    members = jax.vmap(lambda k: networks.mlp_init(k, sizes, prior))(jax.random.split(member_key, num_members))
    final, _ = run(run_key, algorithm, algorithm.init(members, init_key), num_steps, trace_fn=trace_loss, name=method)
    return final.particles


def regression_scores(members, split) -> tuple[float, float, float]:
    """(test NLL, test RMSE, train RMSE) of an ensemble of Gaussian-head regressors (`fit_regression`'s members,
    stacked) on a standardised `wvi.data.Split`, in the target's original units: the NLL and RMSE of the equal
    mixture of the members' predictives (`networks.mixture_metrics`) and the RMSE of its mean on the training
    points (an underfitting check). Part IV, "Deep ensembles as Wasserstein gradient flows: regression"."""
    mean, log_var = jax.vmap(lambda p: networks.gaussian_head(p, jnp.asarray(split.x_test)))(members)
    train_mean, _ = jax.vmap(lambda p: networks.gaussian_head(p, jnp.asarray(split.x_train)))(members)
    train_rmse = float(jnp.sqrt(jnp.mean((train_mean.mean(0) - split.y_train) ** 2))) * split.y_std
    nll, rmse = networks.mixture_metrics(mean, log_var, split.y_test, split.y_std)
    return float(nll), float(rmse), train_rmse


# ----------------------------------------------------------------------------------------------------------------
# The free energy of a 1D law, and the verdicts the Part IV chapters share with their planted-defect tests
# ----------------------------------------------------------------------------------------------------------------

def free_energy_density(grid, density, loss_values, lam1: float, lam2: float, prior_std: float = 1.0,
                        bandwidth: float = 1.0) -> float:
    """F(Q) = ∫ℓ dQ + (λ1/2) MMD²(Q, P) + λ2 KL(Q‖P) for a density given on a 1D grid (trapezoid rule), with
    P = N(0, σ0²) and the kernel of `kernel` (D = 1, σ = bandwidth). `free_energy_minimiser` minimises it."""
    grid = _check_grid(grid)
    q = np.asarray(density, np.float64)
    q = q / trapezoid(q, grid)
    p = _normal_pdf(grid, prior_std)
    w = np.gradient(grid)
    w[0] *= 0.5
    w[-1] *= 0.5
    diff = w * (q - p)
    mmd2 = diff @ np.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2.0 * bandwidth)) @ diff if lam1 else 0.0
    log_ratio = np.log(np.where(q > 0, q, 1.0) / p)
    kl = trapezoid(np.where(q > 0, q * log_ratio, 0.0), grid)
    return float(trapezoid(np.asarray(loss_values, np.float64) * q, grid) + 0.5 * lam1 * mmd2 + lam2 * kl)


def free_energy_estimate(samples, grid, loss_values, lam1: float, lam2: float, prior_std: float = 1.0,
                         bandwidth: float = 1.0) -> float:
    """F of the law of a 1D particle cloud, the same F as `free_energy_density`:

    * ∫ℓ dQ: the particles' mean of ℓ (interpolated from `loss_values` on `grid`), unbiased;
    * MMD²(Q, P): the U-statistic for the particle pairs, and the terms in P exactly (P Gaussian), unbiased;
    * KL(Q‖P): of a Gaussian kernel density estimate (Silverman's bandwidth) on `grid`, by the trapezoid rule.
      Smoothing raises the entropy, so this term is biased low by an amount that depends on the law and shrinks
      with N; the chapter measures the estimate's bias and spread on exact draws (its Monte Carlo floor).
    """
    grid = _check_grid(grid)
    x = np.asarray(samples, np.float64).ravel()
    n = x.size
    if n < 2:
        raise ValueError("free_energy_estimate needs at least 2 samples")
    energy = np.interp(x, grid, np.asarray(loss_values, np.float64)).mean()
    mmd2 = 0.0
    if lam1:
        kxx = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2.0 * bandwidth))
        s2 = bandwidth + prior_std**2
        mmd2 = ((kxx.sum() - n) / (n * (n - 1)) - 2 * np.mean(np.sqrt(bandwidth / s2) * np.exp(-x**2 / (2 * s2)))
                + np.sqrt(bandwidth / (bandwidth + 2 * prior_std**2)))
    spread = min(x.std(ddof=1), np.subtract(*np.percentile(x, [75, 25])) / 1.34)
    h = 0.9 * spread * n ** -0.2
    q = np.zeros_like(grid)
    for chunk in np.array_split(x, max(1, n // 500)):  # (grid, chunk) blocks keep memory small for large N
        q += _normal_pdf(grid[:, None] - chunk[None, :], h).sum(1)
    q /= n
    p = _normal_pdf(grid, prior_std)
    kl = trapezoid(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0) / p), 0.0), grid)
    return float(energy + 0.5 * lam1 * mmd2 + lam2 * kl)


def stationary_verdict(samples, grid, law, other_law, edges, key, num_draws: int = 200):
    """Do 1D particles follow `law` rather than `other_law`? The rule of the Part IV toy chapter and its test.

    The statistic is the binned total variation `tv_to_density`; its Monte Carlo floor is the 99th percentile of
    the same statistic for `num_draws` sets of len(samples) exact draws from `law` (drawn from `key`). The verdict
    is `report.verdict_of(tv_own ≤ floor, tv_other > floor)`: "reproduced" when the particles are as close to
    `law` as exact draws are and farther than that from `other_law`. Returns (verdict, tv_own, tv_other, floor).
    """
    from wvi.report import verdict_of

    samples = np.asarray(samples, np.float64).ravel()
    tv_own = tv_to_density(samples, grid, law, edges)
    tv_other = tv_to_density(samples, grid, other_law, edges)
    floor = float(np.quantile([tv_to_density(sample_density(k, grid, law, samples.size), grid, law, edges)
                               for k in jax.random.split(key, num_draws)], 0.99))
    return verdict_of(tv_own <= floor, tv_other > floor), tv_own, tv_other, floor


def gap_ratio_threshold(num_members: int) -> float:
    """The smallest ratio (mean std of the members' functions in the gaps) / (the same on the data) that counts as
    "more uncertain in the gaps": 1 + 3/√M. A standard deviation over M members has relative standard error
    1/√(2M), a ratio of two such about 1/√M (treating the two as independent), so 3 of those."""
    return 1.0 + 3.0 / np.sqrt(num_members)


def gap_verdict(std_gaps: float, std_data: float, std_gaps_de: float, num_members: int) -> str:
    """Wild et al.'s toy-regression claim for one Langevin ensemble ("uncertain where data are missing"): the rule
    of the Part IV regression chapter and its planted-defect test. Two criteria, each a ratio of mean standard
    deviations of the members' functions that must reach `gap_ratio_threshold(num_members)`: in the gaps against
    on the data (the band widens where data are missing), and in the gaps against DE's in the gaps (more uncertain
    there than the plain ensemble).

    The first is the claim's substance: an ensemble wider than DE everywhere meets the second without being any
    more uncertain where data are missing. So the verdict is "not reproduced" when the band does not widen in the
    gaps, whatever the second ratio, "reproduced" when both ratios reach the threshold, and "partly reproduced"
    when only the first does. (A review replaced `report.verdict_of` of the two, which called a band wider than
    DE's everywhere, but no wider in the gaps, "partly reproduced".)"""
    threshold = gap_ratio_threshold(num_members)
    if std_gaps / std_data < threshold:
        return "not reproduced"
    return "reproduced" if std_gaps / std_gaps_de >= threshold else "partly reproduced"


def step_terms(loss_fn: Callable, particles, step_size: float, *, lam1: float = 0.0, lam2: float = 0.0,
               prior_std: Union[float, Any] = 1.0, bandwidth: Union[float, str] = "median", prior_samples=None) -> dict:
    """How far each part of one DLE/DRLE step (`ensemble`) moves a particle, at `particles`: the mean over particles of
    the Euclidean norm of η∇ℓ ("gradient"), η λ2 θ/σ0² ("prior"), η λ1 r ("repulsion", with `prior_samples`
    (M, D) drawn from P by the caller) and of the noise √(2 λ2 η) ξ ("noise", its root mean square √(2 λ2 η D)).
    A diagnostic: it says which term drives the particles, e.g. whether the repulsion can matter at all."""
    x = flatten(particles)
    grads = flatten(jax.vmap(jax.grad(loss_fn))(particles))
    norm = lambda v: float(jnp.mean(jnp.linalg.norm(v, axis=1)))
    out = {"gradient": step_size * norm(grads),
           "prior": step_size * lam2 * norm(x / _prior_std_vector(prior_std, particles) ** 2),
           "noise": float(np.sqrt(2.0 * lam2 * step_size * x.shape[1])), "repulsion": 0.0}
    if lam1:
        if prior_samples is None:
            raise ValueError("step_terms needs prior_samples (M, D) drawn from P when lam1 > 0")
        sigma = median_bandwidth(x) if bandwidth == "median" else jnp.asarray(bandwidth, x.dtype)
        out["repulsion"] = step_size * lam1 * norm(repulsion(x, jnp.asarray(prior_samples, x.dtype), sigma))
    return out


def sharpness(loss_fn: Callable, particles) -> jax.Array:
    """λ_max(∇²ℓ(θ_i)), the largest eigenvalue of the loss's Hessian at each member θ_i, shape (N,).

    It decides whether a step size η discretises the flow faithfully. Plain gradient descent is stable near θ_i
    only if η λ_max < 2; and the unadjusted Langevin step θ ← θ − η∇U + √(2η) ξ on a quadratic U = λθ²/2 has the
    stationary variance ::

        v = 2η / (1 − (1 − ηλ)²) = (1/λ) / (1 − ηλ/2),

    the target's 1/λ inflated by 1/(1 − ηλ/2): by a third at ηλ = 0.5, without bound as ηλ → 2, and along exactly
    the directions the data pin down hardest. So a Langevin ensemble samples its Gibbs law only where η λ_max ≪ 1
    (Part IV, "Deep ensembles as Wasserstein gradient flows: regression").

    The Hessian is formed densely (D × D per member, D the parameters of one member): meant for the book's small
    networks. Args: loss_fn, ℓ of one member's pytree; particles, the members stacked on a leading axis.
    Returns: the eigenvalues, one per member."""
    num_particles(particles)
    member = jax.tree_util.tree_map(lambda x: x[0], particles)
    _, unravel = ravel_pytree(member)

    def largest(flat):
        return jnp.linalg.eigvalsh(jax.hessian(lambda v: loss_fn(unravel(v)))(flat))[-1]

    return jax.lax.map(largest, flatten(particles))
