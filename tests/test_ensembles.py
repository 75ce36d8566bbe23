"""Tests of wvi.ensembles: DE / DLE / DRLE updates, the MMD kernel and repulsion, stationary laws on a grid."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi import ensembles as E
from wvi import networks
from wvi.algorithm import run


def test_dle_stationary_law_matches_the_gaussian_gibbs_law():
    # ℓ(θ) = (θ − a)²/(2s²) and P = N(0, σ0²): Q* ∝ exp(−ℓ/λ2) p is Gaussian with precision 1/(s²λ2) + 1/σ0².
    a, s, lam2, sigma0 = 1.0, 0.7, 0.5, 1.5
    precision = 1 / (s**2 * lam2) + 1 / sigma0**2
    var, mean = 1 / precision, a / (s**2 * lam2) / precision
    n, eta, steps = 4000, 1e-3, 6000  # T = 6 ≫ the relaxation time 1/precision = 0.22
    alg = E.ensemble(lambda t: jnp.sum((t - a) ** 2) / (2 * s**2), "dle", eta, lam2=lam2, prior_std=sigma0)
    final, _ = run(jax.random.key(0), alg, alg.init(jnp.zeros((n, 1))), steps, trace_fn=lambda s, i: i.loss)
    x = np.asarray(final.particles[:, 0])
    # Euler–Maruyama's own bias on the variance is var·η·precision/2 ≈ 5e-4 relative, far below the errors below.
    assert abs(x.mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(x.var() - var) < 5 * var * np.sqrt(2 / n)


def test_langevin_variance_inflation_at_a_large_step_is_what_sharpness_documents():
    """E.sharpness's docstring: at step η on U = λθ²/2 the unadjusted Langevin variance is (1/λ)/(1 − ηλ/2). At
    ηλ = 1 that is twice the target's; the two differ by about 22 standard errors of the sample variance (n = 4000)."""
    lam, eta, n = 50.0, 0.02, 4000  # ηλ = 1; prior σ0 = 1e3: its pull λ2θ/σ0² is negligible
    alg = E.ensemble(lambda t: lam * jnp.sum(t**2) / 2, "dle", eta, lam2=1.0, prior_std=1e3)
    final, _ = run(jax.random.key(0), alg, alg.init(jnp.zeros((n, 1))), 200, trace_fn=lambda s, i: i.loss)
    predicted = (1 / lam) / (1 - eta * lam / 2)
    assert abs(float(jnp.var(final.particles)) - predicted) < 4 * predicted * np.sqrt(2 / n)
    assert float(E.sharpness(lambda t: lam * jnp.sum(t**2) / 2, final.particles[:3])[0]) == pytest.approx(lam)


def test_sharpness_is_the_largest_hessian_eigenvalue_of_each_member():
    """ℓ(θ) = ½ θᵀ A_θ θ + ¼ Σ w⁴ on a two-leaf pytree: the Hessian at θ is A plus diag(3w²) on the w block."""
    a = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])

    def loss(p):
        flat = jnp.concatenate([p["w"], p["b"]])
        return 0.5 * flat @ a @ flat + 0.25 * jnp.sum(p["w"] ** 4)

    members = {"w": jnp.array([[0.0, 0.0], [2.0, 0.0], [1.0, -1.0]]), "b": jnp.zeros((3, 1))}
    expected = [np.linalg.eigvalsh(np.asarray(a) + np.diag(np.r_[3 * np.asarray(w) ** 2, 0.0]))[-1]
                for w in members["w"]]
    np.testing.assert_allclose(E.sharpness(loss, members), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="share one leading axis"):
        E.sharpness(loss, {"w": jnp.zeros((3, 2)), "b": jnp.zeros((2, 1))})


def test_dle_with_zero_loss_samples_the_prior_leaf_by_leaf():
    # ℓ = 0: Q* = P, with a different prior standard deviation per leaf of the member pytree.
    prior_std = {"a": 0.5, "b": 2.0}
    n = 4000
    alg = E.ensemble(lambda t: 0.0 * (jnp.sum(t["a"]) + jnp.sum(t["b"])), "dle", 1e-3, lam2=1.0, prior_std=prior_std)
    state = alg.init({"a": jnp.zeros((n, 3)), "b": jnp.zeros((n, 2))})
    final, _ = run(jax.random.key(1), alg, state, 20_000, trace_fn=lambda s, i: i.loss)  # T = 20 ≫ 4 (relaxation of b)
    for leaf, std in prior_std.items():
        sd = np.asarray(final.particles[leaf]).std(0)
        assert np.all(np.abs(sd / std - 1) < 5 * np.sqrt(1 / (2 * n)) + 0.01), (leaf, sd)


def test_de_step_is_plain_gradient_descent():
    loss = lambda t: jnp.sum(jnp.sin(t) * t**2)
    x = jax.random.normal(jax.random.key(2), (5, 3))
    alg = E.ensemble(loss, "de", 0.1)
    state, info = alg.step(jax.random.key(3), alg.init(x))
    np.testing.assert_allclose(state.particles, x - 0.1 * jax.vmap(jax.grad(loss))(x), rtol=1e-12)
    np.testing.assert_allclose(info.loss, jnp.mean(jax.vmap(loss)(x)), rtol=1e-12)


def test_drle_step_is_the_dle_step_plus_the_scaled_repulsion():
    loss = lambda t: jnp.sum(t**4) / 4
    x = jax.random.normal(jax.random.key(4), (7, 2))
    key, step_key = jax.random.key(5), jax.random.key(6)
    dle = E.ensemble(loss, "dle", 0.01, lam2=0.3, prior_std=1.2)
    drle = E.ensemble(loss, "drle", 0.01, lam1=0.7, lam2=0.3, prior_std=1.2, bandwidth=0.8, num_prior_samples=11)
    s_dle, _ = dle.step(step_key, dle.init(x))
    init = drle.init(x, key)
    assert init.prior_samples.shape == (11, 2)
    s_drle, info = drle.step(step_key, init)
    expected = s_dle.particles - 0.01 * 0.7 * E.repulsion(x, init.prior_samples, 0.8)
    np.testing.assert_allclose(s_drle.particles, expected, rtol=1e-12, atol=1e-14)
    assert float(info.bandwidth) == 0.8


def test_repulsion_is_the_gradient_of_the_mmd_estimate():
    x = jax.random.normal(jax.random.key(7), (9, 4))
    y = 1.5 * jax.random.normal(jax.random.key(8), (13, 4))
    for bandwidth in (0.3, 2.0):
        autodiff = jax.grad(lambda z: E.mmd2(z, y, bandwidth))(x)
        np.testing.assert_allclose(E.repulsion(x, y, bandwidth), x.shape[0] / 2 * autodiff, rtol=1e-10, atol=1e-14)


def test_median_bandwidth_is_the_median_pairwise_distance():
    x = jax.random.normal(jax.random.key(9), (10, 3))  # 45 pairs: an odd count, one median
    d = np.asarray(E.sq_distances(x, x))[np.triu_indices(10, k=1)]
    np.testing.assert_allclose(E.median_bandwidth(x), np.median(d), rtol=1e-8)


def test_particles_can_be_mlp_pytrees():
    sizes = (1, 8, 1)
    members = jax.vmap(lambda k: networks.mlp_init(k, sizes))(jax.random.split(jax.random.key(10), 6))
    xs, ys = jnp.linspace(-1, 1, 20)[:, None], jnp.sin(jnp.linspace(-1, 1, 20))
    loss = lambda p: jnp.sum((networks.mlp_apply(p, xs)[:, 0] - ys) ** 2)
    alg = E.ensemble(loss, "drle", 1e-2, lam1=1.0, lam2=1e-3, prior_std=networks.mlp_prior_std(sizes))
    final, losses = run(jax.random.key(11), alg, alg.init(members, jax.random.key(12)), 300, trace_fn=lambda s, i: i.loss)
    assert jax.tree_util.tree_structure(final.particles) == jax.tree_util.tree_structure(members)
    assert losses[-1] < 0.5 * losses[0]


def test_minibatch_loss_is_unbiased():
    xs = jnp.arange(10.0)
    ys = xs**2
    example = lambda t, x, y: (t * x - y) ** 2
    full = float(jnp.sum(jax.vmap(example, in_axes=(None, 0, 0))(2.0, xs, ys)))
    loss = E.minibatch_loss(example, (xs, ys), 3)
    draws = np.asarray(jax.vmap(lambda k: loss(2.0, k))(jax.random.split(jax.random.key(13), 20_000)))
    assert abs(draws.mean() - full) < 5 * draws.std() / np.sqrt(draws.size)
    np.testing.assert_allclose(E.minibatch_loss(example, (xs, ys), 10)(2.0, jax.random.key(0)), full, rtol=1e-12)


def toy1_loss(t):
    return 1.5 * (t**4 / 4 + t**3 / 3 - t**2) - 3 / 8


def test_free_energy_minimiser_without_mmd_is_the_gibbs_density():
    grid = np.linspace(-6, 6, 1201)
    gibbs = E.gibbs_density(toy1_loss(grid), grid, 1.0)
    np.testing.assert_allclose(E.free_energy_minimiser(toy1_loss(grid), grid, 0.0, 1.0), gibbs, atol=1e-9)
    assert abs(np.trapezoid(gibbs, grid) - 1) < 1e-9


def test_free_energy_minimiser_satisfies_the_stationarity_condition():
    grid = np.linspace(-6, 6, 1201)
    lam1, lam2, bw = 1.0, 1.0, 1.0
    q = E.free_energy_minimiser(toy1_loss(grid), grid, lam1, lam2, bandwidth=bw)
    w = np.full(grid.size, grid[1] - grid[0])
    w[[0, -1]] /= 2
    k = np.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2 * bw))
    p = np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi)
    potential = toy1_loss(grid) + lam1 * (k @ (w * q) - k @ (w * p)) + lam2 * np.log(q / p)
    mass = q * w > 1e-8  # where the density is resolved
    assert np.ptp(potential[mass]) < 1e-6


def test_two_sample_w2_shrinks_like_one_over_root_n():
    """The W2 between two sets of n exact draws from N(0, 1): its mean falls as n grows, about like 1/√n up to a
    log factor in 1D, and the same key gives the same pairs."""
    grid = np.linspace(-8, 8, 4001)
    density = np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi)
    small = E.two_sample_w2(jax.random.key(3), grid, density, 100, num_pairs=50)
    large = E.two_sample_w2(jax.random.key(3), grid, density, 1600, num_pairs=50)
    assert small.shape == large.shape == (50,) and np.all(small > 0)
    assert 2.5 < small.mean() / large.mean() < 6.0  # √16 = 4
    np.testing.assert_array_equal(small, E.two_sample_w2(jax.random.key(3), grid, density, 100, num_pairs=50))


def test_distances_between_particle_sets():
    key = jax.random.key(14)
    x = np.asarray(jax.random.normal(key, (500, 3)))
    assert E.sliced_w2(key, x, x) == 0.0
    np.testing.assert_allclose(E.sliced_w2(key, x[:, 0], x[:, 0] + 0.7), 0.7, rtol=1e-12)
    grid = np.linspace(-8, 8, 4001)
    density = np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi)
    edges = np.linspace(-3, 3, 13)
    draws = E.sample_density(jax.random.key(15), grid, density, 20_000)
    # Bin-count errors are about sqrt(p_b/N); their sum over 13 bins stays below 0.05 at N = 20 000.
    assert E.tv_to_density(draws, grid, density, edges) < 0.05
    assert E.tv_to_density(draws + 3.0, grid, density, edges) > 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="svgd"), "unknown ensemble method"),
        (dict(method="dle", lam2=-1.0), "lam2 must be a finite number ≥ 0"),
        (dict(method="drle", lam1=-0.5, lam2=1.0), "lam1 must be a finite number ≥ 0"),
        (dict(method="drle", lam1=1.0, lam2=1.0, bandwidth=0.0), "bandwidth must be a positive number"),
        (dict(method="drle", lam1=1.0, lam2=1.0, bandwidth="silverman"), "unknown bandwidth"),
        (dict(method="de", lam2=1.0), "method 'de' has no regulariser"),
        (dict(method="dle", lam2=0.0), "needs lam2 > 0"),
        (dict(method="dle", lam2=1.0, prior_std=-1.0), "prior_std must be positive"),
        (dict(method="de", step_size=0.0), "step_size must be positive"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    kwargs = {"step_size": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        E.ensemble(lambda t: jnp.sum(t**2), **kwargs)


def test_bad_particles_raise():
    alg = E.ensemble(lambda t: jnp.sum(t["a"] ** 2) + jnp.sum(t["b"] ** 2), "drle", 0.1, lam1=1.0, lam2=1.0)
    with pytest.raises(ValueError, match="share one leading axis"):
        alg.init({"a": jnp.zeros((5, 2)), "b": jnp.zeros((4, 2))}, jax.random.key(0))
    with pytest.raises(ValueError, match=r"particles\['a'\] has 1 non-finite"):
        alg.init({"a": jnp.zeros((5, 2)).at[0, 0].set(jnp.nan), "b": jnp.zeros((5, 2))}, jax.random.key(0))
    with pytest.raises(ValueError, match="needs a key"):
        alg.init({"a": jnp.zeros((5, 2)), "b": jnp.zeros((5, 2))})
    dle = E.ensemble(lambda t: jnp.sum(t**2), "dle", 0.1, lam2=1.0, prior_std={"w": 1.0})
    with pytest.raises(ValueError, match="prior_std must be a positive scalar or a pytree shaped like one"):
        dle.init(jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="same shape"):
        E.sliced_w2(jax.random.key(0), np.zeros((5, 2)), np.zeros((4, 2)))


def test_fit_regression_learns_a_noisy_line():
    x = np.linspace(-1, 1, 200)[:, None]
    y = 0.8 * x[:, 0] + 0.3 * np.asarray(jax.random.normal(jax.random.key(20), (200,)))
    for method, kwargs in (("de", {}), ("dle", dict(lam2=1.0))):
        members = E.fit_regression(jax.random.key(21), x, y, method, hidden=(16,), num_members=3,
                                   step_size=5e-4, num_steps=4000, batch_size=50, **kwargs)
        mean, log_var = jax.vmap(lambda p: networks.gaussian_head(p, jnp.asarray(x)))(members)
        assert mean.shape == (3, 200)
        # the ensemble mean is much closer to the line than the best constant (RMSE 0.8/sqrt(3) = 0.46), and the
        # predicted noise std is of the right order (0.3)
        assert np.sqrt(np.mean((np.asarray(mean.mean(0)) - 0.8 * x[:, 0]) ** 2)) < 0.2, method
        assert 0.15 < float(np.exp(0.5 * np.median(log_var))) < 0.45, method
    with pytest.raises(ValueError, match="x_train must be"):
        E.fit_regression(jax.random.key(0), x[:, 0], y)


def test_bin_masses_of_a_gaussian():
    from scipy.stats import norm

    grid = np.linspace(-8, 8, 8001)
    density = norm.pdf(grid)
    edges = np.array([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(E.bin_masses(grid, density, edges), np.diff(norm.cdf(edges)), atol=1e-7)


# ---------------------------------------------------------------- the free energy of a 1D law (Part IV, section 4)

def _double_well_setup(num=601):
    from wvi.targets import double_well
    grid = np.linspace(-6.0, 6.0, num)
    return grid, double_well(grid)


def test_free_energy_at_the_prior_is_the_expected_loss_and_the_minimisers_beat_other_laws():
    # At Q = P the MMD and KL terms vanish: F(P) = ∫ℓ dP = 1.5·(3/4 − 1) − 3/8 = −0.75 for the double well.
    grid, ell = _double_well_setup()
    p = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    for lam1 in (0.0, 1.0):
        assert abs(E.free_energy_density(grid, p, ell, lam1, 1.0) + 0.75) < 1e-6
    q_dle = E.gibbs_density(ell, grid, 1.0)
    q_drle = E.free_energy_minimiser(ell, grid, 1.0, 1.0, bandwidth=1.0)
    # Each law minimises its own F: lower than the other's law, the prior, and mixtures with them.
    for lam1, own, other in ((0.0, q_dle, q_drle), (1.0, q_drle, q_dle)):
        f_own = E.free_energy_density(grid, own, ell, lam1, 1.0)
        for q in (other, p, 0.9 * own + 0.1 * other, 0.9 * own + 0.1 * p):
            assert f_own < E.free_energy_density(grid, q, ell, lam1, 1.0)
    # DLE's F at its Gibbs law is −λ2 log Z, Z = ∫ exp(−ℓ/λ2) p.
    log_z = np.log(np.trapezoid(np.exp(-ell) * p, grid))
    assert abs(E.free_energy_density(grid, q_dle, ell, 0.0, 1.0) + log_z) < 1e-6


def test_free_energy_estimate_of_exact_draws_is_close_to_the_grid_value():
    grid, ell = _double_well_setup()
    q = E.free_energy_minimiser(ell, grid, 1.0, 1.0, bandwidth=1.0)
    exact = E.free_energy_density(grid, q, ell, 1.0, 1.0)
    estimates = [E.free_energy_estimate(E.sample_density(k, grid, q, 2000), grid, ell, 1.0, 1.0)
                 for k in jax.random.split(jax.random.key(0), 10)]
    # The kernel density estimate's smoothing biases the KL term low by a few hundredths at N = 2000.
    assert -0.1 < np.mean(estimates) - exact < 0.0
    assert np.std(estimates) < 0.02


def test_stationary_verdict_accepts_exact_draws_and_refuses_the_other_law():
    grid, ell = _double_well_setup()
    q_dle = E.gibbs_density(ell, grid, 1.0)
    q_drle = E.free_energy_minimiser(ell, grid, 1.0, 1.0, bandwidth=1.0)
    edges = np.linspace(-3.5, 2.5, 13)
    x = E.sample_density(jax.random.key(1), grid, q_dle, 3000)
    verdict, own, other, floor = E.stationary_verdict(x, grid, q_dle, q_drle, edges, jax.random.key(2), 100)
    assert verdict == "reproduced" and own <= floor < other
    assert E.stationary_verdict(x, grid, q_drle, q_dle, edges, jax.random.key(2), 100)[0] == "not reproduced"


def test_gap_verdict_rule():
    assert E.gap_ratio_threshold(100) == pytest.approx(1.3)
    assert E.gap_verdict(0.4, 0.2, 0.2, 100) == "reproduced"
    # wider than DE in the gaps, but no wider there than on the data: uniform widening, not the claim
    assert E.gap_verdict(0.26, 0.26, 0.15, 100) == "not reproduced"
    assert E.gap_verdict(0.4, 0.2, 0.35, 100) == "partly reproduced"  # widens in the gaps, as much as DE
    assert E.gap_verdict(0.16, 0.2, 0.15, 100) == "not reproduced"


def test_step_terms_measure_each_part_of_the_update():
    loss = lambda t: 0.5 * jnp.sum(t**2) * 3.0  # ∇ℓ = 3θ
    x = jax.random.normal(jax.random.key(3), (6, 4))
    prior_samples = jax.random.normal(jax.random.key(4), (50, 4))
    terms = E.step_terms(loss, x, 0.01, lam1=0.5, lam2=0.2, prior_std=2.0, bandwidth=0.7,
                         prior_samples=prior_samples)
    norms = np.linalg.norm(np.asarray(x), axis=1).mean()
    assert terms["gradient"] == pytest.approx(0.01 * 3 * norms, rel=1e-5)
    assert terms["prior"] == pytest.approx(0.01 * 0.2 * norms / 4, rel=1e-5)
    assert terms["noise"] == pytest.approx(np.sqrt(2 * 0.2 * 0.01 * 4), rel=1e-6)
    r = np.linalg.norm(np.asarray(E.repulsion(x, prior_samples, 0.7)), axis=1).mean()
    assert terms["repulsion"] == pytest.approx(0.01 * 0.5 * r, rel=1e-5)
    assert E.step_terms(loss, x, 0.01, lam2=0.2)["repulsion"] == 0.0


def test_regression_scores_in_original_units():
    """regression_scores against scipy: the mixture NLL of two members' Gaussians and the RMSEs, scaled by y_std."""
    from scipy.stats import norm

    from wvi.data import Split

    sizes = (1, 4, 2)
    members = jax.vmap(lambda k: networks.mlp_init(k, sizes, networks.mlp_prior_std(sizes)))(jax.random.split(jax.random.key(0), 2))
    rng = np.random.default_rng(0)
    split = Split(rng.normal(size=(7, 1)), rng.normal(size=7), rng.normal(size=(5, 1)), rng.normal(size=5), y_std=2.5)
    nll, rmse, train_rmse = E.regression_scores(members, split)
    means, log_vars = (np.asarray(a, np.float64) for a in jax.vmap(lambda p: networks.gaussian_head(p, jnp.asarray(split.x_test)))(members))
    density = norm.pdf(split.y_test, means, np.exp(0.5 * log_vars)).mean(0)
    np.testing.assert_allclose(nll, -np.mean(np.log(density)) + np.log(2.5), rtol=1e-5)
    np.testing.assert_allclose(rmse, np.sqrt(np.mean((means.mean(0) - split.y_test) ** 2)) * 2.5, rtol=1e-5)
    train_means = np.asarray(jax.vmap(lambda p: networks.gaussian_head(p, jnp.asarray(split.x_train)))(members)[0])
    np.testing.assert_allclose(train_rmse, np.sqrt(np.mean((train_means.mean(0) - split.y_train) ** 2)) * 2.5, rtol=1e-5)
