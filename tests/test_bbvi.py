"""Tests of wvi.bbvi: the estimators' expectations, their variance at the optimum, the init/step API."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wvi import bbvi, divergences
from wvi import gaussian as G
from wvi import mixtures as M
from wvi.algorithm import DivergenceError, run, trace_loss


TARGET = G.Gaussian(jnp.array([0.5, -1.0]), jnp.array([[0.8, 0.4], [0.4, 0.8]]))
Q = G.Gaussian(jnp.array([2.0, 1.0]), jnp.array([[1.1, 0.3], [-0.2, 0.6]]))


def log_target(x):
    return G.log_prob(TARGET, x)


def flatten(grad):
    return jnp.concatenate([g.ravel() for g in jax.tree_util.tree_leaves(grad)])


@pytest.mark.parametrize("estimator", ["rep", "path"])
def test_estimators_are_unbiased_for_the_closed_form_kl_gradient(estimator):
    """The mean of many single-batch estimates matches ∇KL(q‖p) within 5 standard errors, coordinate-wise."""
    exact = flatten(jax.grad(G.kl)(Q, TARGET))
    repeats = 20_000
    keys = jax.random.split(jax.random.key(0), repeats)
    grads = jax.vmap(lambda k: flatten(bbvi.kl_grad(k, Q, log_target, 4, estimator)[1]))(keys)
    se = grads.std(0, ddof=1) / np.sqrt(repeats)
    assert np.all(np.abs(grads.mean(0) - exact) < 5 * se + 1e-12)


def test_expected_path_gradient_of_scale():
    """E[path gradient w.r.t. S] = -(E[∇log p(x) zᵀ] + S⁻ᵀ) = Σp⁻¹ S - S⁻ᵀ for a Gaussian target."""
    expected = jnp.linalg.solve(G.covariance(TARGET), Q.scale) - jnp.linalg.inv(Q.scale).T
    _, grad = bbvi.kl_grad(jax.random.key(1), Q, log_target, 400_000, "path")
    np.testing.assert_allclose(grad.scale, expected, atol=0.02)


def test_path_variance_vanishes_at_the_optimum_but_rep_does_not():
    key = jax.random.key(2)
    at_opt = G.Gaussian(TARGET.mean, jnp.linalg.cholesky(G.covariance(TARGET)) @ jnp.array([[0.0, -1.0], [1.0, 0.0]]))
    path = float(bbvi.gradient_variance(key, at_opt, log_target, 5, "path", 200))
    rep = float(bbvi.gradient_variance(key, at_opt, log_target, 5, "rep", 200))
    assert path < 1e-20
    assert rep > 0.1
    assert float(bbvi.gradient_variance(key, Q, log_target, 5, "path", 200)) > 0.01


def test_loss_value_is_the_kl_estimate_for_both_estimators():
    noise = jax.random.normal(jax.random.key(3), (10, 2))
    rep = bbvi.kl_loss(Q, noise, log_target, "rep")
    path = bbvi.kl_loss(Q, noise, log_target, "path")
    assert float(rep) == pytest.approx(float(path), rel=1e-12)


def test_build_runs_and_converges_with_any_optax_optimiser():
    for optimizer in (optax.sgd(0.01), optax.adam(0.02)):
        algo = bbvi.bbvi(log_target, optimizer, num_samples=5, estimator="path")
        state, (trace_state, info) = run(jax.random.key(4), algo, algo.init(Q), 1500)
        assert float(G.w2(state.q, TARGET)) < 0.05
        assert info.loss.shape == (1500,)


def test_same_seed_same_result():
    algo = bbvi.bbvi(log_target, optax.sgd(0.01), 5, "rep")
    a, _ = run(jax.random.key(5), algo, algo.init(Q), 50)
    b, _ = run(jax.random.key(5), algo, algo.init(Q), 50)
    c, _ = run(jax.random.key(6), algo, algo.init(Q), 50)
    np.testing.assert_array_equal(a.q.scale, b.q.scale)
    assert not np.allclose(a.q.scale, c.q.scale)


def test_diag_gaussian_family():
    # Mean-field path gradients do not vanish at a correlated target's optimum, so the step size must decay.
    algo = bbvi.bbvi(log_target, optax.sgd(optax.exponential_decay(0.1, 1000, 0.1)), 50, "path")
    q0 = G.MeanField(jnp.zeros(2), jnp.ones(2))
    state, _ = run(jax.random.key(7), algo, algo.init(q0), 2000)
    assert isinstance(state.q, G.MeanField)
    # the mean-field optimum of KL(q‖p) for a Gaussian p: mean = mp, std_i = 1/sqrt((Σp⁻¹)_ii)
    prec = jnp.linalg.inv(G.covariance(TARGET))
    np.testing.assert_allclose(state.q.mean, TARGET.mean, atol=0.02)
    np.testing.assert_allclose(state.q.std, 1 / jnp.sqrt(jnp.diag(prec)), atol=0.02)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"unknown estimator 'score'; expected one of 'rep', 'path'"):
        bbvi.bbvi(log_target, optax.sgd(0.1), 5, "score")
    with pytest.raises(ValueError, match=r"num_samples must be a positive integer"):
        bbvi.bbvi(log_target, optax.sgd(0.1), 0)
    algo = bbvi.bbvi(lambda x: jnp.nan * jnp.sum(x), optax.sgd(0.1), 5)
    with pytest.raises(ValueError, match=r"log_density returned nan at the mean of q"):
        algo.init(Q)
    algo = bbvi.bbvi(lambda x: x, optax.sgd(0.1), 5)
    with pytest.raises(ValueError, match=r"log_density must return a scalar"):
        algo.init(Q)
    with pytest.raises(ValueError, match=r"q0\.scale is singular"):
        bbvi.bbvi(log_target, optax.sgd(0.1), 5).init(G.Gaussian(jnp.zeros(2), jnp.zeros((2, 2))))
    with pytest.raises(ValueError, match=r"q0 must be a MeanField over a vector .* for BBVI"):
        bbvi.bbvi(log_target, optax.sgd(0.1), 5).init(G.meanfield({"w": jnp.zeros(2)}, 1.0))


def test_divergence_reports_the_step():
    algo = bbvi.bbvi(log_target, optax.sgd(5.0), 5, "path")
    with pytest.raises(DivergenceError, match=r"BBVI diverged at step \d+ of 200: .* became NaN or infinite"):
        run(jax.random.key(8), algo, algo.init(Q), 200, name="BBVI")


# ---- f-divergence path estimator (Part II) ----------------------------------------------------------------

TARGET_1D = M.from_weights(jnp.array([0.4, 0.3, 0.3]), jnp.array([[-1.0], [0.8], [3.0]]), jnp.array([[[0.25]], [[0.25]], [[0.64]]]))
GRID_1D = divergences.grid([(-14.0, 16.0)], 6000)


def quadrature_divergence(q, name):
    return divergences.on_grid(name, M.log_prob(q, GRID_1D.points), M.log_prob(TARGET_1D, GRID_1D.points), GRID_1D.cell_volume)


@pytest.mark.parametrize("name", list(divergences.DIVERGENCES))
@pytest.mark.parametrize("family", ["gaussian", "mixture"])
def test_fdiv_path_estimator_is_unbiased(name, family):
    """The mean of many path-derivative estimates equals ∇D_f computed by quadrature, within Monte Carlo error."""
    if family == "mixture":
        q = M.Mixture(jnp.array([0.2, -0.3]), jnp.array([[-0.5], [1.5]]), jnp.array([[[1.1]], [[1.3]]]))
        exact = jax.grad(quadrature_divergence)(q, name)
    else:
        q = G.Gaussian(jnp.array([0.6]), jnp.array([[1.6]]))
        as_mixture = lambda g: M.Mixture(jnp.zeros(1), g.mean[None], g.scale[None])
        exact = jax.grad(lambda g: quadrature_divergence(as_mixture(g), name))(q)
    log_p = lambda x: M.log_prob(TARGET_1D, x)
    repeats, n = 4000, 8
    grads = jax.vmap(lambda k: bbvi.fdiv_grad(k, q, log_p, n, name)[1])(jax.random.split(jax.random.PRNGKey(0), repeats))
    for leaf_est, leaf_exact in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(exact)):
        mean = np.mean(np.asarray(leaf_est), axis=0)
        se = np.std(np.asarray(leaf_est), axis=0, ddof=1) / np.sqrt(repeats)
        assert np.all(np.abs(mean - np.asarray(leaf_exact)) < 4.5 * se + 1e-6), (mean, leaf_exact, se)


def test_fdiv_estimate_is_the_divergence():
    q = M.Mixture(jnp.array([0.2, -0.3]), jnp.array([[-0.5], [1.5]]), jnp.array([[[1.1]], [[1.3]]]))
    log_p = lambda x: M.log_prob(TARGET_1D, x)
    n = 200_000
    for name in divergences.DIVERGENCES:
        estimate, _ = bbvi.fdiv_grad(jax.random.PRNGKey(1), q, log_p, n, name)
        # per-component sample means of f(r), weighted: standard error from the per-sample spread
        noise = jax.random.normal(jax.random.PRNGKey(1), (2, n, 1))
        x = M.reparameterize(q, noise)
        values = divergences.get(name).f_log(log_p(x) - M.log_prob(q, x))
        se = float(jnp.sqrt(jnp.sum(M.weights(q) ** 2 * jnp.var(values, axis=1) / n)))
        assert abs(float(estimate) - float(quadrature_divergence(q, name))) < 5 * se + 1e-6


def test_max_ratio_scaling_keeps_the_direction():
    q = M.Mixture(jnp.array([0.2, -0.3]), jnp.array([[-0.5], [1.5]]), jnp.array([[[1.1]], [[1.3]]]))
    log_p = lambda x: M.log_prob(TARGET_1D, x)
    key = jax.random.PRNGKey(2)
    for name in ("forward_kl", "chi2", "hellinger"):
        plain = jax.tree_util.tree_leaves(bbvi.fdiv_grad(key, q, log_p, 20, name)[1])
        scaled = jax.tree_util.tree_leaves(bbvi.fdiv_grad(key, q, log_p, 20, name, ratio_scaling="max")[1])
        flat_plain, flat_scaled = jnp.concatenate([a.ravel() for a in plain]), jnp.concatenate([a.ravel() for a in scaled])
        ratio = flat_scaled / flat_plain
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-8)  # one positive constant for the whole gradient
        assert ratio[0] > 0


def test_reverse_kl_estimators_match_a_direct_implementation():
    """For a Gaussian, the f-divergence code under reverse KL gives the gradient of mean(log q' − log p) at
    x = m + S z, with q' = q (rep) or q held fixed (path), written out directly here."""
    q = G.Gaussian(jnp.array([0.3, -0.2]), jnp.array([[1.0, 0.0], [0.4, 0.7]]))
    log_p = lambda x: -0.5 * jnp.sum((x - 1.0) ** 2)
    key = jax.random.PRNGKey(3)
    noise = jax.random.normal(key, (16, 2))

    def direct(params, estimator):
        x = params.mean + noise @ params.scale.T
        density = params if estimator == "rep" else jax.lax.stop_gradient(params)
        return jnp.mean(G.log_prob(density, x) - jax.vmap(log_p)(x))

    for estimator in bbvi.ESTIMATORS:
        _, g1 = bbvi.fdiv_grad(key, q, log_p, 16, "reverse_kl", estimator)
        g2 = jax.grad(direct)(q, estimator)
        for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_fdiv_bad_inputs_raise():
    q = G.Gaussian(jnp.zeros(1), jnp.eye(1))
    log_p = lambda x: M.log_prob(TARGET_1D, x)
    with pytest.raises(ValueError, match="unknown divergence 'tv'.*'reverse_kl'"):
        bbvi.fdiv_grad(jax.random.PRNGKey(0), q, log_p, 4, "tv")
    with pytest.raises(ValueError, match="unknown divergence"):
        bbvi.bbvi(log_p, optax.adam(0.01), 4, "path", "kl")
    with pytest.raises(ValueError, match="'rep' is defined for divergence 'reverse_kl' only"):
        bbvi.bbvi(log_p, optax.adam(0.01), 4, "rep", "chi2")
    with pytest.raises(ValueError, match="unknown ratio_scaling"):
        bbvi.bbvi(log_p, optax.adam(0.01), 4, "path", "chi2", "clip")
    with pytest.raises(ValueError, match="q0.scales must have shape"):
        bbvi.bbvi(log_p, optax.adam(0.01), 4, "path", "chi2").init(M.Mixture(jnp.zeros(2), jnp.zeros((2, 1)), jnp.ones((2, 2, 2))))


def test_mixture_fit_lowers_every_divergence():
    log_p = lambda x: M.log_prob(TARGET_1D, x)
    q0 = M.Mixture(jnp.zeros(2), jnp.array([[-0.2], [0.4]]), jnp.ones((2, 1, 1)))
    for name in divergences.DIVERGENCES:
        algorithm = bbvi.bbvi(log_p, optax.adam(0.02), 10, "path", name, "none" if name == "reverse_kl" else "max")
        state, _ = run(jax.random.PRNGKey(4), algorithm, algorithm.init(q0), 400)
        assert float(quadrature_divergence(state.q, name)) < 0.5 * float(quadrature_divergence(q0, name)), name


# ------------------------------------------------------------------ the three families alike (Part III)
FAMILY_STARTS = {family: bbvi.initial(family, 2, key=jax.random.key(0)) for family in bbvi.FAMILIES}


@pytest.mark.parametrize("family", bbvi.FAMILIES)
def test_moments_sample_and_marginals_agree(family):
    q = FAMILY_STARTS[family]
    mean, cov = bbvi.moments(q)
    x = bbvi.sample(jax.random.key(1), q, 100_000)
    std = np.sqrt(np.diag(np.asarray(cov)))
    # 5 standard errors of a mean (std/√n) and of a std (≈ std/√(2n))
    assert np.all(np.abs(np.asarray(x.mean(0) - mean)) < 5 * std / np.sqrt(len(x)))
    assert np.all(np.abs(np.asarray(x.std(0)) - std) < 5 * std / np.sqrt(2 * len(x)))
    grid = jnp.linspace(-8.0, 8.0, 4001)
    density = bbvi.marginal_density(q, 1, grid)
    step = float(grid[1] - grid[0])
    assert float(jnp.sum(density) * step) == pytest.approx(1.0, abs=1e-6)
    assert float(jnp.sum(grid * density) * step) == pytest.approx(float(mean[1]), abs=1e-6)


def test_initial_starts():
    assert isinstance(FAMILY_STARTS["mean-field"], G.MeanField)
    assert isinstance(FAMILY_STARTS["full-covariance"], G.Gaussian)
    assert M.num_components(FAMILY_STARTS["mixture"]) == 3
    with pytest.raises(ValueError, match="unknown family 'flow'"):
        bbvi.initial("flow", 2)
    with pytest.raises(ValueError, match="key is needed"):
        bbvi.initial("mixture", 2)


def test_estimator_weight_ess():
    """Reverse KL weighs every draw alike; at q = p every ratio is 1, so every divergence's ESS is n; a q twice as
    wide as p gives forward KL and χ² an ESS below n, χ² below forward KL (its weights are the squared ratios)."""
    key = jax.random.key(0)
    narrow = G.Gaussian(TARGET.mean, 2.0 * TARGET.scale)
    assert float(bbvi.estimator_weight_ess(key, narrow, log_target, 64, "reverse_kl")) == pytest.approx(64.0)
    for name in ("forward_kl", "chi2", "hellinger"):
        assert float(bbvi.estimator_weight_ess(key, TARGET, log_target, 64, name)) == pytest.approx(64.0)
    fkl = float(bbvi.estimator_weight_ess(key, narrow, log_target, 64, "forward_kl"))
    chi2 = float(bbvi.estimator_weight_ess(key, narrow, log_target, 64, "chi2"))
    assert chi2 < fkl < 64


def test_default_ratio_scaling_and_a_measured_curve():
    q0 = bbvi.initial("full-covariance", 2)
    measure = lambda state: float(G.w2(state.approximation, TARGET))
    for divergence in ("reverse_kl", "forward_kl"):
        algorithm = bbvi.bbvi(log_target, optax.adam(0.05), 32, divergence=divergence)
        _, curve = run(jax.random.key(0), algorithm, algorithm.init(q0), 600, chunk=200, measure=measure)
        assert list(curve.steps) == [0, 200, 400, 600]
        assert curve.values[-1] < 0.1 * curve.values[0]
    # the unnormalised target works for forward KL because the default scaling is "max" ("none" does not)
    shifted = lambda x: log_target(x) + 500.0
    algorithm = bbvi.bbvi(shifted, optax.adam(0.05), 32, divergence="forward_kl")
    final, _ = run(jax.random.key(0), algorithm, algorithm.init(q0), 600, trace_fn=trace_loss)
    assert float(G.w2(final.approximation, TARGET)) < 0.2
    with pytest.raises(DivergenceError):
        algorithm = bbvi.bbvi(shifted, optax.adam(0.05), 32, divergence="forward_kl", ratio_scaling="none")
        run(jax.random.key(0), algorithm, algorithm.init(q0), 600, trace_fn=trace_loss)


def test_log_evidence_recovers_a_known_normaliser():
    """p̃ = Z·N(m, Σ) with log Z = 3: a proposal equal to the target gives log Ẑ = 3 exactly and ESS = n; a wider one
    gives log Ẑ within 5 standard errors (the relative std of the weights over √n) and a smaller ESS."""
    unnormalised = lambda x: log_target(x) + 3.0
    log_z, ess = bbvi.log_evidence(jax.random.key(0), TARGET, unnormalised, 1000)
    assert float(log_z) == pytest.approx(3.0, abs=1e-10) and float(ess) == pytest.approx(1000.0)
    wide = G.Gaussian(TARGET.mean, 1.5 * TARGET.scale)
    log_z, ess = bbvi.log_evidence(jax.random.key(1), wide, unnormalised, 100_000)
    x = bbvi.sample(jax.random.key(1), wide, 100_000)
    w = np.exp(np.asarray(jax.vmap(log_target)(x) - bbvi.log_prob(wide, x)))
    assert abs(float(log_z) - 3.0) < 5 * w.std() / w.mean() / np.sqrt(len(w))
    assert float(ess) < 100_000
    # the family-agnostic log density agrees with each family's own
    mix = FAMILY_STARTS["mixture"]
    np.testing.assert_allclose(bbvi.log_prob(mix, jnp.zeros(2)), M.log_prob(mix, jnp.zeros(2)))


def test_exact_fdiv_grad_matches_the_closed_form_kl_gradient():
    """jax.grad of the grid quadrature of reverse KL is the gradient of the closed-form KL (1D Gaussians)."""
    target = G.Gaussian(jnp.array([0.3]), jnp.array([[0.7]]))
    q = G.Gaussian(jnp.array([-0.4]), jnp.array([[1.3]]))
    grid = divergences.grid([(-12.0, 12.0)], 4000)
    exact = bbvi.exact_fdiv_grad(q, lambda x: G.log_prob(target, x), grid, "reverse_kl")
    np.testing.assert_allclose(flatten(exact), flatten(jax.grad(G.kl)(q, target)), rtol=1e-6)


def test_path_euler_gap_vanishes_for_the_path_estimator():
    """The path update pushed through dπ is the ODE's sample velocity, draw by draw (Part I)."""
    noise = jax.random.normal(jax.random.key(3), (6, 2))
    assert max(bbvi.path_euler_gap(Q, noise, log_target)) < 1e-12


def test_unbiasedness_of_the_reverse_kl_path_estimator():
    """bbvi.unbiased accepts the (unbiased) path estimator and rejects a halved copy of its mean."""
    grid = divergences.grid([(-10.0, 10.0)], 3000)
    target = G.Gaussian(jnp.array([0.5]), jnp.array([[0.8]]))
    q = G.Gaussian(jnp.array([-0.5]), jnp.array([[1.2]]))
    u = bbvi.unbiasedness(jax.random.key(0), q, lambda x: G.log_prob(target, x), grid, 10, 4000, "reverse_kl")
    assert u.z.shape == (2,) and bbvi.unbiased(u)
    assert not bbvi.unbiased(u._replace(z=(u.mean / 2 - u.exact) / u.standard_error))
