"""Black-box variational inference (BBVI) for Gaussian families, with any optax optimiser.

The objective is KL(q‖p) = E_q[log q(x) - log p(x)] + log Z for an unnormalised log density log p. With
x = m + S z, z ~ N(0, I), two unbiased gradient estimators come from the same Monte Carlo loss ::

    L(m, S) = (1/n) Σ_i [log q(x_i; m', S') - log p(x_i)],   x_i = m + S z_i,

  * "rep"  (reparameterisation):    (m', S') = (m, S), differentiated through;
  * "path" (path derivative / STL): (m', S') = stop_gradient(m, S), so only the path
                                    x(m, S) is differentiated.

The path estimator's expected update of S is E[∇log p(x) zᵀ] + S⁻ᵀ, whose push-forward through π(S) = SSᵀ is the
Bures–Wasserstein velocity of KL (Part I, "The Riemannian submersion"); with SGD its iterates are the forward Euler
scheme of that flow (Part I, "ODE vs BBVI on a 2D Gaussian"). At q = p its variance is zero; rep's is not.

**f-divergences** (Yi & Liu; Part II, "Rosenbrock"). For D_f(q‖p) = E_q[f(r)], r = p/q, the Wasserstein gradient
flow moves samples along ∇_x h(r(x)), h(r) = r f′(r) − f(r) (`wvi.divergences`). The path-derivative
("distillation") estimator pushes that velocity through reparameterised samples of any reparameterisable family::

    L_f = −Σ_k w_k (1/n) Σ_i h(r(x_{k,i})),
    x_{k,i} = m_k + S_k z_{k,i},   r = p / stop_gradient(q),

with one component (w = 1) for a Gaussian and K components, each sampled separately, for a `wvi.mixtures.Mixture`
(weights w = softmax(logits) differentiated explicitly). Its expectation is exactly ∇D_f, because
∂_θ D_f = −∫ ∂_θ q h(r) with r held fixed. Ratios are handled as log r = log p − log q and h in its log-space
form. `ratio_scaling="max"` divides r by its batch maximum (subtracts max log r under stop-gradient), the authors'
stabilisation: it multiplies the whole gradient by a positive batch constant (r_max⁻¹ for forward KL, r_max⁻² for
χ², r_max^−½ for Hellinger, 1 for reverse KL), so it changes each estimate's length, not its direction, and the
estimator is then no longer unbiased for ∇D_f. Every divergence but reverse KL needs a normalised log p.
`unbiasedness` measures both statements against jax.grad of a grid quadrature (Part II, "Mixtures in 1D").

**NGVI** (`wvi.ngvi`) is the natural-gradient baseline of Part II's "Particles in parameter space": the Bayesian
learning rule on (m, P = Σ⁻¹), P ← (1 − β)P + β E[−∇² log p], m ← m + β P⁻¹ E[∇ log p] (`wvi.ngvi.blr_update`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import divergences, flows
from wvi import gaussian as G
from wvi import mixtures as M
from wvi import _checks
from wvi._checks import check_choice
from wvi.algorithm import Algorithm

ESTIMATORS = ("rep", "path")
RATIO_SCALINGS = ("none", "max")


class _Family(NamedTuple):
    """The operations BBVI needs from a reparameterisable family, so that the code below is written once for
    Gaussians, mean-field Gaussians and mixtures (one dispatch, `_family`)."""

    check: Callable  # (q, name) -> None, raising ValueError
    first_mean: Callable  # q -> a mean of shape (d,) (a mixture's first component's)
    noise_shape: Callable  # (q, n) -> the shape of standard-normal noise for n draws (per component)
    draws: Callable  # (q, noise) -> (log weights (K,), samples (K, n, d)), K = 1 for a Gaussian
    sample: Callable  # (key, q, n) -> (n, d)
    log_prob: Callable  # (q, x (..., d)) -> (...)
    moments: Callable  # q -> (mean (d,), covariance (d, d))
    marginals: Callable  # (q, j) -> (weights (K,), means (K,), variances (K,)) of coordinate j


def _check_gaussian(q, name):
    G.check(q, name)
    G.check_vector(q, name, "BBVI (a family over vectors x of shape (d,))")


_GAUSSIAN = _Family(
    check=_check_gaussian,
    first_mean=lambda q: q.mean,
    noise_shape=lambda q, n: (n, G.dim(q)),
    draws=lambda q, noise: (jnp.zeros((1,), dtype=noise.dtype), G.reparameterize(q, noise)[None]),
    sample=G.sample,
    log_prob=G.log_prob,
    moments=lambda q: (q.mean, G.covariance(q)),
    marginals=lambda q, j: (jnp.ones(1), q.mean[j][None], G.covariance(q)[j, j][None]),
)
_MIXTURE = _Family(
    check=M.check,
    first_mean=lambda q: q.means[0],
    noise_shape=lambda q, n: (M.num_components(q), n, M.dim(q)),
    draws=lambda q, noise: (jax.nn.log_softmax(q.logits), M.reparameterize(q, noise)),
    sample=M.sample,
    log_prob=M.log_prob,
    moments=M.moments,
    marginals=lambda q, j: (M.weights(q), q.means[:, j], M.covariances(q)[:, j, j]),
)


def _family(q) -> _Family:
    return _MIXTURE if isinstance(q, M.Mixture) else _GAUSSIAN


class BBVIState(NamedTuple):
    q: G.AnyGaussian
    opt_state: optax.OptState

    @property
    def approximation(self):
        """The fitted q (a Gaussian, MeanField or Mixture)."""
        return self.q

    def sample(self, key, num_samples: int) -> jax.Array:
        """Draws (num_samples, d) from q."""
        return _family(self.q).sample(key, self.q, num_samples)


class BBVIInfo(NamedTuple):
    loss: jax.Array  # Monte Carlo estimate of KL(q‖p) - log Z at q before the update
    grad_norm: jax.Array  # Euclidean norm of the gradient estimate over all parameters


def check_log_density(log_density: Callable, q, name: str = "log_density") -> None:
    """Raise unless `log_density` maps a point of shape (d,) to a finite scalar at q's mean (a mixture's first mean)."""
    _checks.check_log_density(log_density, _family(q).first_mean(q), name)


def check_family(q, name: str = "q") -> None:
    """Raise unless q is a Gaussian, a MeanField over vectors or a Mixture (the reparameterisable families of
    `fdiv_loss`)."""
    if not isinstance(q, (G.Gaussian, G.MeanField, M.Mixture)):
        raise ValueError(f"{name} must be a wvi.gaussian.Gaussian, a wvi.gaussian.MeanField (over a vector) or a "
                         f"wvi.mixtures.Mixture; got {type(q).__name__}")
    _family(q).check(q, name)


def noise_shape(q, num_samples: int) -> tuple:
    """(n, d) for a Gaussian; (K, n, d) for a mixture, one batch per component."""
    return _family(q).noise_shape(q, num_samples)


def fdiv_loss(q, noise, log_density: Callable, divergence: str = "reverse_kl", estimator: str = "path",
              ratio_scaling: str = "none"):
    """(L_f, D̂_f): the surrogate whose gradient is the estimator (module docstring) and the Monte Carlo estimate
    Σ_k w_k mean_i f(r(x_{k,i})) of D_f(q‖p) (of KL − log Z for an unnormalised p under reverse KL).

    `estimator="rep"` (reverse KL only) differentiates through q's density too: the reparameterisation gradient."""
    div = divergences.get(divergence)
    check_choice(estimator, ESTIMATORS, "estimator")
    check_choice(ratio_scaling, RATIO_SCALINGS, "ratio_scaling")
    if estimator == "rep" and divergence != "reverse_kl":
        raise ValueError(f"estimator 'rep' is defined for divergence 'reverse_kl' only; got divergence {divergence!r}")
    family = _family(q)
    log_w, x = family.draws(q, noise)
    log_q = family.log_prob
    q_density = q if estimator == "rep" else jax.lax.stop_gradient(q)
    log_r = jax.vmap(jax.vmap(log_density))(x) - log_q(q_density, x)  # (K, n)
    shift = jax.lax.stop_gradient(jnp.max(log_r)) if ratio_scaling == "max" else 0.0
    w = jnp.exp(log_w)
    surrogate = -jnp.sum(w * jnp.mean(div.h_log(log_r - shift), axis=1))
    estimate = jnp.sum(jax.lax.stop_gradient(w) * jnp.mean(div.f_log(jax.lax.stop_gradient(log_r)), axis=1))
    return surrogate, estimate


def fdiv_grad(key, q, log_density: Callable, num_samples: int, divergence: str = "reverse_kl",
              estimator: str = "path", ratio_scaling: str = "none"):
    """(D̂_f, gradient) with `num_samples` fresh draws (per component); the gradient has q's pytree structure."""
    noise = jax.random.normal(key, noise_shape(q, num_samples), dtype=jnp.result_type(_family(q).first_mean(q)))
    (_, estimate), grad = jax.value_and_grad(fdiv_loss, has_aux=True)(q, noise, log_density, divergence, estimator, ratio_scaling)
    return estimate, grad


def kl_loss(q: G.AnyGaussian, noise, log_density: Callable, estimator: str = "path") -> jax.Array:
    """The Monte Carlo loss L above for standard-normal `noise` of shape (n, d); its gradient is the estimator.
    It is the reverse-KL case of `fdiv_loss`, whose surrogate −mean(log r − 1) is L + 1."""
    return fdiv_loss(q, noise, log_density, "reverse_kl", estimator)[0] - 1.0


def kl_grad(key, q: G.AnyGaussian, log_density: Callable, num_samples: int, estimator: str = "path"):
    """(loss, gradient) of `kl_loss` with `num_samples` fresh draws; the gradient has q's pytree structure."""
    return fdiv_grad(key, q, log_density, num_samples, "reverse_kl", estimator)


def gradient_variance(key, q: G.AnyGaussian, log_density: Callable, num_samples: int, estimator: str, num_repeats: int = 1000):
    """Total variance tr Cov[ĝ] of the `num_samples`-sample gradient estimator at q, from `num_repeats` draws."""
    check_choice(estimator, ESTIMATORS, "estimator")
    keys = jax.random.split(key, num_repeats)
    grads = jax.vmap(lambda k: kl_grad(k, q, log_density, num_samples, estimator)[1])(keys)
    flat = jnp.concatenate([g.reshape(num_repeats, -1) for g in jax.tree_util.tree_leaves(grads)], axis=1)
    return jnp.sum(jnp.var(flat, axis=0, ddof=1))


def path_euler_gap(q: G.Gaussian, noise, log_density: Callable):
    """(mean gap, covariance gap) between one path-estimator update and the sample BW velocity from the same draws.

    With x_i = m + S z_i for `noise` z (n, d), the path estimator's update (−∇_m L, −∇_S L) of `kl_loss` is pushed
    through π(S) = SSᵀ, dπ_S(V̂) = V̂Sᵀ + SV̂ᵀ, and compared with `wvi.flows.bw_velocity_samples` (Yi & Liu's "ODE
    evolution"): the largest absolute differences of the mean velocities and of the covariance velocities. Both
    are zero up to rounding sample by sample (Part I, "The Riemannian submersion"); the rep estimator's score
    terms make them O(1)."""
    G.check(q, "q")
    grad = jax.grad(lambda q_: fdiv_loss(q_, noise, log_density, "reverse_kl", "path")[0])(q)
    v_mean, v_scale = -grad.mean, -grad.scale
    scale = G.scale_matrix(q)
    ode_mean, ode_cov = flows.bw_velocity_samples(q.mean, scale, noise, jax.grad(log_density))
    return (jnp.max(jnp.abs(v_mean - ode_mean)),
            jnp.max(jnp.abs(v_scale @ scale.T + scale @ v_scale.T - ode_cov)))


UNBIASED_K = 4.0
"""The estimator's Monte Carlo mean is called unbiased when every coordinate is within this many standard errors
of the exact gradient (`unbiased`)."""


class Unbiasedness(NamedTuple):
    mean: np.ndarray  # Monte Carlo mean of the estimator over the draws, flattened over q's parameters
    standard_error: np.ndarray  # its standard error per coordinate, std / √num_draws
    exact: np.ndarray  # ∇D_f(q‖p) by differentiating the grid quadrature
    z: np.ndarray  # (mean − exact) / standard_error
    num_draws: int


def _flat(tree, leading: int | None = None) -> np.ndarray:
    leaves = jax.tree_util.tree_leaves(tree)
    if leading is None:
        return np.concatenate([np.ravel(np.asarray(x)) for x in leaves])
    return np.concatenate([np.asarray(x).reshape(leading, -1) for x in leaves], axis=1)


def exact_fdiv_grad(q, log_density: Callable, g: divergences.Grid, divergence: str):
    """∇_θ D_f(q‖p) with respect to q's parameters (q's pytree), by `jax.grad` of the quadrature of D_f on the grid
    `g` (`wvi.divergences.on_grid`). Both densities must be normalised and the grid must hold them."""
    log_p = jax.vmap(log_density)(g.points)
    return jax.grad(lambda q_: divergences.on_grid(divergence, log_prob(q_, g.points), log_p, g.cell_volume))(q)


def unbiasedness(key, q, log_density: Callable, g: divergences.Grid, num_samples: int, num_draws: int,
                 divergence: str, ratio_scaling: str = "none") -> Unbiasedness:
    """Yi & Liu's unbiasedness of the path estimator, measured: the mean of `num_draws` independent estimates
    (`fdiv_grad`, `num_samples` draws per component each) against the exact gradient `exact_fdiv_grad`, with
    z-scores per coordinate. Without ratio scaling the estimator's expectation is ∇D_f exactly (module
    docstring); `ratio_scaling="max"` multiplies each estimate by a random positive batch factor, which biases it
    (except for reverse KL, whose h is unchanged up to a constant). `log_density` must be normalised."""
    keys = jax.random.split(key, num_draws)
    draws = jax.vmap(lambda k: fdiv_grad(k, q, log_density, num_samples, divergence, "path", ratio_scaling)[1])(keys)
    flat = _flat(draws, num_draws)
    mean = flat.mean(axis=0)
    se = flat.std(axis=0, ddof=1) / np.sqrt(num_draws)
    exact = _flat(exact_fdiv_grad(q, log_density, g, divergence))
    return Unbiasedness(mean, se, exact, (mean - exact) / se, int(num_draws))


def unbiased(u: Unbiasedness, k: float = UNBIASED_K) -> bool:
    """The book's rule: every coordinate of the Monte Carlo mean within `k` standard errors of the exact gradient."""
    return bool(np.max(np.abs(u.z)) <= k)


def bbvi(log_density: Callable, optimizer: optax.GradientTransformation, num_samples: int, estimator: str = "path",
         divergence: str = "reverse_kl", ratio_scaling: str | None = None) -> Algorithm:
    """BBVI as an `Algorithm`: `init(q0) -> BBVIState`, `step(key, state) -> (BBVIState, BBVIInfo)`.

    Each step draws `num_samples` standard-normal vectors (per component for a mixture), forms the rep or path
    gradient of the divergence, and applies one update of `optimizer` (plain `optax.sgd(η)` gives the Euler scheme
    of Part I). `q0` may be a Gaussian, a MeanField over vectors or a `wvi.mixtures.Mixture`; the info's loss is D̂_f.

    Args:
      log_density: x -> log p(x) for a point of shape (d,), unnormalised for reverse KL; the other divergences need
        it normalised, or `ratio_scaling="max"`.
      optimizer: any optax GradientTransformation on the family's parameters.
      num_samples: draws per step (per component for a mixture).
      estimator: "path" (path derivative) or "rep" (reparameterisation; reverse KL only).
      divergence: a name of `wvi.divergences` ("reverse_kl", "forward_kl", "chi2", "hellinger", …).
      ratio_scaling: "none" or "max" (module docstring); None picks "none" for reverse KL and "max" otherwise, the
        only choice invariant to an unknown evidence Z (Part III, "Bayesian logistic regression").
    """
    if ratio_scaling is None:
        ratio_scaling = "none" if divergence == "reverse_kl" else "max"
    check_choice(estimator, ESTIMATORS, "estimator")
    divergences.get(divergence)
    check_choice(ratio_scaling, RATIO_SCALINGS, "ratio_scaling")
    if estimator == "rep" and divergence != "reverse_kl":
        raise ValueError(f"estimator 'rep' is defined for divergence 'reverse_kl' only; got divergence {divergence!r}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
    if not callable(log_density):
        raise ValueError(f"log_density must be a function x -> log p(x); got {type(log_density).__name__}")

    def init(q0) -> BBVIState:
        check_family(q0, "q0")
        check_log_density(log_density, q0)
        return BBVIState(q0, optimizer.init(q0))

    def step(key, state: BBVIState):
        loss, grad = fdiv_grad(key, state.q, log_density, num_samples, divergence, estimator, ratio_scaling)
        updates, opt_state = optimizer.update(grad, state.opt_state, state.q)
        q = optax.apply_updates(state.q, updates)
        grad_norm = jnp.sqrt(sum(jnp.vdot(g, g) for g in jax.tree_util.tree_leaves(grad)))
        return BBVIState(q, opt_state), BBVIInfo(loss, grad_norm)

    return Algorithm(init, step)


# ----------------------------------------------------------------------------------------------------------------
# The three families (Gaussian, MeanField, Mixture) seen alike: moments, draws, marginals, estimator weights
# ----------------------------------------------------------------------------------------------------------------

def moments(q):
    """(mean (d,), covariance (d, d)) of a Gaussian, MeanField or Mixture."""
    check_family(q)
    return _family(q).moments(q)


def sample(key, q, num_samples: int) -> jax.Array:
    """`num_samples` draws (num_samples, d) from a Gaussian, MeanField or Mixture."""
    check_family(q)
    return _family(q).sample(key, q, num_samples)


def log_prob(q, x) -> jax.Array:
    """log q(x) for points x (..., d) of a Gaussian, MeanField or Mixture."""
    check_family(q)
    return _family(q).log_prob(q, x)


def _log_ratios(key, q, log_density: Callable, num_samples: int) -> jax.Array:
    """log p̃(xᵢ) − log q(xᵢ) for `num_samples` draws xᵢ ~ q."""
    x = sample(key, q, num_samples)
    return jax.vmap(log_density)(x) - log_prob(q, x)


def _ess(w) -> jax.Array:
    """(Σ wᵢ)² / Σ wᵢ²: n for equal weights, 1 when one weight carries everything; invariant to a common scale."""
    return jnp.sum(w) ** 2 / jnp.sum(w**2)


def log_evidence(key, q, log_density: Callable, num_samples: int):
    """(log Ẑ, ESS): the importance-sampling estimate log (1/n) Σ p̃(xᵢ)/q(xᵢ), xᵢ ~ q, of the log normaliser of an
    unnormalised log density, and the effective sample size (Σ wᵢ)² / Σ wᵢ² of its weights (n when q ∝ p̃). A good
    proposal is a reverse-KL fit; the estimate is unbiased for Z, not for log Z (Part III)."""
    log_w = _log_ratios(key, q, log_density, num_samples)
    return jax.scipy.special.logsumexp(log_w) - jnp.log(num_samples), _ess(jnp.exp(log_w - jnp.max(log_w)))


def marginal_density(q, coordinate: int, points) -> jax.Array:
    """The density of coordinate j of x ~ q at `points` (n,): N(m_j, Σ_jj), or Σ_k w_k N(m_kj, Σ_k,jj)."""
    check_family(q)
    w, means, variances = _family(q).marginals(q, coordinate)
    points = jnp.asarray(points)[:, None]
    dens = jnp.exp(-0.5 * (points - means) ** 2 / variances) / jnp.sqrt(2 * jnp.pi * variances)
    return dens @ w


def estimator_weight_ess(key, q, log_density: Callable, num_samples: int, divergence: str) -> jax.Array:
    """Effective sample size (Σ wᵢ)² / Σ wᵢ² of the weights the path estimator of `divergence` puts on its draws.

    The estimator's gradient is −mean_i h′(rᵢ)∇rᵢ = −mean_i wᵢ ∇log rᵢ with wᵢ = rᵢ h′(rᵢ) = d h / d log r: 1 for
    reverse KL (ESS = n), r for forward KL, 2r² for χ², √r / 2 for Hellinger. An ESS near 1 means that one draw
    steers each update (Part III). For a mixture, the draws of all components are pooled."""
    div = divergences.get(divergence)
    log_r = _log_ratios(key, q, log_density, num_samples)
    return _ess(jax.vmap(jax.grad(div.h_log))(log_r - jnp.max(log_r)))


FAMILIES = ("mean-field", "full-covariance", "mixture")


def initial(family: str, dim: int, key=None, num_components: int = 3, scale: float = 1.0, spread: float = 0.5):
    """A standard start: N(0, scale² I) as a MeanField ("mean-field") or Gaussian ("full-covariance"), or an
    equal mixture of `num_components` N(μ_k, scale² I) with μ_k ~ N(0, spread² I) drawn with `key` ("mixture")."""
    check_choice(family, FAMILIES, "family")
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}")
    if family == "mean-field":
        return G.MeanField(jnp.zeros(dim), jnp.full((dim,), float(scale)))
    if family == "full-covariance":
        return G.Gaussian(jnp.zeros(dim), float(scale) * jnp.eye(dim))
    if key is None:
        raise ValueError("key is needed to draw the mixture components' starting means")
    means = spread * jax.random.normal(key, (num_components, dim))
    return M.uniform(means, jnp.broadcast_to(float(scale) * jnp.eye(dim), (num_components, dim, dim)))
