"""Tests of wvi.barrier: the W2 geodesic between mean-field Gaussians, the mixture path and the loss barrier."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi import barrier, bnn, gaussian, networks
from wvi import gaussian as G


def _pair():
    m0 = networks.mlp_he_init(jax.random.key(0), [2, 5, 3])
    m1 = networks.mlp_he_init(jax.random.key(1), [2, 5, 3])
    return G.meanfield(m0, 0.05), G.meanfield(m1, jax.tree_util.tree_map(lambda a: 0.1 + 0 * a, m1))


def test_geodesic_endpoints_are_q0_and_q1():
    q0, q1 = _pair()
    for tau, q in ((0.0, q0), (1.0, q1)):
        g = G.geodesic(q0, q1, tau)
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(q)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        G.geodesic(q0, q1, 1.5)


def test_geodesic_is_the_w2_geodesic_of_diagonal_gaussians():
    # against the full-covariance closed form of wvi.gaussian: W2(q_t, q0) = t W2(q0, q1), W2(q_t, q1) = (1 − t) W2
    m0, m1 = {"w": jnp.array([0.0, 1.0, -2.0])}, {"w": jnp.array([1.0, 0.5, 0.0])}
    q0 = G.meanfield(m0, {"w": jnp.array([0.5, 1.0, 2.0])})
    q1 = G.meanfield(m1, {"w": jnp.array([1.5, 0.2, 1.0])})

    def full(q):
        return gaussian.Gaussian(q.mean["w"], jnp.diag(q.std["w"]))

    total = gaussian.w2(full(q0), full(q1))
    np.testing.assert_allclose(total ** 2, G.w2_squared(q0, q1), rtol=1e-10)
    for t in (0.25, 0.6):
        qt = G.geodesic(q0, q1, t)
        np.testing.assert_allclose(gaussian.w2(full(q0), full(qt)), t * total, rtol=1e-8)
        np.testing.assert_allclose(gaussian.w2(full(qt), full(q1)), (1 - t) * total, rtol=1e-8)


def test_barrier_from_losses():
    taus = np.linspace(0, 1, 5)
    b, t = barrier.barrier_from_losses(taus, [1.0, 2.0, 3.5, 2.5, 2.0])
    assert b == pytest.approx(3.5 - 1.5) and t == 0.5
    b, _ = barrier.barrier_from_losses(taus, [1.0, 1.0, 1.0, 1.0, 1.0])
    assert b == 0.0
    with pytest.raises(ValueError, match="non-finite values at tau"):
        barrier.barrier_from_losses(taus, [1.0, np.nan, 1.0, 1.0, 1.0])


def test_loss_curves_at_the_ends_match_the_predictives():
    q0, q1 = _pair()
    apply = partial(networks.mlp_apply, activation="relu")
    x = jax.random.normal(jax.random.key(3), (40, 2))
    y = jax.random.randint(jax.random.key(4), (40,), 0, 3)
    key = jax.random.key(5)
    ends = [-float(jnp.mean(bnn.predictive_log_density(key, q, apply, x, y, 32))) for q in (q0, q1)]
    for path in ("geodesic", "mixture"):
        curve = barrier.loss_curve(key, q0, q1, apply, x, y, num_taus=5, num_samples=32, path=path)
        np.testing.assert_allclose(curve.losses[[0, -1]], ends, rtol=1e-10)
        assert curve.barrier >= 0.0
    # the mixture's predictive is the mixture of predictives, so its loss is below the straight line (concavity)
    mix = barrier.loss_curve(key, q0, q1, apply, x, y, num_taus=5, num_samples=32, path="mixture")
    assert mix.barrier == 0.0
    with pytest.raises(ValueError, match="unknown path 'linear'"):
        barrier.loss_curve(key, q0, q1, apply, x, y, path="linear")


def test_plane_passes_through_its_three_points():
    thetas = [networks.mlp_he_init(jax.random.key(k), [2, 4, 3]) for k in range(3)]
    p = barrier.plane(*thetas)
    assert p.points.shape == (3, 2) and p.points[1, 1] == 0.0
    np.testing.assert_allclose(float(jnp.vdot(p.u, p.v)), 0.0, atol=1e-6)
    for theta, (x, y) in zip(thetas, p.points):
        for a, b in zip(jax.tree_util.tree_leaves(barrier.plane_point(p, x, y)), jax.tree_util.tree_leaves(theta)):
            np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="collinear"):
        barrier.plane(thetas[0], thetas[1], thetas[1])


def test_naive_and_aligned_finds_a_planted_permutation_and_removes_the_barrier():
    from wvi import align

    apply = partial(networks.mlp_apply, activation="relu")
    q0 = G.meanfield(networks.mlp_he_init(jax.random.key(0), [3, 32, 32, 4]), 0.01)
    spec = align.mlp_spec(q0.mean)
    q1 = align.permute(q0, spec, align.random_perms(jax.random.key(1), spec, q0))
    x = jax.random.normal(jax.random.key(2), (40, 3))
    y = jnp.argmax(apply(q0.mean, x), axis=-1)
    result = barrier.naive_and_aligned(jax.random.key(3), q0, q1, spec, apply, {"train": (x, y)}, num_taus=5, num_samples=4)
    assert result.naive["train"].barrier > 0.1
    assert abs(result.aligned["train"].barrier) < 1e-5
    assert np.all(np.diff(result.alignment.objectives) >= 0)


def test_sweep_orders_reuse_naive_and_aligned_keys_and_separate_orders_from_evaluation_noise():
    from wvi import align

    apply = partial(networks.mlp_apply, activation="relu")
    m0, m1 = (networks.mlp_he_init(jax.random.key(k), [3, 16, 16, 4]) for k in (0, 1))
    q0 = G.meanfield(m0, 0.1)
    spec = align.mlp_spec(q0.mean)
    # q1: halfway to another network, relabelled: a barrier after alignment, and orders that disagree
    halfway = G.meanfield(jax.tree_util.tree_map(lambda a, b: (a + b) / 2, m0, m1), 0.1)
    q1 = align.permute(halfway, spec, align.random_perms(jax.random.key(5), spec, q0))
    x = jax.random.normal(jax.random.key(2), (40, 3))
    y = jnp.argmax(apply(q0.mean, x), axis=-1)
    key = jax.random.key(3)
    study = barrier.sweep_orders(key, q0, q1, spec, apply, x, y, num_orders=3, num_eval_keys=3, num_taus=5,
                                 num_samples=4)
    reference = barrier.naive_and_aligned(key, q0, q1, spec, apply, {"test": (x, y)}, num_taus=5, num_samples=4)
    # order 0 and evaluation key 0 are naive_and_aligned's with the same key
    assert study.barriers[0] == pytest.approx(reference.aligned["test"].barrier, abs=1e-6)
    assert study.objectives[0] == pytest.approx(reference.alignment.objectives[-1])
    assert study.eval_barriers[0] == study.barriers[0] and study.agreements[0] == 1.0
    # each order's barrier is the barrier of its own permutations under evaluation key 0
    k_eval = jax.random.split(key)[1]
    for k in (1, 2):
        direct = barrier.loss_curve(k_eval, q0, align.permute(q1, spec, study.perms[k]), apply, x, y, 5, 4)
        assert study.barriers[k] == pytest.approx(direct.barrier, abs=1e-6)
    assert len(set(study.eval_barriers.round(8))) == 3  # other keys, other posterior samples
    assert study.barriers[0] > 0.01 and study.agreements[1] < 1  # a barrier left, and another alignment
    assert study.w2_squared[1] == pytest.approx(float(G.w2_squared(q0, align.permute(q1, spec, study.perms[1]))))
    assert study.sweeps.shape == study.agreements.shape == study.w2_squared.shape == (3,)
    with pytest.raises(ValueError, match="num_orders must be an integer >= 2"):
        barrier.sweep_orders(key, q0, q1, spec, apply, x, y, num_orders=1)
    # reusing naive_and_aligned's result for order 0 gives the same study without aligning order 0 again
    reused = barrier.sweep_orders(key, q0, q1, spec, apply, x, y, num_orders=3, num_eval_keys=3, num_taus=5,
                                  num_samples=4, reuse=reference)
    for field, value in study._asdict().items():
        if field == "perms":
            assert all(jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))
                       for a, b in zip(value, reused.perms))
        else:
            np.testing.assert_allclose(getattr(reused, field), value, rtol=0, atol=1e-6, err_msg=field)
    assert reused.barriers[0] == reference.aligned["test"].barrier
    with pytest.raises(ValueError, match="reuse_split must name a split of reuse's curves"):
        barrier.sweep_orders(key, q0, q1, spec, apply, x, y, reuse=reference, reuse_split="train")
    # another pair's result, or another grid of taus, is refused rather than taken as order 0
    with pytest.raises(ValueError, match="reuse must be naive_and_aligned's result for this q1"):
        barrier.sweep_orders(key, q0, halfway, spec, apply, x, y, num_taus=5, num_samples=4, reuse=reference)
    with pytest.raises(ValueError, match="its 5 taus differ"):
        barrier.sweep_orders(key, q0, q1, spec, apply, x, y, num_taus=7, num_samples=4, reuse=reference)


def test_variance_beyond_noise_is_an_f_test_against_pooled_noise():
    from scipy import stats

    noise = np.array([[1.0, 1.1, 0.9], [2.0, 2.1, 1.9]])  # pooled variance 0.01 on 4 degrees of freedom
    spread = np.array([[0.0, 0.1, 0.2, 0.3], [5.0, 5.1, 5.2, 5.3]])  # variance 0.0167 each: F = 1.67, no effect
    result = barrier.variance_beyond_noise(spread, noise)
    assert result.dof == (3, 4) and result.noise_sd == pytest.approx(0.1)
    assert result.ratios == pytest.approx([1 / 0.6] * 2) and result.critical == pytest.approx(stats.f.ppf(0.99, 3, 4))
    assert not result.exceeds.any()
    planted = spread * np.array([[10.0], [1.0]])  # the first pair's values spread ten times wider: F = 167
    assert barrier.variance_beyond_noise(planted, noise).exceeds.tolist() == [True, False]
    assert barrier.variance_beyond_noise(planted, noise, level=0.5).exceeds.tolist() == [True, True]
    assert not barrier.variance_beyond_noise([[1.0, 1.0]], [[0.0, 0.0]]).exceeds.any()  # 0/0: no effect seen
    with pytest.raises(ValueError, match="noise must be a finite"):
        barrier.variance_beyond_noise(spread, [1.0, 1.1])
    with pytest.raises(ValueError, match="values must be a finite"):
        barrier.variance_beyond_noise([[1.0, float("nan")]], noise)
    with pytest.raises(ValueError, match="level must be in"):
        barrier.variance_beyond_noise(spread, noise, level=1.0)


def test_verdict_rules_of_part5():
    # alignment_verdict: every pair meets the claim -> reproduced; none -> not; some -> partly; fewer than 3 pairs raise
    assert barrier.alignment_verdict([1.0, 1.2, 0.9], [0.0, 0.1, 0.2], fraction=0.25) == "reproduced"
    assert barrier.alignment_verdict([1.0, 1.2, 0.9], [1.0, 1.2, 0.9], fraction=0.25) == "not reproduced"
    assert barrier.alignment_verdict([1.0, 1.2, 0.9], [0.0, 0.6, 0.0], fraction=0.25) == "partly reproduced"
    assert barrier.alignment_verdict([0.4, 1.2, 0.9], [0.0, 0.0, 0.0], fraction=0.25, min_naive=0.5) == "partly reproduced"
    with pytest.raises(ValueError, match="at least 3 pairs"):
        barrier.alignment_verdict([1.0, 1.0], [0.0, 0.0], fraction=0.25)
    # zero_barrier_verdict (Fig. 4): a naive barrier at 0.5 nats/point or below is no barrier to remove, and an
    # aligned one must fall below a quarter of the naive one
    assert barrier.zero_barrier_verdict([1.0, 1.2, 0.9], [0.2, 0.1, 0.2]) == "reproduced"
    assert barrier.zero_barrier_verdict([0.4, 0.3, 0.45], [0.0, 0.0, 0.0]) == "not reproduced"
    assert barrier.zero_barrier_verdict([1.0, 1.2, 0.9], [0.26, 0.1, 0.2]) == "partly reproduced"
    with pytest.raises(ValueError, match="at least 3 pairs"):
        barrier.zero_barrier_verdict([1.0, 1.0], [0.0, 0.0])
    # the rule in words, which the ledger rows quote, states the thresholds the verdict uses
    assert barrier.ZERO_BARRIER_RULE == "naive > 0.5 nats/point and aligned < 0.25 × naive"
    # trend_verdict: the change of the means counts only beyond k standard errors of the difference
    low, high = [1.2, 1.3, 1.4], [1.7, 1.8, 1.9]  # s = 0.1 each: s.e. of the difference 0.1·√(2/3) ≈ 0.082
    assert barrier.trend_verdict(low, high) == "not reproduced"
    assert barrier.trend_verdict(high, low) == "reproduced"
    assert barrier.trend_verdict(low, high, falls=False) == "reproduced"
    assert barrier.trend_verdict(low, [1.4, 1.5, 1.6]) == "not testable at this scale"  # 0.2 < 3 × 0.082
    assert barrier.trend_verdict(low, [1.5, 1.6, 1.7]) == "not reproduced"  # 0.3 > 0.245
    assert barrier.trend_verdict([0.0] * 3, [0.0] * 3) == "not testable at this scale"
    with pytest.raises(ValueError, match="first must hold one finite barrier for each of at least 3"):
        barrier.trend_verdict([1.0, 1.1], high)
    # above_zero: mean beyond k standard errors of zero
    assert barrier.standard_error([1.0, 2.0, 3.0]) == pytest.approx(1 / np.sqrt(3))
    assert barrier.above_zero([0.5, 0.6, 0.7]) and not barrier.above_zero([0.0, 0.05, 0.0])
    assert not barrier.above_zero([0.0, 0.0, 0.0])
    # smaller_change_verdict: |change| against the reference's |change|, beyond k s.e. of the gap
    flat, flat2 = [0.10, 0.11, 0.09], [0.11, 0.12, 0.10]  # change 0.01
    assert barrier.smaller_change_verdict(flat, flat2, high, low) == "reproduced"  # reference falls by 0.5
    assert barrier.smaller_change_verdict(high, low, flat, flat2) == "not reproduced"
    assert barrier.smaller_change_verdict(flat, flat2, low, [1.4, 1.5, 1.6]) == "not testable at this scale"  # 0.2 - 0.01 < 3 × 0.084
    assert barrier.smaller_change_verdict(flat, flat2, [1.4, 1.5, 1.6], low) == "not testable at this scale"  # |fall| too
    with pytest.raises(ValueError, match="reference_last must hold one finite barrier"):
        barrier.smaller_change_verdict(flat, flat2, low, [1.0, float("nan"), 1.0])
    # aligned_trend_verdict: nothing to fall when both ends are within k s.e. of zero; else trend_verdict
    assert barrier.aligned_trend_verdict([0.0, 0.05, 0.0], [0.0, 0.0, 0.01]) == "not testable at this scale"
    assert barrier.trend_verdict([0.0, 0.05, 0.0], [-0.2, -0.2, -0.21]) == "reproduced"  # a "fall" below zero
    assert barrier.aligned_trend_verdict([0.0, 0.05, 0.0], [-0.2, -0.2, -0.21]) == "not testable at this scale"
    assert barrier.aligned_trend_verdict([0.5, 0.6, 0.7], [0.0, 0.05, 0.0]) == "reproduced"
    assert barrier.aligned_trend_verdict([0.0, 0.05, 0.0], [0.5, 0.6, 0.7], falls=False) == "reproduced"
    assert barrier.spread([1.0, 2.0, 3.0], 1) == "2.0 ± 1.0 (1.0–3.0, n = 3)"
    # paired_comparison: per-pair differences against k standard errors of their mean
    reference = [0.10, 0.30, 0.20]
    assert barrier.paired_comparison([0.12, 0.33, 0.21], reference) == "higher"  # d = .02, .03, .01: 0.02 > 3 × 0.0058
    assert barrier.paired_comparison([0.08, 0.27, 0.19], reference) == "lower"
    assert barrier.paired_comparison([0.13, 0.29, 0.21], reference) == "indistinguishable"  # d = .03, −.01, .01
    assert barrier.paired_comparison(reference, reference) == "indistinguishable"
    # a consistent difference below `margin` does not count, however small its standard error
    assert barrier.paired_comparison([0.12, 0.33, 0.21], reference, margin=0.03) == "indistinguishable"
    assert barrier.paired_comparison([0.12, 0.33, 0.21], reference, margin=0.015) == "higher"
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        barrier.paired_comparison(reference, reference, margin=-1.0)
    # unpaired, the same shift of 0.02 would be lost in the pairs' spread (sd 0.1)
    assert barrier.trend_verdict(reference, [0.12, 0.33, 0.21]) == "not testable at this scale"
    with pytest.raises(ValueError, match="one barrier per pair each"):
        barrier.paired_comparison([0.1, 0.2, 0.3, 0.4], reference)
    # the numbers behind the trend verdicts
    change, se = barrier.mean_change([1.0, 1.2, 1.4], [0.5, 0.6, 0.7])
    assert change == pytest.approx(-0.6) and se == pytest.approx(np.hypot(0.2, 0.1) / np.sqrt(3))
    gap, gap_se = barrier.change_gap([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [1.0, 1.2, 1.4], [0.5, 0.6, 0.7])
    assert gap == pytest.approx(0.6) and gap_se == pytest.approx(se)
    # paired_trend_verdict: the same seeds at both points; a shift the seeds' spread hides unpaired
    shifted = [0.08, 0.27, 0.19]  # reference − .02, −.03, −.01
    assert barrier.paired_trend_verdict(reference, shifted) == "reproduced"
    assert barrier.trend_verdict(reference, shifted) == "not testable at this scale"
    assert barrier.paired_trend_verdict(reference, shifted, falls=False) == "not reproduced"
    assert barrier.paired_trend_verdict(reference, [0.13, 0.29, 0.21]) == "not testable at this scale"
    # alike: |mean d| + 3 s.e.(d) < margin, an equivalence test on the same pairs
    assert barrier.alike([0.12, 0.33, 0.21], reference, margin=0.05)  # 0.02 + 3 × 0.0058 = 0.037
    assert not barrier.alike([0.12, 0.33, 0.21], reference, margin=0.03)  # the mean is small, not known small enough
    assert not barrier.alike([0.30, 0.10, 0.20], reference, margin=0.2)  # d = .2, −.2, 0: mean 0, 3 s.e. 0.35
    assert not barrier.alike([0.6, 0.8, 0.7], reference, margin=0.2)  # a consistent difference of 0.5
    with pytest.raises(ValueError, match="margin must be a finite number > 0"):
        barrier.alike(reference, reference, margin=0.0)
    with pytest.raises(ValueError, match="one barrier per pair each"):
        barrier.alike([0.1, 0.2, 0.3, 0.4], reference, margin=0.1)


def _hidden_relu(params, x):
    return networks.mlp_hidden(params, x, activation="relu")


def test_activation_variance_matches_a_direct_monte_carlo_computation():
    q0, q1 = _pair()
    x = jax.random.normal(jax.random.key(3), (30, 2))
    key = jax.random.key(4)
    curve = barrier.activation_variance_curve(key, q0, q1, _hidden_relu, x, num_taus=3, num_samples=6, batch=4)
    assert curve.variances.shape == curve.ratios.shape == (3, 1)
    np.testing.assert_allclose(curve.ratios[[0, -1]], 1.0, rtol=1e-12)
    # the same draws by hand: θ_s = mean + std ε_s for the keys split from `key`, at τ = 1/2
    qt = G.geodesic(q0, q1, 0.5)
    draws = [bnn._draw(k, qt) for k in jax.random.split(key, 6)]
    h = np.concatenate([np.asarray(_hidden_relu(theta, x)[0], np.float64) for theta in draws])  # (6·30, 5)
    np.testing.assert_allclose(curve.variances[1, 0], np.mean(np.var(h, axis=0)), rtol=1e-5)
    chord = 0.5 * (curve.variances[0, 0] + curve.variances[-1, 0])
    np.testing.assert_allclose(curve.ratios[1, 0], curve.variances[1, 0] / chord, rtol=1e-12)


def test_variance_collapses_between_relabelled_networks_and_not_after_relabelling_back():
    # q1 = q0 with its hidden units relabelled (point masses): the path to P#q1 = q0 is constant (ratio 1); the
    # naive midpoint averages unrelated units, whose pre-activations then vary about half as much
    from wvi import align

    params = networks.mlp_he_init(jax.random.key(0), [4, 64, 64, 3])
    spec = align.mlp_spec(params)
    perms = align.random_perms(jax.random.key(1), spec, params)
    q0, q1 = G.point_mass(params), G.point_mass(align.permute(params, spec, perms))
    back = {p: np.argsort(v) for p, v in perms.items()}
    x = jax.random.normal(jax.random.key(2), (200, 4))
    naive = barrier.activation_variance_curve(jax.random.key(3), q0, q1, _hidden_relu, x, num_taus=5, num_samples=1)
    aligned = barrier.activation_variance_curve(jax.random.key(3), q0, align.permute(q1, spec, back), _hidden_relu,
                                                x, num_taus=5, num_samples=1)
    np.testing.assert_allclose(aligned.ratios, 1.0, rtol=1e-5)
    assert np.all(naive.ratios[2] < 0.75), naive.ratios[2]
    with pytest.raises(ValueError, match="num_taus must be an integer >= 2"):
        barrier.activation_variance_curve(jax.random.key(3), q0, q1, _hidden_relu, x, num_taus=1)


def test_collapse_verdict():
    # collapse: naive ratio below 1/2; reduction: aligned loss 1 − r at most half the naive loss
    assert barrier.collapse_verdict([0.1, 0.2, 0.3], [0.9, 0.8, 0.7]) == "reproduced"
    assert barrier.collapse_verdict([0.1, 0.6, 0.3], [0.9, 0.8, 0.7]) == "partly reproduced"  # no collapse on one
    assert barrier.collapse_verdict([0.1, 0.2, 0.3], [0.5, 0.8, 0.7]) == "partly reproduced"  # 0.5 > 0.45: not halved
    assert barrier.collapse_verdict([0.8, 0.9, 0.7], [0.9, 0.95, 0.9]) == "not reproduced"
    with pytest.raises(ValueError, match="at least 3 pairs"):
        barrier.collapse_verdict([0.1, 0.2], [0.9, 0.8])
