"""Tests of wvi.nn: the MLP as a pure function of its parameters, and the Gaussian negative log likelihood."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from wvi import nn


def test_mlp_shapes_and_prior_scale():
    sizes = (3, 50, 2)
    params = nn.mlp_init(jax.random.key(0), sizes)
    assert [p["w"].shape for p in params] == [(3, 50), (50, 2)]
    assert nn.mlp_apply(params, jnp.ones((7, 3))).shape == (7, 2)
    # w ~ N(0, 1/fan_in): the sample std of 150 weights is within 5 standard errors of 1/sqrt(3)
    assert abs(float(params[0]["w"].std()) * np.sqrt(3) - 1) < 5 / np.sqrt(2 * 150)


def test_mlp_is_the_composition_of_its_layers():
    params = nn.mlp_init(jax.random.key(1), (2, 4, 1))
    x = jax.random.normal(jax.random.key(2), (5, 2))
    manual = np.tanh(x @ params[0]["w"] + params[0]["b"]) @ params[1]["w"] + params[1]["b"]
    np.testing.assert_allclose(nn.mlp_apply(params, x), manual, rtol=1e-12)


def test_gaussian_nll_matches_scipy():
    y, mean, log_var = 0.3, -0.2, np.log(0.49)
    np.testing.assert_allclose(nn.gaussian_nll(mean, log_var, y), -norm.logpdf(y, mean, 0.7), rtol=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="sizes must list at least two positive"):
        nn.mlp_init(jax.random.key(0), (3,))
    with pytest.raises(ValueError, match="one {'w', 'b'} entry per layer"):
        nn.mlp_init(jax.random.key(0), (3, 4, 1), prior_std=nn.mlp_prior_std((3, 1)))
    params = nn.mlp_init(jax.random.key(0), (3, 4, 1))
    with pytest.raises(ValueError, match="x must have 3 features"):
        nn.mlp_apply(params, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="unknown activation"):
        nn.mlp_apply(params, jnp.ones((2, 3)), "sigmoid")


def test_mixture_metrics():
    # One member: the Gaussian NLL itself; rescaling the units adds log(scale) to the NLL and scales the RMSE.
    y = np.array([0.1, -0.4, 1.2])
    means, log_vars = np.array([[0.0, 0.0, 1.0]]), np.log(np.full((1, 3), 0.25))
    nll, rmse = nn.mixture_metrics(means, log_vars, y)
    np.testing.assert_allclose(nll, -norm.logpdf(y, means[0], 0.5).mean(), rtol=1e-12)
    np.testing.assert_allclose(rmse, np.sqrt(np.mean((y - means[0]) ** 2)), rtol=1e-12)
    nll10, rmse10 = nn.mixture_metrics(means, log_vars, y, y_scale=10.0)
    np.testing.assert_allclose([nll10, rmse10], [nll + np.log(10.0), 10 * rmse], rtol=1e-12)
    # Two identical members give the same mixture as one.
    np.testing.assert_allclose(nn.mixture_metrics(np.repeat(means, 2, 0), np.repeat(log_vars, 2, 0), y)[0], nll, rtol=1e-12)
    with pytest.raises(ValueError, match="means and log_vars must be"):
        nn.mixture_metrics(means, log_vars[:, :2], y)


def test_floored_log_var():
    raw = np.array([-50.0, -4.0, 0.0, 30.0])
    out = np.asarray(nn.floored_log_var(raw, floor=-4.0))
    assert np.all(out >= -4.0) and np.all(np.diff(out) > 0)
    assert abs(out[0] + 4.0) < 1e-12 and abs(out[-1] - 30.0) < 1e-12
