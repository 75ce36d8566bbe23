"""Tests of wvi.algorithm.run: tracing, reproducibility, and the divergence report."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi.algorithm import LOOPS, Algorithm, DivergenceError, Measured, prepend, replicate, run, seconds_per_step


def counter(rate):
    """x ← rate·x + noise: finite for |rate| < 1, overflows to inf for huge rates."""
    def step(key, x):
        x = rate * x + 0.01 * jax.random.normal(key, x.shape, x.dtype)
        return x, {"norm": jnp.linalg.norm(x)}

    return Algorithm(lambda x0: jnp.asarray(x0, jnp.float64), step)


def test_trace_has_one_entry_per_step_and_is_reproducible():
    algo = counter(0.5)
    final, (states, info) = run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 10)
    assert states.shape == (10, 3) and info["norm"].shape == (10,)
    assert jnp.array_equal(states[-1], final)
    again, _ = run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 10)
    assert jnp.array_equal(final, again)


def test_custom_trace_fn():
    algo = counter(0.5)
    _, norms = run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 7, trace_fn=lambda s, i: i["norm"])
    assert norms.shape == (7,)


def test_trace_approximation_reads_every_state_alike():
    """trace_approximation records state.approximation whatever the state: BBVI's q, BW Euler's Gaussian from
    (m, Σ), the BNN trainer's MeanField from (mean, log_std)."""
    import optax

    from wvi import bbvi, flows
    from wvi import gaussian as G
    from wvi.algorithm import trace_approximation

    log_p = lambda x: -0.5 * jnp.sum(x ** 2)
    q0 = G.Gaussian(jnp.ones(2), jnp.eye(2))
    for algo in (bbvi.bbvi(log_p, optax.sgd(0.1), 4), flows.bw_euler(log_p, 0.1, 4)):
        final, qs = run(jax.random.key(0), algo, algo.init(q0), 3, trace_fn=trace_approximation)
        assert isinstance(qs, G.Gaussian) and qs.mean.shape == (3, 2)
        np.testing.assert_allclose(G.covariance(jax.tree_util.tree_map(lambda a: a[-1], qs)),
                                   G.covariance(final.approximation), rtol=1e-6)


def test_divergence_names_step_and_quantity():
    # |x| ~ 1e100^k: the state overflows float64 (max ~1.8e308) at step 4, but ‖x‖ (squares summed) already at
    # step 2, and the report names that first casualty.
    algo = counter(1e100)
    with pytest.raises(DivergenceError, match=r"toy diverged at step 2 of 20: info\['norm'\] became NaN or infinite"):
        run(jax.random.key(0), algo, algo.init(jnp.ones(2)), 20, name="toy")


def test_bad_num_steps():
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        run(jax.random.key(0), counter(0.5), jnp.ones(2), 0)


def test_replicate_gives_independent_copies_from_one_start():
    algo = replicate(counter(0.5), 4)
    state = algo.init(jnp.ones(3))
    assert state.shape == (4, 3)
    final, _ = run(jax.random.key(1), algo, state, 5)
    assert final.shape == (4, 3)
    assert len({tuple(row) for row in final.tolist()}) == 4  # different noise per replica
    with pytest.raises(ValueError, match="num_replicas must be a positive integer"):
        replicate(counter(0.5), 0)


def test_run_with_replicas_names_a_state_without_the_replica_axis():
    """A state without the leading replica axis gets an error naming the argument, not vmap's size mismatch."""
    with pytest.raises(ValueError, match=r"state must hold num_replicas = 4 replicas .* has shape \(3,\)"):
        run(jax.random.key(0), counter(0.5), jnp.ones(3), 5, num_replicas=4)
    with pytest.raises(ValueError, match=r"num_replicas = 2 replicas"):
        run(jax.random.key(0), counter(0.5), jnp.ones((3, 3)), 5, num_replicas=2, replicas="sequential")


def test_prepend():
    stacked = {"a": jnp.arange(6.0).reshape(3, 2)}
    out = prepend({"a": jnp.array([9.0, 9.0])}, stacked)
    assert out["a"].shape == (4, 2) and out["a"][0, 0] == 9.0


def test_compiled_scan_is_reused():
    algo = counter(0.5)
    run(jax.random.key(0), algo, algo.init(jnp.ones(2)), 3)
    programs = dict(algo.step._wvi_compiled)
    assert len(programs) == 1
    (program,) = programs.values()
    before = program._cache_size()
    run(jax.random.key(1), algo, algo.init(jnp.ones(2)), 3)
    assert algo.step._wvi_compiled == programs and program._cache_size() == before


@pytest.mark.parametrize("loop", LOOPS)
def test_a_finished_run_does_not_keep_its_step_alive(loop):
    # No hidden state: the compiled program is cached on the step, so the step (and the data its closure holds, a
    # training set on the device, say) is freed with the algorithm; a module-level cache kept the last 32 alive.
    import gc
    import weakref

    def make():
        data = jnp.arange(1000.0)  # what a trainer's closure holds: its training set

        def step(key, state):
            return state + 0.0 * data.sum(), state

        return Algorithm(lambda x: x, step), weakref.ref(data), weakref.ref(step)

    algo, data, step = make()
    run(jax.random.key(0), algo, jnp.zeros(()), 3, loop=loop)
    assert data() is not None and step() is not None
    del algo
    gc.collect()
    assert step() is None and data() is None


def test_seconds_per_step_is_positive_and_checks_its_argument():
    algorithm = Algorithm(lambda x: x, lambda key, x: (x + 1.0, x))
    assert 0 < seconds_per_step(algorithm, jnp.zeros(3), num_steps=3) < 10
    with pytest.raises(ValueError, match="num_steps"):
        seconds_per_step(algorithm, jnp.zeros(3), num_steps=0)


def test_python_loop_matches_scan_and_reports_divergence():
    from wvi import algorithm

    def step(key, x):
        new = 1.5 * x + 0.01 * jax.random.normal(key, x.shape)
        return new, {"norm": jnp.sum(new ** 2)}

    algo = algorithm.Algorithm(lambda x: x, step)
    a, trace_a = algorithm.run(jax.random.key(0), algo, jnp.ones(3), 20)
    b, trace_b = algorithm.run(jax.random.key(0), algo, jnp.ones(3), 20, loop="python")
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(trace_a[1]["norm"], trace_b[1]["norm"], rtol=1e-6)
    messages = []
    for loop in algorithm.LOOPS:
        with pytest.raises(algorithm.DivergenceError, match=r"diverged at step \d+ of 2000: info\['norm'\]") as err:
            algorithm.run(jax.random.key(0), algo, jnp.ones(3), 2000, loop=loop)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    with pytest.raises(ValueError, match="unknown loop 'while'"):
        algorithm.run(jax.random.key(0), algo, jnp.ones(3), 5, loop="while")


def test_measure_every_chunk_and_the_same_keys_as_a_traced_chunked_run():
    algo = counter(0.5)
    final, curve = run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 12, chunk=4,
                       measure=lambda x: float(jnp.linalg.norm(x)))
    assert isinstance(curve, Measured) and list(curve.steps) == [0, 4, 8, 12] and len(curve.values) == 4
    assert curve.values[0] == pytest.approx(np.sqrt(3))
    assert curve.seconds[0] == 0 and np.all(np.diff(curve.seconds) > 0)
    assert curve.values[-1] == pytest.approx(float(jnp.linalg.norm(final)))
    traced, states = run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 12, chunk=4, trace_fn=lambda s, i: s)
    # the same keys; the two compiled programs may round differently in the last bit
    assert states.shape == (12, 3) and jnp.array_equal(states[-1], traced)
    np.testing.assert_allclose(traced, final, rtol=1e-12)
    # a last chunk shorter than the others
    short, curve = run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 10, chunk=4, measure=lambda x: None)
    assert list(curve.steps) == [0, 4, 8, 10]
    with pytest.raises(ValueError, match="measure is called after every chunk: give chunk too"):
        run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 12, measure=lambda x: None)
    with pytest.raises(ValueError, match="either trace_fn .* or measure"):
        run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 12, chunk=4, measure=lambda x: None,
            trace_fn=lambda s, i: s)
    with pytest.raises(ValueError, match="chunk must be a positive integer; got 0"):
        run(jax.random.key(0), algo, algo.init(jnp.ones(3)), 12, chunk=0)
    with pytest.raises(DivergenceError, match="diverged at step [0-9]+ of 12"):
        bad = counter(1e200)
        run(jax.random.key(0), bad, bad.init(jnp.ones(3)), 12, chunk=4, measure=lambda x: None)


def test_replicas_vmapped_and_sequential_agree_and_match_replicate():
    algo = counter(0.5)
    start = jnp.stack([jnp.ones(3), 2 * jnp.ones(3)])
    vmapped, trace = run(jax.random.key(0), algo, start, 9, trace_fn=lambda s, i: s, chunk=4, num_replicas=2)
    sequential, trace_seq = run(jax.random.key(0), algo, start, 9, trace_fn=lambda s, i: s, chunk=4, num_replicas=2,
                                replicas="sequential")
    assert trace.shape == trace_seq.shape == (9, 2, 3)
    np.testing.assert_allclose(vmapped, sequential, rtol=1e-6)
    again, _ = run(jax.random.key(0), replicate(algo, 2), start, 9, chunk=4)
    assert jnp.array_equal(again, vmapped)
    # the replicas' measurements stack along a leading axis in sequential mode, as vmap gives them
    _, curve = run(jax.random.key(0), algo, start, 8, chunk=4, num_replicas=2, replicas="sequential",
                   measure=lambda s: np.asarray(s[:, 0]) if s.ndim == 2 else np.asarray(s[0]))
    assert list(curve.steps) == [0, 4, 8] and np.shape(curve.values[-1]) == (2,)


def test_sweep_shape_start_and_independent_values():
    from wvi.algorithm import sweep

    norm = lambda x: jnp.linalg.norm(x)  # noqa: E731
    curves = sweep(jax.random.key(0), counter, [0.5, 0.9], (jnp.ones(3),), 12, norm, num_seeds=2, every=4)
    assert isinstance(curves, np.ndarray) and curves.shape == (2, 2, 4)  # (values, seeds, 12 // 4 + 1)
    np.testing.assert_allclose(curves[..., 0], np.sqrt(3), rtol=1e-15)  # measure(init state) at index 0
    assert not np.allclose(curves[0, 0], curves[0, 1])  # the seeds differ
    again = sweep(jax.random.key(0), counter, [0.5, 0.9], (jnp.ones(3),), 12, norm, num_seeds=2, every=4)
    np.testing.assert_array_equal(curves, again)
    # each value runs on its own: a sweep over [0.9] alone is the second row of the sweep over [0.5, 0.9]
    alone = sweep(jax.random.key(0), counter, [0.9], (jnp.ones(3),), 12, norm, num_seeds=2, every=4)
    assert alone.shape == (1, 2, 4)
    np.testing.assert_allclose(alone[0], curves[1], rtol=1e-12)
    other_key = sweep(jax.random.key(1), counter, [0.9], (jnp.ones(3),), 12, norm, num_seeds=2, every=4)
    assert not np.allclose(other_key, alone)
    # every = 1 measures after every step, and a pytree measurement keeps its own shape after the sweep's axes
    tree = sweep(jax.random.key(0), counter, jnp.array([0.5]), (jnp.ones(3),), 3, lambda x: {"x": x, "n": norm(x)})
    assert tree["x"].shape == (1, 1, 4, 3) and tree["n"].shape == (1, 1, 4)


def test_sweep_keeps_diverged_runs_and_stable_reads_them():
    from wvi.algorithm import stable, sweep

    norm = lambda x: jnp.linalg.norm(x)  # noqa: E731
    curves = sweep(jax.random.key(0), counter, [0.5, 1e100], (jnp.ones(2),), 8, norm, every=2)  # no error raised
    assert curves.shape == (2, 1, 5)
    assert np.all(np.isfinite(curves[0])) and not np.all(np.isfinite(curves[1]))
    np.testing.assert_array_equal(stable(curves), [[True], [False]])
    # with `start`, a run must also end below it
    np.testing.assert_array_equal(stable(curves, start=np.sqrt(2)), [[True], [False]])
    np.testing.assert_array_equal(stable(np.array([[1.0, 2.0, 0.5], [1.0, 0.5, 3.0]]), start=1.0), [True, False])
    assert not stable(np.array([1.0, np.nan, 0.5]))


def test_sweep_bad_arguments():
    from wvi.algorithm import sweep

    norm = lambda x: jnp.linalg.norm(x)  # noqa: E731

    def call(values=(0.5,), num_steps=4, **kwargs):
        return sweep(jax.random.key(0), counter, values, (jnp.ones(2),), num_steps, norm, **kwargs)

    with pytest.raises(ValueError, match="num_steps must be a multiple of every"):
        call(num_steps=10, every=4)
    with pytest.raises(ValueError, match="values must be a non-empty 1-D array"):
        call(values=[])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D array"):
        call(values=[[0.5, 0.6]])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D array"):
        call(values=0.5)
    with pytest.raises(ValueError, match="num_seeds must be a positive integer"):
        call(num_seeds=0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        call(num_steps=0)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        call(every=1.5)



def test_over_settings_steps_each_setting_as_its_own_run_would():
    """Copy k of `over_settings` follows `make(setting_k)` run alone with the same keys (replicas and chunks
    included); the settings act; bad settings are refused naming the argument."""
    from wvi.algorithm import over_settings

    rates = [0.5, 0.9, 0.99]
    together = over_settings(counter, rate=jnp.array(rates))
    start = jnp.stack([jnp.ones(3), 2 * jnp.ones(3)])  # two replicas, different starts
    state, trace = run(jax.random.key(4), together, jax.vmap(together.init)(start), 7, chunk=3, num_replicas=2)
    assert state.shape == (2, 3, 3) and trace[1]["norm"].shape == (7, 2, 3)  # (replicas, settings, ...)
    for k, rate in enumerate(rates):
        alone = counter(rate)
        expected, expected_trace = run(jax.random.key(4), alone, jax.vmap(alone.init)(start), 7, chunk=3,
                                       num_replicas=2)
        np.testing.assert_allclose(state[:, k], expected, rtol=1e-12)
        np.testing.assert_allclose(trace[1]["norm"][:, :, k], expected_trace[1]["norm"], rtol=1e-12)
    assert not np.allclose(state[:, 0], state[:, 1])
    with pytest.raises(ValueError, match="setting rate must be a non-empty 1-D array"):
        over_settings(counter, rate=0.5)
    with pytest.raises(ValueError, match="the same number of values"):
        over_settings(lambda rate, scale: counter(rate * scale), rate=[0.5, 0.9], scale=[1.0])
    with pytest.raises(ValueError, match="at least one setting"):
        over_settings(counter)
    with pytest.raises(DivergenceError, match="diverged at step"):
        huge = over_settings(counter, rate=jnp.array([0.5, 1e200]))
        run(jax.random.key(0), huge, huge.init(jnp.ones(2)), 4)
