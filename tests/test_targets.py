"""Tests of wvi.targets: the toy losses have the stated minima and normalisation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import trapezoid

from wvi import targets


def test_double_well_minima_and_barrier():
    np.testing.assert_allclose(targets.double_well(jnp.array([-2.0, 0.0, 1.0])), [-4.375, -0.375, -1.0], rtol=1e-12)
    grid = np.linspace(-4, 3, 70_001)
    values = np.asarray(targets.double_well(grid))
    assert abs(grid[np.argmin(values)] + 2) < 1e-4


def test_four_modes_is_a_normalised_negative_log_density():
    xs = np.linspace(-10, 10, 401)
    points = np.stack(np.meshgrid(xs, xs), axis=-1)
    density = np.exp(-np.asarray(targets.four_modes(points)))
    assert abs(trapezoid(trapezoid(density, xs), xs) - 1) < 1e-8
    with pytest.raises(ValueError, match="2 coordinates"):
        targets.four_modes(jnp.zeros(3))


@pytest.mark.parametrize("name, limits, num", [("rosenbrock", [(-5, 7), (-6, 45)], (400, 1200)),
                                               ("mixture_1d", [(-8, 10)], (4000,)),
                                               ("four_gaussians", [(-10, 10), (-10, 10)], (400, 400))])
def test_part2_targets_are_normalised(name, limits, num):
    from wvi import divergences

    g = divergences.grid(limits, num)
    mass = float(jnp.sum(jnp.exp(getattr(targets, name)(g.points))) * g.cell_volume)
    assert abs(mass - 1.0) < 1e-6


def test_rosenbrock_mode_and_shape_check():
    np.testing.assert_allclose(targets.rosenbrock(jnp.array([1.0, 1.0])), -np.log(np.pi), rtol=1e-12)
    with pytest.raises(ValueError, match="2 coordinates"):
        targets.rosenbrock(jnp.zeros(3))


# ------------------------------------------------------------------ Part III: logistic regression
def _logistic_data(seed=0, n=40, d=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-x @ np.array([1.0, -2.0, 0.5])))).astype(float)
    return x, y


def test_logistic_log_joint_and_gradient_match_numpy():
    x, y = _logistic_data()
    w = np.array([0.3, -0.7, 1.1])
    prior_std = np.array([1.0, 2.0, 0.5])
    logits = x @ w
    p = 1 / (1 + np.exp(-logits))
    direct = np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) + np.sum(
        -0.5 * (w / prior_std) ** 2 - np.log(prior_std) - 0.5 * np.log(2 * np.pi))
    direct_grad = x.T @ (y - p) - w / prior_std**2
    log_density = targets.logistic_regression(x, y, prior_std)
    np.testing.assert_allclose(log_density(jnp.asarray(w)), direct, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(log_density)(jnp.asarray(w)), direct_grad, rtol=1e-10)
    # vmapped over a batch of weights, as the estimators call it
    ws = jnp.stack([jnp.asarray(w), jnp.zeros(3)])
    assert jax.vmap(log_density)(ws).shape == (2,)


def test_minibatch_log_joint_is_unbiased():
    """The mean of many minibatch estimates is the full log joint within 5 standard errors (sample std / √n)."""
    x, y = _logistic_data(n=50)
    x, y, w = jnp.asarray(x), jnp.asarray(y), jnp.array([0.3, -0.7, 1.1])
    full = targets.logistic_log_joint(w, x, y, 1.0)
    keys = jax.random.split(jax.random.key(0), 20_000)
    estimates = jax.vmap(lambda k: targets.logistic_minibatch_log_joint(k, w, x, y, 1.0, 10))(keys)
    standard_error = float(jnp.std(estimates)) / np.sqrt(len(keys))
    assert float(jnp.std(estimates)) > 0.1  # a real estimate, not the full sum
    assert abs(float(jnp.mean(estimates)) - float(full)) < 5 * standard_error
    # all the data in one batch is exact
    np.testing.assert_allclose(targets.logistic_minibatch_log_joint(keys[0], w, x, y, 1.0, 50), full, rtol=1e-12)
    with pytest.raises(ValueError, match="batch_size must be an integer in"):
        targets.logistic_minibatch_log_joint(keys[0], w, x, y, 1.0, 51)


def test_logistic_bad_inputs_name_the_argument():
    x, y = _logistic_data()
    with pytest.raises(ValueError, match="x must be a matrix"):
        targets.logistic_regression(x[:, 0], y, 1.0)
    with pytest.raises(ValueError, match="same number of points"):
        targets.logistic_regression(x, y[:-1], 1.0)
    with pytest.raises(ValueError, match="y must hold labels 0 or 1"):
        targets.logistic_regression(x, y + 1, 1.0)
    with pytest.raises(ValueError, match="prior_std must be a positive"):
        targets.logistic_regression(x, y, -1.0)
    with pytest.raises(ValueError, match="prior_std must be a positive"):
        targets.logistic_regression(x, y, np.ones(2))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        targets.logistic_regression(bad, y, 1.0)


def test_logistic_predictive_metrics():
    x, y = _logistic_data()
    w = np.array([1.0, -2.0, 0.5])
    # one draw: accuracy is that of sign(xᵀw) and the LPD the mean log likelihood
    metrics = targets.logistic_predictive(w[None], x, y)
    assert metrics["accuracy"] == pytest.approx(np.mean((x @ w > 0) == (y == 1)))
    assert metrics["lpd"] == pytest.approx(float(targets.logistic_log_likelihood(jnp.asarray(w), x, y)) / len(y), rel=1e-12)
    # two draws: the LPD averages the likelihoods, not their logs (Jensen: at least the mean log likelihood)
    draws = np.stack([w, 0.5 * w])
    lpd_two = targets.logistic_predictive(draws, x, y)["lpd"]
    mean_loglik = np.mean([float(targets.logistic_log_likelihood(jnp.asarray(d), x, y)) / len(y) for d in draws])
    assert lpd_two >= mean_loglik
    with pytest.raises(ValueError, match="draws must have 3 coordinates"):
        targets.logistic_predictive(np.ones((2, 4)), x, y)


def test_logistic_pointwise_terms_average_to_the_predictive_metrics():
    x, y = _logistic_data()
    draws = np.stack([np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -1.0])])
    points = targets.logistic_pointwise(draws, x, y)
    metrics = targets.logistic_predictive(draws, x, y)
    assert points["correct"].shape == points["lpd"].shape == (len(y),)
    assert points["correct"].dtype == bool
    assert float(np.mean(points["correct"])) == pytest.approx(float(metrics["accuracy"]))
    assert float(np.mean(points["lpd"])) == pytest.approx(float(metrics["lpd"]), rel=1e-12)
    # one point by hand: log mean_s sigmoid(±xᵀw_s)
    p1 = np.mean(1 / (1 + np.exp(-(draws @ x[0]))))
    assert float(points["lpd"][0]) == pytest.approx(np.log(p1 if y[0] == 1 else 1 - p1), rel=1e-6)
    assert bool(points["correct"][0]) == ((p1 > 0.5) == (y[0] == 1))
    with pytest.raises(ValueError, match="draws must have 3 coordinates"):
        targets.logistic_pointwise(np.ones((2, 4)), x, y)
