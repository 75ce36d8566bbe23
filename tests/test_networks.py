"""Tests of wvi.networks: MLPs and ResNet20 as pure functions of their parameters, the Gaussian heads."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from wvi import networks


def test_mlp_shapes_and_prior_scale():
    sizes = (3, 50, 2)
    params = networks.mlp_init(jax.random.key(0), sizes)
    assert [p["w"].shape for p in params] == [(3, 50), (50, 2)]
    assert networks.mlp_apply(params, jnp.ones((7, 3))).shape == (7, 2)
    # w ~ N(0, 1/fan_in): the sample std of 150 weights is within 5 standard errors of 1/sqrt(3)
    assert abs(float(params[0]["w"].std()) * np.sqrt(3) - 1) < 5 / np.sqrt(2 * 150)


def test_mlp_is_the_composition_of_its_layers():
    params = networks.mlp_init(jax.random.key(1), (2, 4, 1))
    x = jax.random.normal(jax.random.key(2), (5, 2))
    manual = np.tanh(x @ params[0]["w"] + params[0]["b"]) @ params[1]["w"] + params[1]["b"]
    np.testing.assert_allclose(networks.mlp_apply(params, x), manual, rtol=1e-12)


def test_gaussian_nll_matches_scipy():
    y, mean, log_var = 0.3, -0.2, np.log(0.49)
    np.testing.assert_allclose(networks.gaussian_nll(mean, log_var, y), -norm.logpdf(y, mean, 0.7), rtol=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="sizes must list at least two positive"):
        networks.mlp_init(jax.random.key(0), (3,))
    with pytest.raises(ValueError, match="one {'w', 'b'} entry per layer"):
        networks.mlp_init(jax.random.key(0), (3, 4, 1), prior_std=networks.mlp_prior_std((3, 1)))
    params = networks.mlp_init(jax.random.key(0), (3, 4, 1))
    with pytest.raises(ValueError, match="x must have 3 features"):
        networks.mlp_apply(params, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="unknown activation"):
        networks.mlp_apply(params, jnp.ones((2, 3)), "sigmoid")


def test_mixture_metrics():
    # One member: the Gaussian NLL itself; rescaling the units adds log(scale) to the NLL and scales the RMSE.
    y = np.array([0.1, -0.4, 1.2])
    means, log_vars = np.array([[0.0, 0.0, 1.0]]), np.log(np.full((1, 3), 0.25))
    nll, rmse = networks.mixture_metrics(means, log_vars, y)
    np.testing.assert_allclose(nll, -norm.logpdf(y, means[0], 0.5).mean(), rtol=1e-12)
    np.testing.assert_allclose(rmse, np.sqrt(np.mean((y - means[0]) ** 2)), rtol=1e-12)
    nll10, rmse10 = networks.mixture_metrics(means, log_vars, y, y_scale=10.0)
    np.testing.assert_allclose([nll10, rmse10], [nll + np.log(10.0), 10 * rmse], rtol=1e-12)
    # Two identical members give the same mixture as one.
    np.testing.assert_allclose(networks.mixture_metrics(np.repeat(means, 2, 0), np.repeat(log_vars, 2, 0), y)[0], nll, rtol=1e-12)
    with pytest.raises(ValueError, match="means and log_vars must be"):
        networks.mixture_metrics(means, log_vars[:, :2], y)


def test_floored_log_var():
    raw = np.array([-50.0, -4.0, 0.0, 30.0])
    out = np.asarray(networks.floored_log_var(raw, floor=-4.0))
    assert np.all(out >= -4.0) and np.all(np.diff(out) > 0)
    assert abs(out[0] + 4.0) < 1e-12 and abs(out[-1] - 30.0) < 1e-12


# ---- Part V: ResNet20, mean-field Gaussian BNNs -------------------------------------------------------------

def test_resnet20_shapes_and_parameter_count():
    params = networks.resnet20_init(jax.random.key(0), num_classes=10, in_channels=3, width=1)
    # the classic CIFAR ResNet20 has ≈ 0.27 M parameters
    assert 0.26e6 < networks.num_params(params) < 0.28e6
    assert networks.resnet20_apply(params, jnp.ones((2, 32, 32, 3))).shape == (2, 10)
    wide = networks.resnet20_init(jax.random.key(0), num_classes=10, in_channels=1, width=2, norm="layernorm")
    assert wide["head"]["w"].shape == (128, 10) and networks.resnet20_norm(wide) == "layernorm"
    with pytest.raises(ValueError, match=r"x must be images \(N, H, W, 1\)"):
        networks.resnet20_apply(wide, jnp.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'"):
        networks.resnet20_init(jax.random.key(0), norm="batchnorm")


def test_frn_matches_its_definition():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    nu2 = np.mean(np.asarray(x) ** 2, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(networks.frn(x, 2.0, 0.5), 2.0 * np.asarray(x) / np.sqrt(nu2 + 1e-6) + 0.5, rtol=1e-10)


def test_mlp_hidden_are_the_layers_of_mlp_apply():
    params = networks.mlp_he_init(jax.random.key(0), [3, 5, 4, 2])
    x = jax.random.normal(jax.random.key(1), (7, 3))
    hidden = networks.mlp_hidden(params, x, activation="relu")
    assert [h.shape for h in hidden] == [(7, 5), (7, 4)]
    np.testing.assert_allclose(hidden[0], jax.nn.relu(x @ params[0]["w"] + params[0]["b"]), rtol=1e-6)
    np.testing.assert_allclose(hidden[-1] @ params[-1]["w"] + params[-1]["b"],
                               networks.mlp_apply(params, x, activation="relu"), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="x must have 3 features"):
        networks.mlp_hidden(params, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        networks.mlp_hidden(params, x, activation="sigmoid")
