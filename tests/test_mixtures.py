"""Tests of wvi.mixtures: the Gaussian-mixture family, GFlow-VI and NGFlow-VI (K = 1 reductions, the safeguard)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wvi import bbvi, divergences, ngvi
from wvi import gaussian as G
from wvi import mixtures as M
from wvi.algorithm import run


def random_mixture(key, k=3, d=2):
    k1, k2, k3 = jax.random.split(key, 3)
    a = jax.random.normal(k3, (k, d, d)) * 0.3
    covs = a @ jnp.swapaxes(a, 1, 2) + 0.5 * jnp.eye(d)
    return M.from_weights(jax.random.uniform(k1, (k,)) + 0.1, jax.random.normal(k2, (k, d)), covs)


@pytest.mark.parametrize("d", [1, 2])
def test_density_integrates_to_one(d):
    q = random_mixture(jax.random.PRNGKey(d), k=3, d=d)
    g = divergences.grid([(-9, 9)] * d, 3000 if d == 1 else 300)
    mass = float(jnp.sum(jnp.exp(M.log_prob(q, g.points))) * g.cell_volume)
    assert abs(mass - 1.0) < 1e-6


def test_log_prob_matches_sum_of_gaussians():
    q = random_mixture(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 2))
    w = M.weights(q)
    direct = sum(w[k] * jnp.exp(G.log_prob(G.Gaussian(q.means[k], q.scales[k]), x)) for k in range(3))
    np.testing.assert_allclose(M.log_prob(q, x), jnp.log(direct), rtol=1e-10)


def test_sampling_matches_moments():
    q = random_mixture(jax.random.PRNGKey(2))
    n = 200_000
    x = M.sample(jax.random.PRNGKey(3), q, n)
    w, m = M.weights(q), q.means
    mean = w @ m
    cov = jnp.einsum("k,kij->ij", w, M.covariances(q) + m[:, :, None] * m[:, None, :]) - jnp.outer(mean, mean)
    se = jnp.sqrt(jnp.diag(cov) / n)
    assert np.all(np.abs(np.mean(x, axis=0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(np.asarray(x).T), cov, atol=5 * float(jnp.max(jnp.diag(cov))) * np.sqrt(2 / n))


def test_reparameterize_is_per_component():
    q = random_mixture(jax.random.PRNGKey(4))
    noise = jax.random.normal(jax.random.PRNGKey(5), (3, 11, 2))
    x = M.reparameterize(q, noise)
    np.testing.assert_allclose(x[1], q.means[1] + noise[1] @ q.scales[1].T, rtol=1e-12)


@pytest.mark.parametrize(
    "weights, means, covs, message",
    [
        ([0.5, -0.1], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "non-negative"),
        ([0.5, np.nan], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "non-finite"),
        ([0.5, 0.5, 0.2], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "weights must have one entry per component"),
        ([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]], [[1.0]]], "covs must have shape"),
        ([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[-1.0]]], "positive definite"),
    ],
)
def test_bad_mixtures_raise(weights, means, covs, message):
    with pytest.raises(ValueError, match=message):
        M.from_weights(np.array(weights), np.array(means), np.array(covs))


def test_mismatched_component_shapes_raise():
    with pytest.raises(ValueError, match="q.scales must have shape"):
        M.check(M.Mixture(jnp.zeros(2), jnp.zeros((2, 2)), jnp.ones((2, 3, 3))))
    with pytest.raises(ValueError, match="noise must have shape"):
        M.reparameterize(random_mixture(jax.random.PRNGKey(0)), jnp.zeros((2, 4, 2)))


def banana(x):
    return -((x[0] - 1.0) ** 2) - (x[1] - x[0] ** 2) ** 2 - jnp.log(jnp.pi)


def test_gflow_with_one_particle_is_a_path_bbvi_step():
    q = G.Gaussian(jnp.array([0.3, -0.2]), jnp.array([[1.0, 0.1], [0.3, 0.8]]))
    reference = bbvi.bbvi(banana, optax.sgd(0.01), 10, "path")
    flow = M.gflow_vi(banana, optax.sgd(0.01), 10)
    s_ref, s_flow = reference.init(q), flow.init(M.uniform(q.mean[None], q.scale[None]))
    for key in jax.random.split(jax.random.PRNGKey(0), 5):
        (s_ref, _), (s_flow, _) = reference.step(key, s_ref), flow.step(key, s_flow)
    np.testing.assert_allclose(s_flow.q.means[0], s_ref.q.mean, atol=1e-12)
    np.testing.assert_allclose(s_flow.q.scales[0], s_ref.q.scale, atol=1e-12)


def test_ngflow_with_one_particle_is_an_ngvi_step():
    q = G.from_covariance(jnp.array([0.3, -0.2]), jnp.array([[1.0, 0.2], [0.2, 0.5]]))
    reference, flow = ngvi.ngvi(banana, 0.05, 10), M.ngflow_vi(banana, 0.05, 10)
    s_ref, s_flow = reference.init(q), flow.init(M.uniform(q.mean[None], q.scale[None]))
    for key in jax.random.split(jax.random.PRNGKey(1), 5):
        (s_ref, _), (s_flow, _) = reference.step(key, s_ref), flow.step(key, s_flow)
    np.testing.assert_allclose(s_flow.means[0], s_ref.mean, atol=1e-10)
    np.testing.assert_allclose(s_flow.precisions[0], s_ref.precision, atol=1e-10)


def test_blr_update_is_the_natural_gradient_step_in_natural_parameters():
    """The Bayesian learning rule as a natural-gradient step, checked independently of its closed form: for a
    Gaussian q with natural parameters η = (Pm, −P/2) and expectation parameters μ = (m, mmᵀ + Σ), the natural
    gradient of L = E_q[ℓ] − H(q) in η is the ordinary gradient in μ, so η ← η − β ∇_μ L. L(μ) is written out for
    a quadratic ℓ = ½(x − a)ᵀA(x − a) and differentiated by jax.grad; `ngvi.blr_update` (without the safeguard)
    must give the same (m, P). This is what the chapter's K = 1 identity cannot check: ngflow_vi and ngvi share
    blr_update."""
    with jax.enable_x64(True):
        a_mat = jnp.array([[2.0, 0.6], [0.6, 1.0]])
        a_vec = jnp.array([0.5, -1.0])
        m = jnp.array([1.0, 2.0])
        precision = jnp.array([[1.5, -0.3], [-0.3, 0.8]])
        beta = 0.3

        def objective(mu1, mu2):  # L as a function of the expectation parameters
            sigma = mu2 - jnp.outer(mu1, mu1)
            expected_loss = 0.5 * (jnp.trace(a_mat @ sigma) + (mu1 - a_vec) @ a_mat @ (mu1 - a_vec))
            entropy = 0.5 * jnp.linalg.slogdet(2 * jnp.pi * jnp.e * sigma)[1]
            return expected_loss - entropy

        mu1, mu2 = m, jnp.outer(m, m) + jnp.linalg.inv(precision)
        d1, d2 = jax.grad(objective, argnums=(0, 1))(mu1, mu2)
        d2 = 0.5 * (d2 + d2.T)  # the symmetric part: η₂ is symmetric
        eta1, eta2 = precision @ m - beta * d1, -0.5 * precision - beta * d2
        p_new = -2 * eta2
        m_new = jnp.linalg.solve(p_new, eta1)
        mean, prec = ngvi.blr_update(m, precision, a_mat @ (m - a_vec), a_mat, beta, safeguard=False)
        np.testing.assert_allclose(prec, p_new, rtol=1e-12)
        np.testing.assert_allclose(mean, m_new, rtol=1e-12)


def test_ngvi_converges_to_a_gaussian_target():
    target = G.from_covariance(jnp.array([1.0, -2.0]), jnp.array([[1.0, 0.6], [0.6, 0.8]]))
    algorithm = ngvi.ngvi(lambda x: G.log_prob(target, x), 0.2, 5)
    state, _ = run(jax.random.PRNGKey(0), algorithm, algorithm.init(G.Gaussian(jnp.zeros(2), jnp.eye(2))), 100)
    # the Hessian of a Gaussian target is exact with any sample, so P converges to Σp⁻¹ geometrically; the mean
    # is a noisy AR(1) around mp with stationary covariance βΣp / (n(2 − β)) (gradient noise of n draws)
    np.testing.assert_allclose(jnp.linalg.inv(state.precision), G.covariance(target), atol=1e-8)
    se = np.sqrt(0.2 / (5 * 1.8) * np.diag(G.covariance(target)))
    assert np.all(np.abs(state.mean - target.mean) < 4 * se)


def double_well(x):
    """−log p has Hessian diag(3x₁² − 4, 1): indefinite for |x₁| < 1.15."""
    return -((x[0] ** 2 - 4.0) ** 2) / 4.0 - x[1] ** 2 / 2.0


@pytest.mark.parametrize("num_particles", [1, 3])
def test_safeguard_keeps_precisions_positive_definite(num_particles):
    means = jnp.stack([jnp.array([0.1 * k, 0.0]) for k in range(num_particles)])
    q0 = M.uniform(means, jnp.tile(0.3 * jnp.eye(2), (num_particles, 1, 1)))  # Σ = 0.09 I: E[∇²(−log p)] ≈ −3.7 in x₁
    key = jax.random.PRNGKey(0)
    plain = M.ngflow_vi(double_well, 0.9, 20, safeguard=False)
    state, _ = plain.step(key, plain.init(q0))
    assert np.min(np.linalg.eigvalsh(np.asarray(state.precisions))) < 0  # the plain rule does break here
    guarded = M.ngflow_vi(double_well, 0.9, 20, safeguard=True)
    state = guarded.init(q0)
    for k in jax.random.split(key, 30):
        state, _ = guarded.step(k, state)
        assert np.min(np.linalg.eigvalsh(np.asarray(state.precisions))) > 0


def test_gflow_particles_find_separate_modes():
    target = M.from_weights(jnp.array([0.5, 0.5]), jnp.array([[-3.0, 0.0], [3.0, 0.0]]), jnp.tile(jnp.eye(2), (2, 1, 1)))
    log_p = lambda x: M.log_prob(target, x)
    q0 = M.uniform(jnp.array([[-1.0, 0.5], [1.0, -0.5]]), jnp.tile(jnp.eye(2), (2, 1, 1)))
    for algorithm, to_q in ((M.gflow_vi(log_p, optax.sgd(0.05), 10), lambda s: s.q), (M.ngflow_vi(log_p, 0.05, 10), M.to_mixture)):
        state, _ = run(jax.random.PRNGKey(0), algorithm, algorithm.init(q0), 600)
        means = np.sort(np.asarray(to_q(state).means[:, 0]))
        np.testing.assert_allclose(means, [-3.0, 3.0], atol=0.15)


def test_flows_reject_bad_input():
    with pytest.raises(ValueError, match="equally weighted"):
        M.gflow_vi(banana, optax.sgd(0.01), 5).init(M.Mixture(jnp.array([0.0, 1.0]), jnp.zeros((2, 2)), jnp.tile(jnp.eye(2), (2, 1, 1))))
    with pytest.raises(ValueError, match="num_samples"):
        M.ngflow_vi(banana, 0.1, 0)
    with pytest.raises(ValueError, match="step_size"):
        M.ngflow_vi(banana, -0.1, 3)
    with pytest.raises(ValueError, match="finite log density"):
        M.gflow_vi(lambda x: jnp.nan * x[0], optax.sgd(0.01), 5).init(M.uniform(jnp.zeros((1, 2)), jnp.eye(2)[None]))


def test_components_on_modes_counts_and_off_mode():
    target = M.from_weights(jnp.full(2, 0.5), jnp.array([[-3.0, 0.0], [3.0, 0.0]]), jnp.tile(0.25 * jnp.eye(2), (2, 1, 1)))
    q = M.uniform(jnp.array([[-3.1, 0.2], [2.9, 0.0], [3.2, -0.3], [0.0, 0.0]]), jnp.tile(jnp.eye(2), (4, 1, 1)))
    counts, off = M.components_on_modes(q, target)
    assert counts.tolist() == [1, 2] and off == 1


def test_moments_match_the_law_of_total_variance():
    q = random_mixture(jax.random.PRNGKey(7))
    mean, cov = M.moments(q)
    g = divergences.grid([(-9, 9)] * 2, 300)
    density = jnp.exp(M.log_prob(q, g.points)) * g.cell_volume
    np.testing.assert_allclose(mean, density @ g.points, atol=1e-6)
    centred = g.points - mean
    np.testing.assert_allclose(cov, (centred * density[:, None]).T @ centred, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(step_size=float("nan")), "step_size must be a positive finite number"),
    (dict(step_size=-0.1), "step_size must be a positive finite number"),
    (dict(num_samples=True), "num_samples must be a positive integer"),
])
def test_ngvi_names_a_bad_argument(kwargs, match):
    args = dict(log_density=lambda x: -0.5 * jnp.sum(x**2), step_size=0.1, num_samples=4) | kwargs
    with pytest.raises(ValueError, match=match):
        ngvi.ngvi(**args)
