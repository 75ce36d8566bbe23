"""Tests of wvi.nn: the MLP as a pure function of its parameters, and the Gaussian negative log likelihood."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm
from functools import partial

from wvi.algorithm import DivergenceError

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


# ---- Part V: ResNet20, mean-field Gaussian BNNs -------------------------------------------------------------

def test_resnet20_shapes_and_parameter_count():
    params = nn.resnet20_init(jax.random.key(0), num_classes=10, in_channels=3, width=1)
    # the classic CIFAR ResNet20 has ≈ 0.27 M parameters
    assert 0.26e6 < nn.num_params(params) < 0.28e6
    assert nn.resnet20_apply(params, jnp.ones((2, 32, 32, 3))).shape == (2, 10)
    wide = nn.resnet20_init(jax.random.key(0), num_classes=10, in_channels=1, width=2, norm="layernorm")
    assert wide["head"]["w"].shape == (128, 10) and nn.resnet20_norm(wide) == "layernorm"
    with pytest.raises(ValueError, match=r"x must be images \(N, H, W, 1\)"):
        nn.resnet20_apply(wide, jnp.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'"):
        nn.resnet20_init(jax.random.key(0), norm="batchnorm")


def test_frn_matches_its_definition():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    nu2 = np.mean(np.asarray(x) ** 2, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(nn.frn(x, 2.0, 0.5), 2.0 * np.asarray(x) / np.sqrt(nu2 + 1e-6) + 0.5, rtol=1e-10)


def test_kl_to_prior_and_entropy_match_scipy_formulas():
    q = nn.meanfield({"a": jnp.array([0.3, -1.0]), "b": jnp.array([[2.0]])}, {"a": jnp.array([0.5, 0.1]), "b": jnp.array([[1.0]])})
    m, s, alpha = np.array([0.3, -1.0, 2.0]), np.array([0.5, 0.1, 1.0]), 0.7
    kl = np.sum(np.log(alpha / s) + (s ** 2 + m ** 2) / (2 * alpha ** 2) - 0.5)
    np.testing.assert_allclose(nn.kl_to_prior(q, alpha), kl, rtol=1e-12)
    np.testing.assert_allclose(nn.entropy(q), np.sum(norm.entropy(scale=s)), rtol=1e-12)


def test_meanfield_sampling_moments():
    q = nn.meanfield({"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, 2.0])})
    draws = jax.vmap(lambda k: nn.meanfield_sample(k, q)["w"])(jax.random.split(jax.random.key(0), 4000))
    # sample means within 5 standard errors
    assert np.all(np.abs(draws.mean(0) - np.array([1.0, -2.0])) < 5 * np.array([0.5, 2.0]) / np.sqrt(4000))
    with pytest.raises(ValueError, match=r"std\['w'\] must be positive and finite"):
        nn.meanfield({"w": jnp.zeros(2)}, {"w": jnp.array([1.0, 0.0])})
    with pytest.raises(ValueError, match=r"std\['w'\] has shape \(3,\); expected \(2,\)"):
        nn.meanfield({"w": jnp.zeros(2)}, {"w": jnp.ones(3)})


def test_vi_trainer_fits_and_replicas_differ():
    x = jax.random.normal(jax.random.key(0), (200, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(jnp.int32)
    apply = partial(nn.mlp_apply, activation="relu")
    trainer = nn.vi_trainer(apply, x, y, prior_std=1.0, learning_rate=0.05, batch_size=50)
    qs = jax.vmap(lambda k: nn.meanfield(nn.mlp_he_init(k, [2, 16, 2]), 0.01))(jax.random.split(jax.random.key(1), 2))
    state, losses = nn.train(jax.random.key(2), trainer, jax.vmap(trainer.init)(qs), 600, num_replicas=2, chunk=200)
    assert losses.shape == (600, 2) and np.all(losses[-50:].mean(0) < losses[:50].mean(0))
    q0 = jax.tree_util.tree_map(lambda a: a[0], state.q)
    assert nn.accuracy(nn.predictive_log_probs(jax.random.key(3), q0, apply, x, 16), y) > 0.9
    # the same seed (and chunk size) gives the same result; replicas differ
    again, _ = nn.train(jax.random.key(2), trainer, jax.vmap(trainer.init)(qs), 600, num_replicas=2, chunk=200)
    np.testing.assert_array_equal(again.q.mean[0]["w"], state.q.mean[0]["w"])
    assert not np.allclose(state.q.mean[0]["w"][0], state.q.mean[0]["w"][1])


def test_predictive_log_density_is_a_log_mean_of_likelihoods():
    q = nn.meanfield(nn.mlp_he_init(jax.random.key(0), [1, 4, 1]), 0.3)
    apply = partial(nn.mlp_apply, activation="tanh")
    x, y = jnp.linspace(-1, 1, 7)[:, None], jnp.linspace(0, 1, 7)
    key = jax.random.key(1)
    got = nn.predictive_log_density(key, q, apply, x, y, 8, likelihood="gaussian", noise_std=0.5, batch=3)
    draws = [apply(nn.meanfield_sample(k, q), x)[:, 0] for k in jax.random.split(key, 8)]
    manual = np.log(np.mean([norm.pdf(y, d, 0.5) for d in draws], axis=0))
    np.testing.assert_allclose(got, manual, rtol=1e-8)


def test_predictive_densities_do_not_depend_on_the_data_chunk():
    q = nn.meanfield(nn.resnet20_init(jax.random.key(0), 10, 1, 1, "frn"), 0.01)
    x = jax.random.normal(jax.random.key(1), (11, 8, 8, 1))
    y = jnp.arange(11) % 10
    key = jax.random.key(2)
    whole = nn.predictive_log_density(key, q, nn.resnet20_apply, x, y, 4)
    params = nn.meanfield_sample(key, q)
    chunked = nn.apply_in_chunks(nn.resnet20_apply, params, x, chunk=4)  # 3 chunks, the last padded with 1 zero image
    np.testing.assert_allclose(chunked, nn.resnet20_apply(params, x), rtol=1e-5, atol=1e-6)
    assert chunked.shape == (11, 10)
    np.testing.assert_allclose(nn.predictive_log_density(key, q, nn.resnet20_apply, x, y, 4, chunk=4), whole,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nn.predictive_log_probs(key, q, nn.resnet20_apply, x, 4, chunk=4),
                               nn.predictive_log_probs(key, q, nn.resnet20_apply, x, 4), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        nn.apply_in_chunks(nn.resnet20_apply, params, x, chunk=0)


def test_vi_training_errors():
    x, y = jnp.ones((10, 2)), jnp.zeros(10, jnp.int32)
    apply = partial(nn.mlp_apply, activation="relu")
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 10\]"):
        nn.vi_trainer(apply, x, y, prior_std=1.0, learning_rate=0.1, batch_size=20)
    with pytest.raises(ValueError, match="prior_std must be positive and finite"):
        nn.vi_trainer(apply, x, y, prior_std=-1.0, learning_rate=0.1, batch_size=5)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        nn.vi_trainer(apply, x, y, prior_std=1.0, learning_rate=0.1, batch_size=5, likelihood="poisson")
    # a step size far too large: the error names the step and the quantity
    xs = jax.random.normal(jax.random.key(0), (30, 1))
    trainer = nn.vi_trainer(apply, xs, 100 * xs[:, 0], prior_std=1.0, learning_rate=10.0, batch_size=30,
                            likelihood="gaussian", noise_std=0.01)
    q = nn.meanfield(nn.mlp_he_init(jax.random.key(1), [1, 8, 1]), 0.01)
    with pytest.raises(DivergenceError, match=r"VI training diverged at step \d+ of 500: state\.q"):
        nn.train(jax.random.key(2), trainer, trainer.init(q), 500, chunk=100)


def test_log_joint_matches_a_direct_computation():
    params = nn.mlp_he_init(jax.random.key(0), [2, 3, 2])
    x = jax.random.normal(jax.random.key(1), (6, 2))
    y = jnp.array([0, 1, 1, 0, 1, 0])
    apply = partial(nn.mlp_apply, activation="relu")
    logits = np.asarray(apply(params, x), np.float64)
    ll = np.sum(logits[np.arange(6), y] - np.log(np.exp(logits).sum(1)))
    flat = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(params)])
    log_prior = np.sum(norm.logpdf(flat, 0.0, 0.7))
    np.testing.assert_allclose(nn.log_joint(params, apply, x, y, prior_std=0.7), ll + log_prior, rtol=1e-10)


def test_point_mass_is_a_degenerate_meanfield():
    params = nn.mlp_he_init(jax.random.key(0), [2, 3, 2])
    q = nn.point_mass(params)
    sample = nn.meanfield_sample(jax.random.key(1), q)
    for a, b in zip(jax.tree_util.tree_leaves(sample), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert all(np.all(s == 0) for s in jax.tree_util.tree_leaves(q.std))


def test_map_trainer_fits_and_matches_its_loss():
    x = jax.random.normal(jax.random.key(0), (200, 2))
    y = (x[:, 0] - x[:, 1] > 0).astype(jnp.int32)
    apply = partial(nn.mlp_apply, activation="relu")
    trainer = nn.map_trainer(apply, x, y, prior_std=1.0, learning_rate=0.05, batch_size=200)
    params = nn.mlp_he_init(jax.random.key(1), [2, 16, 2])
    state, losses = nn.train(jax.random.key(2), trainer, trainer.init(params), 300, chunk=100)
    assert losses[-1] < losses[0]
    # full batch: the loss is minus the log joint per data point, up to the prior's normalising constant
    size = nn.num_params(params)
    const = 0.5 * size * np.log(2 * np.pi)
    _, info = trainer.step(jax.random.key(3), state)
    np.testing.assert_allclose(float(info.loss), -(float(nn.log_joint(state.params, apply, x, y, 1.0)) + const) / 200,
                               rtol=1e-5)
    assert nn.accuracy(jax.nn.log_softmax(apply(state.params, x)), y) > 0.9
    with pytest.raises(ValueError, match="learning_rate must be positive and finite"):
        nn.map_trainer(apply, x, y, prior_std=1.0, learning_rate=0.0, batch_size=10)


def test_sequential_replicas_and_python_loop_match_vmap_and_scan():
    x = jax.random.normal(jax.random.key(0), (64, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    apply = partial(nn.mlp_apply, activation="relu")
    trainer = nn.vi_trainer(apply, x, y, prior_std=1.0, learning_rate=0.05, batch_size=16)
    qs = jax.vmap(lambda k: nn.meanfield(nn.mlp_he_init(k, [2, 8, 2]), 0.01))(jax.random.split(jax.random.key(1), 2))
    state = jax.vmap(trainer.init)(qs)
    ref, ref_losses = nn.train(jax.random.key(2), trainer, state, 30, num_replicas=2, chunk=20)
    for replicas, loop in (("sequential", "scan"), ("sequential", "python"), ("vmap", "python")):
        got, losses = nn.train(jax.random.key(2), trainer, state, 30, num_replicas=2, chunk=20, replicas=replicas, loop=loop)
        assert losses.shape == (30, 2)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got.q.mean[0]["w"], ref.q.mean[0]["w"], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="unknown replicas 'pmap'"):
        nn.train(jax.random.key(2), trainer, state, 30, num_replicas=2, replicas="pmap")


@pytest.mark.parametrize("replicas", ["vmap", "sequential"])
def test_a_finished_training_run_frees_its_training_set(replicas):
    # No hidden state (issue "One shape for every algorithm"): the replicated steps and their compiled programs are
    # kept on the trainer's step, so the training set its closure holds is freed with the trainer, not pinned on the
    # device by a module-level cache until 32 later runs push it out.
    import gc
    import weakref

    x = jax.random.normal(jax.random.key(0), (64, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    trainer = nn.vi_trainer(partial(nn.mlp_apply, activation="relu"), x, y, prior_std=1.0, learning_rate=0.05,
                            batch_size=16)
    qs = jax.vmap(lambda k: nn.meanfield(nn.mlp_he_init(k, [2, 8, 2]), 0.01))(jax.random.split(jax.random.key(1), 2))
    state, _ = nn.train(jax.random.key(2), trainer, jax.vmap(trainer.init)(qs), 10, num_replicas=2, chunk=5,
                        replicas=replicas)
    data, step = weakref.ref(x), weakref.ref(trainer.step)
    del trainer, x, y
    gc.collect()
    assert step() is None and data() is None
