"""Tests of wvi.flows: velocities, the Euler schemes, the solve_ivp solution, Langevin particles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi import flows
from wvi import gaussian as G
from wvi.algorithm import DivergenceError, run, trace_loss


TARGET = G.Gaussian(jnp.zeros(2), jnp.array([[0.8, 0.4], [0.4, 0.8]]))
Q0 = G.Gaussian(jnp.array([4.0, 2.0]), 0.8 * jnp.eye(2))


def log_target(x):
    return G.log_prob(TARGET, x)


def test_sample_velocity_is_unbiased_for_the_exact_velocity():
    cov = G.covariance(Q0)
    exact_m, exact_c = flows.bw_velocity_gaussian(Q0.mean, cov, TARGET)
    n = 200_000
    noise = jax.random.normal(jax.random.key(0), (n, 2))
    est_m, est_c = flows.bw_velocity_samples(Q0.mean, Q0.scale, noise, jax.grad(log_target))
    # Per sample, g = -Σp⁻¹(m + Sz) + S⁻ᵀz is affine in z, so the velocity estimates are means of terms with
    # bounded moments: compare within 5 standard errors computed from the same draws.
    z = np.asarray(noise)
    g = (-np.linalg.inv(np.asarray(G.covariance(TARGET))) @ (np.asarray(Q0.mean)[:, None] + np.asarray(Q0.scale) @ z.T)).T
    g = g + np.linalg.solve(np.asarray(Q0.scale).T, z.T).T
    dx = z @ np.asarray(Q0.scale).T
    per_sample_c = g[:, :, None] * dx[:, None, :] + dx[:, :, None] * g[:, None, :]
    assert np.all(np.abs(est_m - exact_m) < 5 * g.std(0) / np.sqrt(n))
    assert np.all(np.abs(est_c - exact_c) < 5 * per_sample_c.std(0) / np.sqrt(n))


def test_fixed_point_is_the_target():
    d_m, d_c = flows.bw_velocity_gaussian(TARGET.mean, G.covariance(TARGET), TARGET)
    np.testing.assert_allclose(d_m, 0, atol=1e-14)
    np.testing.assert_allclose(d_c, 0, atol=1e-14)


def test_solve_ivp_matches_closed_form_mean():
    """The mean obeys ṁ = -Σp⁻¹ m exactly: m(t) = expm(-Σp⁻¹ t) m0."""
    from scipy.linalg import expm

    times = np.array([0.0, 0.5, 2.0])
    sol = flows.solve_bw_ode(Q0, TARGET, times)
    prec = np.linalg.inv(np.asarray(G.covariance(TARGET)))
    for t, m in zip(times, sol.mean):
        np.testing.assert_allclose(m, expm(-prec * t) @ np.asarray(Q0.mean), rtol=1e-9)
    np.testing.assert_allclose(sol.cov[0], G.covariance(Q0), atol=1e-14)
    late = flows.solve_bw_ode(Q0, TARGET, [30.0])
    assert float(G.w2(flows.to_gaussian(flows.BWState(late.mean[0], late.cov[0])), TARGET)) < 1e-6


def test_euler_is_first_order():
    times = [1.0]
    exact = flows.solve_bw_ode(Q0, TARGET, times)
    exact_q = flows.to_gaussian(flows.BWState(jnp.asarray(exact.mean[0]), jnp.asarray(exact.cov[0])))
    errors = []
    steps = [0.1, 0.05, 0.025, 0.0125]
    for h in steps:
        algorithm = flows.bw_euler_exact(TARGET, h)
        final, _ = run(jax.random.key(0), algorithm, algorithm.init(Q0), round(1.0 / h), trace_fn=trace_loss)
        errors.append(float(G.w2(final.approximation, exact_q)))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 0.9 < slope < 1.1


def test_bw_euler_algorithm_converges():
    algo = flows.bw_euler(log_target, 0.01, 5)
    state, _ = run(jax.random.key(1), algo, algo.init(Q0), 1001)
    assert float(G.w2(flows.to_gaussian(state), TARGET)) < 0.05


def test_langevin_stationary_moments():
    """At stationarity ULA for a Gaussian target has mean mp and covariance Σp + O(η)."""
    algo = flows.langevin(log_target, 0.01)
    x0 = G.sample(jax.random.key(2), Q0, 4000)
    state, _ = run(jax.random.key(3), algo, algo.init(x0), 1500, trace_fn=lambda s, i: i.mean_drift)
    fit = G.from_samples(state.particles)
    cov = np.asarray(G.covariance(TARGET))
    n = state.particles.shape[0]
    assert np.all(np.abs(np.asarray(fit.mean)) < 5 * np.sqrt(np.diag(cov) / n))
    # O(η) bias of ULA (η Σp / 2 at leading order) plus 5 standard errors of the sample covariance
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.asarray(G.covariance(fit)) - cov) < 0.01 * np.abs(cov).max() + 5 * se_cov)


def test_bad_inputs():
    with pytest.raises(ValueError, match="step_size must be positive"):
        flows.bw_euler(log_target, 0.0, 5)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        flows.bw_euler(log_target, 0.1, 2.5)
    with pytest.raises(ValueError, match=r"particles must be an array of shape \(num_particles, d\)"):
        flows.langevin(log_target, 0.1).init(jnp.zeros(3))
    with pytest.raises(ValueError, match="particles has 1 non-finite"):
        flows.langevin(log_target, 0.1).init(jnp.array([[0.0, jnp.nan]]))
    with pytest.raises(ValueError, match="times must be non-negative and strictly increasing"):
        flows.solve_bw_ode(Q0, TARGET, [1.0, 0.5])
    with pytest.raises(ValueError, match="q0 and target must have the same dimension"):
        flows.solve_bw_ode(G.Gaussian(jnp.zeros(3), jnp.eye(3)), TARGET, [1.0])


def test_euler_divergence_is_reported():
    algo = flows.bw_euler(log_target, 2.0, 5)
    with pytest.raises(DivergenceError, match=r"Euler-ODE diverged at step \d+ of 100"):
        run(jax.random.key(4), algo, algo.init(Q0), 100, name="Euler-ODE")


def test_scale_euler_is_bw_euler_plus_second_order_term():
    """One step on S, pushed through π(S) = SSᵀ: Σ + η Σ̇ + η² V Vᵀ with V = -∇_S KL = (Σ⁻¹ - Σp⁻¹) S."""
    eta = 0.05
    scale_euler, bw_euler = flows.scale_euler_exact(TARGET, eta), flows.bw_euler_exact(TARGET, eta)
    one_scale, scale_info = scale_euler.step(jax.random.key(0), scale_euler.init(Q0))
    one_bw, bw_info = bw_euler.step(jax.random.key(0), bw_euler.init(Q0))
    S = Q0.scale
    V = (jnp.linalg.inv(G.covariance(Q0)) - jnp.linalg.inv(G.covariance(TARGET))) @ S
    np.testing.assert_allclose(G.covariance(one_scale.approximation), one_bw.cov + eta**2 * V @ V.T, atol=1e-12)
    np.testing.assert_allclose(one_scale.q.mean, one_bw.mean, atol=1e-12)
    # both infos report the exact KL at the start
    np.testing.assert_allclose([scale_info.loss, bw_info.loss], float(G.kl(Q0, TARGET)), rtol=1e-12)


def test_scale_euler_converges_to_the_target():
    algorithm = flows.scale_euler_exact(TARGET, 0.01)
    final, losses = run(jax.random.key(0), algorithm, algorithm.init(Q0), 2000, trace_fn=trace_loss)
    assert float(G.w2(final.approximation, TARGET)) < 1e-4 and np.all(np.diff(losses) <= 1e-12)


def test_exact_euler_schemes_check_their_arguments_and_report_a_blow_up():
    with pytest.raises(ValueError, match="step_size must be a positive number; got 0"):
        flows.bw_euler_exact(TARGET, 0)
    with pytest.raises(ValueError, match="q0 must be a full-covariance Gaussian"):
        flows.scale_euler_exact(TARGET, 0.1).init(G.MeanField(jnp.zeros(2), jnp.ones(2)))
    # far beyond the stability limit 2/λmax(Σp⁻¹), the covariance overflows, and run names the step
    algorithm = flows.bw_euler_exact(TARGET, 1.0)
    with pytest.raises(DivergenceError, match="diverged at step [0-9]+ of 2000") as error:
        run(jax.random.key(0), algorithm, algorithm.init(Q0), 2000)
    assert 1 < error.value.step < 2000 and error.value.field.startswith(("state.", "info."))


def test_svgd_recovers_a_gaussian_target():
    import optax

    algorithm = flows.svgd(log_target, optax.sgd(0.1))
    x0 = 0.5 * jax.random.normal(jax.random.PRNGKey(0), (200, 2)) + 3.0
    state, _ = run(jax.random.PRNGKey(1), algorithm, algorithm.init(x0), 1500)
    x = np.asarray(state.particles)
    # SVGD particles are deterministic and spread like a quadrature rule: the mean converges fast; the covariance
    # is known to be biased low at finite n (Ba et al., 2021), by a few percent in 2D with 200 particles
    np.testing.assert_allclose(x.mean(axis=0), TARGET.mean, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), G.covariance(TARGET), atol=0.1)


def test_svgd_direction_is_zero_mean_drift_for_one_particle_pair_symmetry():
    """Two particles placed symmetrically about the mode of a symmetric target feel opposite forces."""
    x = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    grad = -x  # standard normal target
    phi = flows.svgd_direction(x, grad, 1.0)
    np.testing.assert_allclose(phi[0], -phi[1], atol=1e-12)


def test_svgd_rejects_bad_input():
    import optax

    with pytest.raises(ValueError, match="bandwidth"):
        flows.svgd(log_target, optax.sgd(0.1), bandwidth=-1.0)
    with pytest.raises(ValueError, match="at least 2 particles"):
        flows.svgd(log_target, optax.sgd(0.1)).init(jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="particles must be"):
        flows.svgd(log_target, optax.sgd(0.1)).init(jnp.zeros(3))


def test_relative_gap_and_coincide():
    """Identical trajectories have gap 0; a trajectory shifted by 0.2 from one at distance 1 has gap 0.2."""
    target = G.Gaussian(jnp.zeros(2), jnp.eye(2))
    means = jnp.stack([jnp.array([1.0, 0.0]), jnp.array([2.0, 0.0])])
    ref = G.Gaussian(means, jnp.broadcast_to(jnp.eye(2), (2, 2, 2)))
    shifted = G.Gaussian(means + jnp.array([0.0, 0.2]), ref.scale)
    np.testing.assert_allclose(flows.relative_gap(ref, ref, target), 0.0, atol=1e-6)
    np.testing.assert_allclose(flows.relative_gap(shifted, ref, target), [0.2, 0.1], rtol=1e-6)
    assert flows.coincide(ref, ref, target) and not flows.coincide(shifted, ref, target)
    assert flows.coincide(shifted, ref, target, tol=0.25)


def test_largest_relative_gaps_per_replica():
    """Replica r of (t, replica) trajectories is compared with replica r of the reference, or with the one
    reference trajectory; each gets its own largest gap (the shifts 0, 0.2 and 0.5 at distance 1)."""
    target = G.Gaussian(jnp.zeros(2), jnp.eye(2))
    means = jnp.stack([jnp.array([1.0, 0.0]), jnp.array([2.0, 0.0])])
    ref = G.Gaussian(means, jnp.broadcast_to(jnp.eye(2), (2, 2, 2)))
    shifts = jnp.array([0.0, 0.2, 0.5])
    qs = G.Gaussian(means[:, None] + shifts[:, None] * jnp.array([0.0, 1.0]), jnp.broadcast_to(jnp.eye(2), (2, 3, 2, 2)))
    np.testing.assert_allclose(flows.largest_relative_gaps(qs, ref, target), shifts, rtol=1e-6, atol=1e-6)
    refs = jax.tree_util.tree_map(lambda x: jnp.repeat(x[:, None], 3, axis=1), ref)
    np.testing.assert_allclose(flows.largest_relative_gaps(qs, refs, target), shifts, rtol=1e-6, atol=1e-6)
    for i, r in enumerate(shifts):  # the same as relative_gap replica by replica
        one = jax.tree_util.tree_map(lambda x: x[:, i], qs)
        assert flows.largest_relative_gaps(qs, ref, target)[i] == pytest.approx(flows.relative_gap(one, ref, target).max())
    with pytest.raises(ValueError, match="qs must have axes \\(t, replica\\)"):
        flows.largest_relative_gaps(ref, ref, target)
    short = jax.tree_util.tree_map(lambda x: x[:1], ref)
    with pytest.raises(ValueError, match="the same t"):
        flows.largest_relative_gaps(qs, short, target)


def test_coincidence_verdict_reads_the_median_and_the_95th_percentile():
    assert flows.coincidence_verdict([0.05] * 19 + [0.09]) == "reproduced"
    assert flows.coincidence_verdict([0.05] * 18 + [0.2, 0.3]) == "partly reproduced"  # 95th pct above 0.1
    assert flows.coincidence_verdict([0.2] * 20) == "not reproduced"
    assert flows.coincidence_verdict([0.2] * 20, tol=0.25) == "reproduced"
    with pytest.raises(ValueError, match="gaps must be one largest gap per seed"):
        flows.coincidence_verdict([0.05])


def test_one_flow_verdict_compares_the_methods_gap_with_the_seeds_mean_less_k_standard_errors():
    pairs = [0.08, 0.07, 0.09, 0.08]  # mean 0.08, s.e. 0.0041: mean − 3 s.e. = 0.0678
    assert flows.one_flow_verdict(0.03, pairs) == "reproduced"
    assert flows.one_flow_verdict(0.07, pairs) == "not testable at this scale"  # below the mean, within 3 s.e.
    assert flows.one_flow_verdict(0.08, pairs) == "not reproduced"  # no closer than two seeds
    assert flows.one_flow_verdict(0.07, pairs, k=2.0) == "reproduced"  # mean − 2 s.e. = 0.0718
    with pytest.raises(ValueError, match="seed_pair_gaps must be one finite gap per independent pair"):
        flows.one_flow_verdict(0.03, [0.08])


def test_one_flow_gaps_takes_the_largest_gap_between_methods_and_one_gap_per_pair_of_seeds():
    """Two methods, four seeds, constant trajectories of 1D Gaussians N(m, 1): W2 is |Δm|."""
    def path(m):
        return jnp.full((3, 1), m), jnp.ones((3, 1, 1))
    offsets = {0: 0.0, 1: 1.0, 2: 0.0, 3: 3.0}  # the seeds' means; method "b" sits 0.1 (seed 3: 0.2) above "a"
    paths = {("a", s): path(o) for s, o in offsets.items()}
    paths.update({("b", s): path(o + (0.2 if s == 3 else 0.1)) for s, o in offsets.items()})
    between, pairs = flows.one_flow_gaps(paths, range(4))
    assert between == pytest.approx(0.2)
    np.testing.assert_allclose(pairs, [1.0, 3.05])  # pair (0, 1): 1 and 1; pair (2, 3): 3 and 3.1
    with pytest.raises(ValueError, match="an even number of seeds, at least 4"):
        flows.one_flow_gaps(paths, range(3))
    with pytest.raises(ValueError, match="missing"):
        flows.one_flow_gaps(paths, range(6))


def test_bw_euler_step_runs_eagerly_where_the_covariance_is_not_positive_definite():
    """The step's info (its KL estimate) must not validate the Gaussian: an eager step from a Σ that stopped being
    positive definite returns NaNs for `run` to report, instead of raising from inside the step."""
    algo = flows.bw_euler(lambda x: -0.5 * jnp.sum(x**2), 0.1, 8)
    state, info = algo.step(jax.random.key(0), flows.BWState(jnp.zeros(2), jnp.array([[1.0, 0.0], [0.0, -1.0]])))
    assert not np.isfinite(float(info.loss))
