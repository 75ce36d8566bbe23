"""Tests of wvi.mcmc: NUTS recovers a known Gaussian, and the distances to a reference sample."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi import gaussian as G
from wvi import mcmc

TARGET = G.Gaussian(jnp.array([1.0, -2.0]), jnp.array([[1.0, 0.0], [0.9, 0.3]]))


def test_nuts_recovers_a_correlated_gaussian():
    result = mcmc.nuts(jax.random.key(0), lambda x: G.log_prob(TARGET, x), jnp.zeros(2), num_chains=2,
                       num_warmup=300, num_samples=500)
    assert result.samples.shape == (2, 500, 2) and result.flat.shape == (1000, 2)
    assert np.all(result.rhat < 1.05) and np.all(result.ess > 100)
    # the sample mean is within 5 Monte Carlo standard errors (std / √ESS) of the truth
    std = np.sqrt(np.diag(np.asarray(G.covariance(TARGET))))
    assert np.all(np.abs(result.flat.mean(0) - np.asarray(TARGET.mean)) < 5 * std / np.sqrt(result.ess))
    again = mcmc.nuts(jax.random.key(0), lambda x: G.log_prob(TARGET, x), jnp.zeros(2), num_chains=2,
                      num_warmup=300, num_samples=500)
    np.testing.assert_array_equal(result.samples, again.samples)  # same key, same draws


def test_nuts_bad_inputs():
    log_density = lambda x: G.log_prob(TARGET, x)
    with pytest.raises(ValueError, match="num_chains must be at least 2"):
        mcmc.nuts(jax.random.key(0), log_density, jnp.zeros(2), num_chains=1)
    with pytest.raises(ValueError, match=r"init must have shape \(d,\) or \(3, d\)"):
        mcmc.nuts(jax.random.key(0), log_density, jnp.zeros((2, 2)), num_chains=3)
    with pytest.raises(ValueError, match="log_density is not finite"):
        mcmc.nuts(jax.random.key(0), lambda x: jnp.log(x[0]) - x[0], -jnp.ones(2), num_chains=2)
    with pytest.raises(ValueError, match="num_warmup must be a positive integer"):
        mcmc.nuts(jax.random.key(0), log_density, jnp.zeros(2), num_warmup=0)


def test_distance_to_reference():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((200_000, 2)) * np.array([2.0, 0.5]) + np.array([1.0, 0.0])
    exact = mcmc.distance_to_reference(reference.mean(0), np.cov(reference, rowvar=False), reference)
    np.testing.assert_allclose(exact.mean_error, 0, atol=1e-12)
    np.testing.assert_allclose(exact.std_ratio, 1, rtol=1e-12)
    assert exact.w2 < 1e-3
    # a fit shifted by half a std in x₀ and half as wide in x₁
    d = mcmc.distance_to_reference(np.array([2.0, 0.0]), np.diag([4.0, 0.0625]), reference)
    np.testing.assert_allclose(d.mean_error, [0.5, 0.0], atol=0.01)
    np.testing.assert_allclose(d.std_ratio, [1.0, 0.5], rtol=0.01)
    assert d.w2 == pytest.approx(np.sqrt(1.0 + 0.25**2), rel=0.01)  # W2² = |Δm|² + Σ (s − σ)² for diagonal
    assert d.summary()["max mean error"] == pytest.approx(float(d.mean_error.max()))
    with pytest.raises(ValueError, match=r"mean must be \(2,\) and cov \(2, 2\)"):
        mcmc.distance_to_reference(np.zeros(3), np.eye(3), reference)


def test_reference_caches_moments():
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((5000, 3))
    ref = mcmc.reference(samples)
    np.testing.assert_allclose(ref.cov, np.cov(samples, rowvar=False))
    d1 = mcmc.distance_to_reference(np.zeros(3), np.eye(3), ref)
    d2 = mcmc.distance_to_reference(np.zeros(3), np.eye(3), samples)
    np.testing.assert_array_equal(d1.mean_error, d2.mean_error)
    assert d1.w2 == d2.w2
    with pytest.raises(ValueError, match="reference must be a sample of shape"):
        mcmc.reference(np.zeros(3))


def test_floor_tolerance_and_competitive_accuracy():
    assert mcmc.floor_tolerance(0.01) == 0.1 and mcmc.floor_tolerance(0.05) == pytest.approx(0.15)
    assert mcmc.floor_tolerance(0.05, minimum=0.2, factor=2.0) == 0.2
    with pytest.raises(ValueError, match="floor must be finite"):
        mcmc.floor_tolerance(np.nan)
    # 98% on 100 points: SE = √(0.98 · 0.02 / 100) = 0.014, so 2 SE = 2.8 points
    assert mcmc.accuracy_standard_error(0.98, 100) == pytest.approx(0.014)
    assert mcmc.competitive_accuracy(0.953, 0.98, 100) and not mcmc.competitive_accuracy(0.95, 0.98, 100)
    assert mcmc.competitive_accuracy(0.99, 0.98, 100)  # better than the reference is competitive
    assert mcmc.competitive_accuracy(0.96, 0.98, 100, num_se=1.0) is False
    with pytest.raises(ValueError, match="num_test must be a positive integer"):
        mcmc.accuracy_standard_error(0.9, 0)
    with pytest.raises(ValueError, match="accuracy must lie in"):
        mcmc.accuracy_standard_error(1.2, 10)


def test_mcnemar_counts_discordant_points_and_tests_exactly():
    reference = np.array([True] * 8 + [False] * 2)
    # the fit loses points 0-2 and gains point 8: b = 3, c = 1, p = P(Bin(4, ½) ≥ 3) = 5/16
    correct = reference.copy()
    correct[:3] = False
    correct[8] = True
    result = mcmc.mcnemar(correct, reference)
    assert (result.lost, result.gained) == (3, 1)
    assert result.p_value == pytest.approx(5 / 16)
    # only discordant points count: adding agreeing points changes nothing
    padded = mcmc.mcnemar(np.r_[correct, [True] * 50, [False] * 20], np.r_[reference, [True] * 50, [False] * 20])
    assert padded == result
    # four lost and none gained: p = 1/16, above 0.05 one-sided; six lost and none gained: 1/64
    assert mcmc.mcnemar(np.zeros(4, bool), np.ones(4, bool)).p_value == pytest.approx(1 / 16)
    assert mcmc.mcnemar(np.zeros(6, bool), np.ones(6, bool)).p_value == pytest.approx(1 / 64)
    # a better classifier is not worse: p near 1; no discordant point: p = 1
    assert mcmc.mcnemar(reference, correct).p_value == pytest.approx(15 / 16)
    assert mcmc.mcnemar(reference, reference) == mcmc.McNemar(0, 0, 1.0)
    with pytest.raises(ValueError, match="correct must be a 1-D boolean array"):
        mcmc.mcnemar(correct.astype(int), reference)
    with pytest.raises(ValueError, match="must cover the same test points"):
        mcmc.mcnemar(correct[:5], reference)


def test_mcnemar_rejects_at_most_its_level_under_equal_error_rates():
    # two classifiers with the same error rate, independent errors: P(p < 0.05) ≤ 0.05 (the exact test is
    # conservative); 2,000 simulated test sets, so 0.05 + 3 s.e. = 0.065 bounds the observed rate
    rng = np.random.default_rng(0)
    rejections = 0
    for _ in range(2_000):
        a, b = rng.random(100) < 0.8, rng.random(100) < 0.8
        rejections += mcmc.mcnemar(a, b).p_value < 0.05
    assert rejections / 2_000 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2_000)
    # and a classifier that errs twice as often is caught most of the time at n = 300
    caught = sum(mcmc.mcnemar(rng.random(300) < 0.8, rng.random(300) < 0.9).p_value < 0.05 for _ in range(200))
    assert caught / 200 > 0.8
