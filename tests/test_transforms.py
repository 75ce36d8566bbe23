"""Every algorithm of `wvi` under JAX's transformations: `jit(init)`, `jit(step)` and `vmap` of `step` over keys
give what the plain calls give; `grad` of every log density agrees with central finite differences, at random
points and at points where a piecewise expression ties (a logit of exactly 0)."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wvi import bbvi, bnn, ensembles, flows, gaussian, mixtures, networks, ngvi, targets
from wvi import gaussian as G


def gauss_log_density(x):
    return -0.5 * jnp.sum((x - jnp.array([1.0, -0.5])) ** 2 / jnp.array([1.0, 0.25]))


Q0 = gaussian.Gaussian(jnp.zeros(2), jnp.eye(2))
TARGET = gaussian.Gaussian(jnp.array([1.0, -0.5]), jnp.diag(jnp.array([1.0, 0.5])))  # gauss_log_density's law
X_TOY = jax.random.normal(jax.random.key(0), (12, 3))
Y_TOY = (jnp.arange(12) % 2).astype(jnp.int32)
MLP_SIZES = (3, 4, 2)
MLP_PARAMS = networks.mlp_init(jax.random.key(1), MLP_SIZES)
MLP_APPLY = partial(networks.mlp_apply, activation="tanh")


def toy_loss(theta):
    return jnp.sum((theta["w"] - 1.0) ** 2)


# name -> (algorithm, arguments of init); each init takes its start as the first argument
ALGORITHMS = {
    "bbvi path": (bbvi.bbvi(gauss_log_density, optax.sgd(0.05), 8, "path"), (Q0,)),
    "bbvi rep": (bbvi.bbvi(gauss_log_density, optax.adam(0.05), 8, "rep"), (Q0,)),
    "bbvi forward KL": (bbvi.bbvi(gauss_log_density, optax.sgd(0.01), 8, "path", divergence="forward_kl"), (Q0,)),
    "bbvi mixture": (bbvi.bbvi(gauss_log_density, optax.sgd(0.05), 8, "path"),
                     (mixtures.uniform(jnp.array([[0.0, 0.0], [1.0, 1.0]]), jnp.broadcast_to(jnp.eye(2), (2, 2, 2))),)),
    "ngvi": (ngvi.ngvi(gauss_log_density, 0.1, 8), (Q0,)),
    "gflow-vi": (mixtures.gflow_vi(gauss_log_density, optax.sgd(0.05), 8),
                 (mixtures.uniform(jnp.array([[0.0, 0.0], [1.0, 1.0]]), jnp.broadcast_to(jnp.eye(2), (2, 2, 2))),)),
    "ngflow-vi": (mixtures.ngflow_vi(gauss_log_density, 0.1, 8),
                  (mixtures.uniform(jnp.array([[0.0, 0.0], [1.0, 1.0]]), jnp.broadcast_to(jnp.eye(2), (2, 2, 2))),)),
    "bw euler": (flows.bw_euler(gauss_log_density, 0.1, 8), (Q0,)),
    "bw euler, exact": (flows.bw_euler_exact(TARGET, 0.1), (Q0,)),
    "scale euler, exact": (flows.scale_euler_exact(TARGET, 0.1), (Q0,)),
    "langevin": (flows.langevin(gauss_log_density, 0.01), (jnp.zeros((5, 2)),)),
    "svgd": (flows.svgd(gauss_log_density, optax.sgd(0.1)), (jax.random.normal(jax.random.key(2), (5, 2)),)),
    "de": (ensembles.ensemble(toy_loss, "de", 0.01), ({"w": jax.random.normal(jax.random.key(3), (4, 2))},)),
    "dle": (ensembles.ensemble(toy_loss, "dle", 0.01, lam2=1.0), ({"w": jax.random.normal(jax.random.key(3), (4, 2))},)),
    "drle": (ensembles.ensemble(toy_loss, "drle", 0.01, lam1=1.0, lam2=1.0),
             ({"w": jax.random.normal(jax.random.key(3), (4, 2))}, jax.random.key(4))),
    "meanfield vi": (bnn.meanfield_vi(MLP_APPLY, X_TOY, Y_TOY, prior_std=1.0, batch_size=4, optimizer=optax.sgd(0.01, momentum=0.9)),
                   (G.meanfield(MLP_PARAMS, 0.1),)),
    "map estimation": (bnn.map_estimation(MLP_APPLY, X_TOY, Y_TOY, prior_std=1.0, batch_size=4, optimizer=optax.sgd(0.01, momentum=0.9)),
                    (MLP_PARAMS,)),
}


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        if jnp.issubdtype(jnp.result_type(x), jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_init_and_step_under_jit_and_vmap(name):
    algorithm, args = ALGORITHMS[name]
    state = algorithm.init(*args)
    assert_trees_close(jax.jit(algorithm.init)(*args), state)

    key = jax.random.key(7)
    new_state, info = algorithm.step(key, state)
    jit_state, jit_info = jax.jit(algorithm.step)(key, state)
    assert_trees_close(jit_state, new_state, rtol=1e-4, atol=1e-5)
    assert_trees_close(jit_info, info, rtol=1e-4, atol=1e-5)

    keys = jax.random.split(jax.random.key(8), 3)
    batched_state, _ = jax.vmap(algorithm.step, in_axes=(0, None))(keys, state)
    for i, k in enumerate(keys):
        one, _ = algorithm.step(k, state)
        assert_trees_close(jax.tree_util.tree_map(lambda x: x[i], batched_state), one, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["bbvi path", "ngvi", "bw euler", "gflow-vi"])
def test_init_under_vmap_over_starting_points(name):
    """A batch of starting points through `vmap(init)`: the validation at the boundary must not look at traced
    values (it raised ConcretizationTypeError before)."""
    algorithm, (start, *rest) = ALGORITHMS[name]
    starts = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 0.1]), start)
    states = jax.vmap(lambda s: algorithm.init(s, *rest))(starts)
    assert_trees_close(jax.tree_util.tree_map(lambda x: x[1], states),
                       algorithm.init(jax.tree_util.tree_map(lambda x: x + 0.1, start), *rest))


def central_difference(f, x, eps=1e-5):
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        out.flat[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return out


X_LOGREG = np.array([[1.0, 0.5, -1.0], [1.0, -2.0, 0.3], [1.0, 0.0, 0.0]])
Y_LOGREG = np.array([1.0, 0.0, 1.0])

# name -> (log density of a float64 vector, points including ties)
LOG_DENSITIES = {
    "logistic likelihood": (lambda w: targets.logistic_log_likelihood(w, X_LOGREG, Y_LOGREG),
                            [np.zeros(3), np.array([0.3, -0.2, 0.5]), np.array([-0.5, 1.0, 0.0])]),  # ties: logits 0
    "logistic joint": (lambda w: targets.logistic_log_joint(w, X_LOGREG, Y_LOGREG, 2.0), [np.zeros(3)]),
    "logistic posterior": (targets.logistic_regression(X_LOGREG, Y_LOGREG, 2.0), [np.zeros(3), np.ones(3)]),
    "softplus": (lambda w: jnp.sum(targets.softplus(w)), [np.array([0.0, -30.0, 30.0, 1.5])]),
    "rosenbrock": (targets.rosenbrock, [np.zeros(2), np.array([1.0, 1.0])]),
    "mixture 1D": (lambda x: targets.mixture_1d(x), [np.array([0.0]), np.array([3.0])]),
    "four Gaussians": (lambda x: targets.four_gaussians(x), [np.zeros(2), np.array([2.5, 2.5])]),
    "four modes (loss)": (lambda x: targets.four_modes(x), [np.zeros(2), np.array([3.0, 0.0])]),
    "double well (loss)": (lambda x: jnp.sum(targets.double_well(x)), [np.array([0.0]), np.array([-2.0])]),
}


@pytest.mark.parametrize("name", LOG_DENSITIES)
def test_grad_of_log_densities_matches_finite_differences(name):
    f, points = LOG_DENSITIES[name]
    for x in points:  # float64 throughout (tests/conftest.py)
        x = jnp.asarray(x, jnp.float64)
        grad = np.asarray(jax.grad(f)(x))
        fd = central_difference(lambda v: float(f(jnp.asarray(v))), x)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6, err_msg=f"{name} at {np.asarray(x)}")


def test_logistic_gradient_at_zero_is_y_minus_a_half():
    """At w = 0 every logit is 0, where max(l, 0) and |l| tie: the gradient is Σ (y_i − ½) x_i, not 0."""
    grad = jax.grad(targets.logistic_log_likelihood)(jnp.zeros(1), jnp.ones((1, 1)), jnp.zeros(1))
    np.testing.assert_allclose(grad, [-0.5])


def test_metrics_are_arrays_and_work_under_jit():
    means, log_vars, y = jnp.zeros((3, 4)), jnp.zeros((3, 4)), jnp.ones(4)
    nll, rmse = jax.jit(networks.mixture_metrics)(means, log_vars, y)
    np.testing.assert_allclose(rmse, 1.0, rtol=1e-6)
    draws = jnp.zeros((5, 3))
    metrics = targets.logistic_predictive(draws, X_LOGREG, Y_LOGREG)
    assert all(isinstance(v, jax.Array) for v in metrics.values())
    np.testing.assert_allclose(metrics["lpd"], np.log(0.5), rtol=1e-6)


def test_meanfield_geodesic_and_w2_under_jit_and_vmap():

    q0 = G.meanfield(MLP_PARAMS, 0.1)
    q1 = G.meanfield(jax.tree_util.tree_map(lambda x: x + 1.0, MLP_PARAMS), 0.3)
    taus = jnp.array([0.0, 0.25, 1.0])
    path = jax.vmap(lambda t: G.geodesic(q0, q1, t))(taus)
    assert_trees_close(jax.tree_util.tree_map(lambda x: x[1], path), G.geodesic(q0, q1, 0.25))
    w2 = jax.jit(G.w2_squared)(q0, q1)
    np.testing.assert_allclose(w2, G.w2_squared(q0, q1), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda t: G.w2_squared(q0, G.geodesic(q0, q1, t)))(taus),
                               taus**2 * w2, rtol=1e-5)  # a geodesic: W2(q0, q_τ) = τ W2(q0, q1)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        G.geodesic(q0, q1, 1.5)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_state_reads_and_samples_the_same_way_and_every_info_has_a_loss(name):
    algorithm, args = ALGORITHMS[name]
    state, info = algorithm.step(jax.random.key(9), algorithm.init(*args))
    assert hasattr(info, "_fields") and "loss" in info._fields and np.isfinite(info.loss)
    assert state.approximation is not None
    draws = state.sample(jax.random.key(10), 7)
    assert {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(draws)} == {7}
    again = jax.jit(lambda s, k: s.sample(k, 7))(state, jax.random.key(10))
    assert_trees_close(again, draws, rtol=1e-5, atol=1e-6)


def test_bw_euler_loss_estimates_the_kl_up_to_log_z():
    """For a Gaussian target the BW Euler info's loss averages to KL(q‖p) − log Z (Z of the unnormalised density)."""
    target = gaussian.Gaussian(jnp.array([1.0, -0.5]), jnp.diag(jnp.array([1.0, 0.5])))
    algorithm = flows.bw_euler(lambda x: gaussian.log_prob(target, x), 0.1, 4000)
    _, info = algorithm.step(jax.random.key(11), algorithm.init(Q0))
    np.testing.assert_allclose(info.loss, gaussian.kl(Q0, target), atol=0.05)  # s.e. of a 4000-draw mean ≈ 0.02
