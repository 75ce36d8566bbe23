"""Tests of wvi.bnn: mean-field Gaussian BNNs, their prior, VI and MAP training, the predictive densities."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from functools import partial

from scipy.stats import norm

from wvi import algorithm, bnn, networks
from wvi.algorithm import DivergenceError
from wvi import gaussian as G


def test_the_prior_terms_match_scipy():
    """log_prior against scipy's normal log density; E_q log p(θ) + H[q] = −KL(q‖p(θ)); a point mass."""
    params = {"a": jnp.array([0.3, -1.0]), "b": jnp.array([[2.0]])}
    flat, alpha = np.array([0.3, -1.0, 2.0]), 0.7
    np.testing.assert_allclose(bnn.log_prior(params, alpha), np.sum(norm.logpdf(flat, scale=alpha)), rtol=1e-12)
    q = G.meanfield(params, {"a": jnp.array([0.5, 0.1]), "b": jnp.array([[1.0]])})
    np.testing.assert_allclose(bnn.expected_log_prior(q, alpha) + G.entropy(q), -bnn.kl_to_prior(q, alpha),
                               rtol=1e-12)
    # a point mass's expected log prior is the log prior at its mean
    tight = G.meanfield(params, 1e-9)
    np.testing.assert_allclose(bnn.expected_log_prior(tight, alpha), bnn.log_prior(params, alpha), rtol=1e-9)


def test_kl_to_prior_and_entropy_match_scipy_formulas():
    q = G.meanfield({"a": jnp.array([0.3, -1.0]), "b": jnp.array([[2.0]])}, {"a": jnp.array([0.5, 0.1]), "b": jnp.array([[1.0]])})
    m, s, alpha = np.array([0.3, -1.0, 2.0]), np.array([0.5, 0.1, 1.0]), 0.7
    kl = np.sum(np.log(alpha / s) + (s ** 2 + m ** 2) / (2 * alpha ** 2) - 0.5)
    np.testing.assert_allclose(bnn.kl_to_prior(q, alpha), kl, rtol=1e-12)
    np.testing.assert_allclose(G.entropy(q), np.sum(norm.entropy(scale=s)), rtol=1e-12)


def test_meanfield_vi_fits_and_replicas_differ():
    x = jax.random.normal(jax.random.key(0), (200, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    trainer = bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=optax.sgd(0.05, momentum=0.9), batch_size=50)
    qs = jax.vmap(lambda k: G.meanfield(networks.mlp_he_init(k, [2, 16, 2]), 0.01))(jax.random.split(jax.random.key(1), 2))
    state, losses = algorithm.run(jax.random.key(2), trainer, jax.vmap(trainer.init)(qs), 600, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=200)
    assert losses.shape == (600, 2) and np.all(losses[-50:].mean(0) < losses[:50].mean(0))
    q0 = jax.tree_util.tree_map(lambda a: a[0], state.approximation)
    assert bnn.accuracy(bnn.predictive_log_probs(jax.random.key(3), q0, apply, x, 16), y) > 0.9
    # the same seed (and chunk size) gives the same result; replicas differ
    again, _ = algorithm.run(jax.random.key(2), trainer, jax.vmap(trainer.init)(qs), 600, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=200)
    np.testing.assert_array_equal(again.approximation.mean[0]["w"], state.approximation.mean[0]["w"])
    assert not np.allclose(state.approximation.mean[0]["w"][0], state.approximation.mean[0]["w"][1])


def test_predictive_log_density_is_a_log_mean_of_likelihoods():
    q = G.meanfield(networks.mlp_he_init(jax.random.key(0), [1, 4, 1]), 0.3)
    apply = partial(networks.mlp_apply, activation="tanh")
    x, y = jnp.linspace(-1, 1, 7)[:, None], jnp.linspace(0, 1, 7)
    key = jax.random.key(1)
    got = bnn.predictive_log_density(key, q, apply, x, y, 8, likelihood="gaussian", noise_std=0.5, batch=3)
    draws = [apply(bnn._draw(k, q), x)[:, 0] for k in jax.random.split(key, 8)]
    manual = np.log(np.mean([norm.pdf(y, d, 0.5) for d in draws], axis=0))
    np.testing.assert_allclose(got, manual, rtol=1e-8)


def test_predictive_densities_do_not_depend_on_the_data_chunk():
    q = G.meanfield(networks.resnet20_init(jax.random.key(0), 10, 1, 1, "frn"), 0.01)
    x = jax.random.normal(jax.random.key(1), (11, 8, 8, 1))
    y = jnp.arange(11) % 10
    key = jax.random.key(2)
    whole = bnn.predictive_log_density(key, q, networks.resnet20_apply, x, y, 4)
    params = bnn._draw(key, q)
    chunked = networks.apply_in_chunks(networks.resnet20_apply, params, x, chunk=4)  # 3 chunks, the last padded with 1 zero image
    np.testing.assert_allclose(chunked, networks.resnet20_apply(params, x), rtol=1e-5, atol=1e-6)
    assert chunked.shape == (11, 10)
    np.testing.assert_allclose(bnn.predictive_log_density(key, q, networks.resnet20_apply, x, y, 4, chunk=4), whole,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bnn.predictive_log_probs(key, q, networks.resnet20_apply, x, 4, chunk=4),
                               bnn.predictive_log_probs(key, q, networks.resnet20_apply, x, 4), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        networks.apply_in_chunks(networks.resnet20_apply, params, x, chunk=0)


def test_vi_training_errors():
    x, y = jnp.ones((10, 2)), jnp.zeros(10, jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 10\]"):
        bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=optax.sgd(0.1, momentum=0.9), batch_size=20)
    with pytest.raises(ValueError, match="prior_std must be positive and finite"):
        bnn.meanfield_vi(apply, x, y, prior_std=-1.0, optimizer=optax.sgd(0.1, momentum=0.9), batch_size=5)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=optax.sgd(0.1, momentum=0.9), batch_size=5, likelihood="poisson")
    with pytest.raises(ValueError, match=r"temperature must be a scalar; got an array of shape \(2,\)"):
        bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=optax.sgd(0.1), batch_size=5, temperature=jnp.ones(2))
    # a step size far too large: the error names the step and the quantity
    xs = jax.random.normal(jax.random.key(0), (30, 1))
    trainer = bnn.meanfield_vi(apply, xs, 100 * xs[:, 0], prior_std=1.0, optimizer=optax.sgd(10.0, momentum=0.9), batch_size=30,
                            likelihood="gaussian", noise_std=0.01)
    q = G.meanfield(networks.mlp_he_init(jax.random.key(1), [1, 8, 1]), 0.01)
    with pytest.raises(DivergenceError, match=r"VI training diverged at step \d+ of 500: state\.(mean|log_std)"):
        algorithm.run(jax.random.key(2), trainer, trainer.init(q), 500, algorithm.trace_loss, chunk=100,
                      name="VI training")


def test_settings_vmapped_as_replicas_match_separate_runs():
    """Temperatures and prior scales may be traced: building the trainer inside `jax.vmap` over them trains one
    replica per setting in one compiled program, step for step the same as a separate trainer per setting (VI and
    MAP); `jax.grad` differentiates the loss with respect to them."""
    x = jax.random.normal(jax.random.key(0), (64, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    q0 = G.meanfield(networks.mlp_he_init(jax.random.key(1), [2, 8, 2]), 0.05)
    optimizer = optax.sgd(0.05, momentum=0.9)
    settings = (jnp.array([0.5, 1.0, 2.0]), jnp.array([0.1, 1.0, 3.0]))  # prior_std, temperature
    keys = jax.random.split(jax.random.key(2), 3)

    def trained(prior_std, temperature):
        trainer = bnn.meanfield_vi(apply, x, y, prior_std=prior_std, temperature=temperature, batch_size=16,
                                   optimizer=optimizer, num_samples=2)
        state = trainer.init(q0)
        for i in range(len(keys)):
            state, info = trainer.step(keys[i], state)
        return state.mean, info.loss

    means, losses = jax.jit(jax.vmap(trained))(*settings)
    separate = jax.jit(trained, static_argnums=(0, 1))  # the settings as constants, one program each
    for r in (0, 2):
        mean, loss = separate(float(settings[0][r]), float(settings[1][r]))
        np.testing.assert_allclose(losses[r], loss, rtol=1e-10)
        np.testing.assert_allclose(means[1]["w"][r], mean[1]["w"], rtol=1e-10)
    assert len({float(v) for v in losses}) == 3  # the settings do act

    def map_trained(prior_std):
        trainer = bnn.map_estimation(apply, x, y, prior_std=prior_std, batch_size=16, optimizer=optimizer)
        return trainer.step(keys[0], trainer.init(q0.mean))[0].params

    params = jax.jit(jax.vmap(map_trained))(settings[0])
    np.testing.assert_allclose(params[0]["w"][0], jax.jit(map_trained, static_argnums=0)(0.5)[0]["w"], rtol=1e-10)

    # d loss / d temperature at fixed q is −H[q] / N (the loss is −[... + T·H[q]] / N)
    def vi(temperature):
        return bnn.meanfield_vi(apply, x, y, prior_std=1.0, temperature=temperature, batch_size=16,
                                optimizer=optimizer)

    state = vi(1.0).init(q0)
    loss_of_t = lambda t: vi(t).step(keys[0], state)[1].loss
    np.testing.assert_allclose(jax.jit(jax.grad(loss_of_t))(1.0), -G.entropy(q0) / 64, rtol=1e-10)



def test_replicas_over_settings_match_one_training_per_setting():
    """`train_replicas` with an `algorithm.over_settings` trainer: each (replica, setting) is the replica that a
    separate `train_replicas` of that setting's trainer gives from the same keys (Part V's sweeps in one program)."""
    x = jax.random.normal(jax.random.key(0), (48, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    init = partial(networks.mlp_he_init, sizes=[2, 8, 2])
    settings = dict(prior_std=jnp.array([0.5, 2.0]), temperature=jnp.array([1.0, 0.1]))

    def make(prior_std, temperature):
        return bnn.meanfield_vi(apply, x, y, prior_std=prior_std, temperature=temperature, batch_size=16,
                                optimizer=optax.sgd(0.05, momentum=0.9), num_samples=2)

    together, losses = bnn.train_replicas(jax.random.key(1), jax.random.key(2), algorithm.over_settings(make, **settings),
                                          init, 20, std_init=0.05, chunk=10)
    assert losses.shape == (20, 2, 2) and together[0].mean[0]["w"].shape == (2, 2, 8)  # (replicas, settings, ...)
    for k in range(2):
        alone, alone_losses = bnn.train_replicas(jax.random.key(1), jax.random.key(2),
                                                 make(float(settings["prior_std"][k]), float(settings["temperature"][k])),
                                                 init, 20, std_init=0.05, chunk=10)
        for r in range(2):
            np.testing.assert_allclose(algorithm.replica(together[r].std, k)[1]["w"], alone[r].std[1]["w"], rtol=1e-9)
        np.testing.assert_allclose(losses[:, :, k], alone_losses, rtol=1e-9)
    assert not np.allclose(losses[:, :, 0], losses[:, :, 1])
    with pytest.raises(ValueError, match="temperature must be positive and finite"):  # the constructor's own check
        algorithm.over_settings(make, prior_std=jnp.array([0.5, 2.0]), temperature=jnp.array([1.0, -1.0]))

def test_log_joint_matches_a_direct_computation():
    params = networks.mlp_he_init(jax.random.key(0), [2, 3, 2])
    x = jax.random.normal(jax.random.key(1), (6, 2))
    y = jnp.array([0, 1, 1, 0, 1, 0])
    apply = partial(networks.mlp_apply, activation="relu")
    logits = np.asarray(apply(params, x), np.float64)
    ll = np.sum(logits[np.arange(6), y] - np.log(np.exp(logits).sum(1)))
    flat = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(params)])
    log_prior = np.sum(norm.logpdf(flat, 0.0, 0.7))
    np.testing.assert_allclose(bnn.log_joint(params, apply, x, y, prior_std=0.7), ll + log_prior, rtol=1e-10)


def test_point_mass_is_a_degenerate_meanfield():
    params = networks.mlp_he_init(jax.random.key(0), [2, 3, 2])
    q = G.point_mass(params)
    sample = bnn._draw(jax.random.key(1), q)
    for a, b in zip(jax.tree_util.tree_leaves(sample), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert all(np.all(s == 0) for s in jax.tree_util.tree_leaves(q.std))


def test_map_estimation_fits_and_matches_its_loss():
    x = jax.random.normal(jax.random.key(0), (200, 2))
    y = (x[:, 0] - x[:, 1] > 0).astype(jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    trainer = bnn.map_estimation(apply, x, y, prior_std=1.0, optimizer=optax.sgd(0.05, momentum=0.9), batch_size=200)
    params = networks.mlp_he_init(jax.random.key(1), [2, 16, 2])
    state, losses = algorithm.run(jax.random.key(2), trainer, trainer.init(params), 300, trace_fn=algorithm.trace_loss, chunk=100)
    assert losses[-1] < losses[0]
    # full batch: the loss is minus the log joint per data point, the prior's normaliser included
    _, info = trainer.step(jax.random.key(3), state)
    np.testing.assert_allclose(float(info.loss), -float(bnn.log_joint(state.params, apply, x, y, 1.0)) / 200,
                               rtol=1e-5)
    assert bnn.accuracy(jax.nn.log_softmax(apply(state.params, x)), y) > 0.9
    with pytest.raises(ValueError, match="optimizer must be an optax GradientTransformation"):
        bnn.map_estimation(apply, x, y, prior_std=1.0, optimizer=0.05, batch_size=10)


def test_sequential_replicas_and_python_loop_match_vmap_and_scan():
    x = jax.random.normal(jax.random.key(0), (64, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    trainer = bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=optax.sgd(0.05, momentum=0.9), batch_size=16)
    qs = jax.vmap(lambda k: G.meanfield(networks.mlp_he_init(k, [2, 8, 2]), 0.01))(jax.random.split(jax.random.key(1), 2))
    state = jax.vmap(trainer.init)(qs)
    ref, ref_losses = algorithm.run(jax.random.key(2), trainer, state, 30, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=20)
    for replicas, loop in (("sequential", "scan"), ("sequential", "python"), ("vmap", "python")):
        got, losses = algorithm.run(jax.random.key(2), trainer, state, 30, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=20, replicas=replicas, loop=loop)
        assert losses.shape == (30, 2)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got.approximation.mean[0]["w"], ref.approximation.mean[0]["w"], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="unknown replicas 'pmap'"):
        algorithm.run(jax.random.key(2), trainer, state, 30, trace_fn=algorithm.trace_loss, num_replicas=2, replicas="pmap")


@pytest.mark.parametrize("replicas", ["vmap", "sequential"])
def test_a_finished_training_run_frees_its_training_set(replicas):
    # No hidden state (issue "One shape for every algorithm"): the replicated steps and their compiled programs are
    # kept on the trainer's step, so the training set its closure holds is freed with the trainer, not pinned on the
    # device by a module-level cache until 32 later runs push it out.
    import gc
    import weakref

    x = jax.random.normal(jax.random.key(0), (64, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    trainer = bnn.meanfield_vi(partial(networks.mlp_apply, activation="relu"), x, y, prior_std=1.0, optimizer=optax.sgd(0.05, momentum=0.9),
                            batch_size=16)
    qs = jax.vmap(lambda k: G.meanfield(networks.mlp_he_init(k, [2, 8, 2]), 0.01))(jax.random.split(jax.random.key(1), 2))
    state, _ = algorithm.run(jax.random.key(2), trainer, jax.vmap(trainer.init)(qs), 10, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=5,
                        replicas=replicas)
    data, step = weakref.ref(x), weakref.ref(trainer.step)
    del trainer, x, y
    gc.collect()
    assert step() is None and data() is None


def test_train_replicas_is_run_on_replica_starts():
    """train_replicas = starts from split(key_init) (MeanFields with std_init) + run with key_train, vmapped: the
    same numbers as writing it out; MAP (no std_init) returns point masses."""
    x = jax.random.normal(jax.random.key(0), (64, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    init_fn = lambda k: networks.mlp_he_init(k, [2, 8, 2])
    trainer = bnn.meanfield_vi(networks.mlp_apply, x, y, prior_std=1.0, batch_size=32, optimizer=optax.sgd(0.05))
    (q0, q1), losses = bnn.train_replicas(jax.random.key(3), jax.random.key(4), trainer, init_fn, 30, std_init=0.01)
    starts = jax.vmap(lambda k: G.meanfield(init_fn(k), 0.01))(jax.random.split(jax.random.key(3), 2))
    state, ref = algorithm.run(jax.random.key(4), trainer, jax.vmap(trainer.init)(starts), 30, algorithm.trace_loss,
                               num_replicas=2)
    np.testing.assert_array_equal(losses, ref)
    np.testing.assert_array_equal(q1.std[0]["w"], state.approximation.std[0]["w"][1])
    assert not np.allclose(q0.mean[0]["w"], q1.mean[0]["w"])
    mapper = bnn.map_estimation(networks.mlp_apply, x, y, prior_std=1.0, batch_size=32, optimizer=optax.sgd(0.05))
    (p0, _), _ = bnn.train_replicas(jax.random.key(3), jax.random.key(4), mapper, init_fn, 5)
    assert isinstance(p0, G.MeanField) and float(jnp.max(p0.std[0]["w"])) == 0.0


def test_augment_transforms_each_minibatch_and_leaves_the_rest_alone():
    x = jax.random.normal(jax.random.key(0), (40, 2))
    y = (x[:, 0] > 0).astype(jnp.int32)
    apply = partial(networks.mlp_apply, activation="relu")
    q = G.meanfield(networks.mlp_he_init(jax.random.key(1), [2, 8, 2]), 0.01)
    sgd = optax.sgd(0.1, momentum=0.9)
    plain = bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=sgd, batch_size=8)
    identity = bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=sgd, batch_size=8, augment=lambda k, xb: xb)
    flipped = bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=sgd, batch_size=8, augment=lambda k, xb: -xb)
    key = jax.random.key(2)
    a, info_a = plain.step(key, plain.init(q))
    b, info_b = identity.step(key, identity.init(q))
    c, info_c = flipped.step(key, flipped.init(q))
    # an identity augmentation leaves batch and draws as they were; a real one changes the batch the loss sees
    np.testing.assert_array_equal(info_a.loss, info_b.loss)
    assert float(info_c.loss) != float(info_a.loss)
    m = bnn.map_estimation(apply, x, y, prior_std=1.0, optimizer=sgd, batch_size=8, augment=lambda k, xb: xb)
    m_plain = bnn.map_estimation(apply, x, y, prior_std=1.0, optimizer=sgd, batch_size=8)
    np.testing.assert_array_equal(m.step(key, m.init(q.mean))[1].loss, m_plain.step(key, m_plain.init(q.mean))[1].loss)
    with pytest.raises(ValueError, match=r"augment must be None or a function augment\(key, xb\)"):
        bnn.meanfield_vi(apply, x, y, prior_std=1.0, optimizer=sgd, batch_size=8, augment=3)
