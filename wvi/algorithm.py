"""The shape every iterative method in `wvi` takes, and the driver that runs it.

An algorithm is a pair of pure functions, as in optax and blackjax:

.. code-block:: python

    state = algorithm.init(...)
    state, info = algorithm.step(key, state)

`run`, the one driver, iterates `step` under `jax.lax.scan` (one compiled program, or compiled chunks with a
progress bar and a measurement after each), records a trace, runs replicas together (`vmap`) or one after the other,
and turns a run that diverged into an error that says at which step and which quantity stopped being finite.
`replicate` is the vmapped copies as an algorithm, `over_settings` the copies that differ in scalar settings;
`prepend` puts the starting point in front of a trace.
"""
from __future__ import annotations

import time
import types
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wvi._checks import check_choice


class Algorithm(NamedTuple):
    """`init(...) -> state` and `step(key, state) -> (state, info)`.

    Every state of `wvi` reads the same way: `state.approximation` is the current approximation (a Gaussian, a
    Mixture, a MeanField over network parameters, or the particles themselves, an empirical measure), and
    `state.sample(key, num_samples)` draws from it (particles are resampled with replacement). Every info is a
    NamedTuple whose field `loss` is the quantity the algorithm descends (or, for particle methods, a stated proxy).
    """

    init: Callable[..., Any]
    step: Callable[[jax.Array, Any], tuple]


class DivergenceError(FloatingPointError):
    """Raised by `run` when the state or the step info becomes NaN or infinite. `step` is the first bad step
    (1-based, over the whole run) and `field` the first non-finite quantity (e.g. "state.cov")."""

    def __init__(self, message: str, step: Optional[int] = None, field: Optional[str] = None):
        super().__init__(message)
        self.step, self.field = step, field


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _first_bad_field(state, info) -> str:
    for prefix, tree in (("state", state), ("info", info)):
        paths = jax.tree_util.tree_flatten_with_path(tree)[0]
        for path, leaf in paths:
            if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact) and not bool(jnp.all(jnp.isfinite(leaf))):
                return prefix + jax.tree_util.keystr(path)
    return "state"


def compiled(step: Callable, key, make: Callable):
    """`make()`, cached on the function object `step` under `key`, so that the cache lives and dies with the step.

    A module-level cache (an `lru_cache`, or `jax.jit`'s cache of static arguments) would keep every finished run's
    step alive, and with it the data its closure holds (a training set on the device). Steps that cannot carry
    attributes (bound methods, builtins) are not cached: `make()` runs at every call."""
    if isinstance(step, types.MethodType) or not isinstance(getattr(step, "__dict__", None), dict):
        return make()
    cache = step.__dict__.setdefault("_wvi_compiled", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _scan(key, state, step, num_steps, trace_fn):
    """Iterate `step`, tracing every state, and remember the first step (1-based) that produced a non-finite value.
    Compiled once per (step, num_steps, trace_fn), the program cached on `step` (`compiled`). The carry is one
    state (the state before a bad step is recomputed by `_replay` only when a run diverged)."""
    def make():
        # a closure, not a functools.partial: jit keeps the signature of what it compiles in a global cache, and a
        # partial's signature holds `step` as a default value
        def program(key, state):
            return _scan_body(key, state, step, num_steps, trace_fn)

        return jax.jit(program)

    return compiled(step, ("scan", num_steps, trace_fn), make)(key, state)


def _scan_body(key, state, step, num_steps, trace_fn):

    def body(carry, k):
        state, first_bad, n = carry
        new_state, info = step(k, state)
        n = n + 1
        newly_bad = (first_bad == 0) & ~(_all_finite(new_state) & _all_finite(info))
        first_bad = jnp.where(newly_bad, n, first_bad)
        return (new_state, first_bad, n), trace_fn(new_state, info)

    keys = jax.random.split(key, num_steps)
    (final, first_bad, _), trace = jax.lax.scan(body, (state, jnp.array(0), jnp.array(0)), keys)
    return final, first_bad, keys, trace


def _replay(keys, state, step):
    """The state after the steps of `keys`, without a trace (the same iteration as `_scan`)."""
    program = jax.jit(lambda keys, state: jax.lax.scan(lambda s, k: (step(k, s)[0], None), state, keys)[0])
    return program(keys, state)


def _state_and_info(state, info):
    return state, info


def _jitted_step(step, trace_fn):
    def one(key, state):
        new_state, info = step(key, state)
        return new_state, trace_fn(new_state, info), _all_finite(new_state) & _all_finite(info)

    return compiled(step, ("python", trace_fn), lambda: jax.jit(one))


def _python_loop(key, state, step, num_steps, trace_fn):
    """The same iteration as `_scan` (same keys), as a Python loop over one jitted step."""
    one = _jitted_step(step, trace_fn)
    keys = jax.random.split(key, num_steps)
    traces = []
    for n, k in enumerate(keys, start=1):
        new_state, trace, finite = one(k, state)
        if not bool(finite):
            return new_state, jnp.array(n), keys, None
        traces.append(trace)
        state = new_state
    return state, jnp.array(0), keys, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *traces)


LOOPS = ("scan", "python")
REPLICA_MODES = ("vmap", "sequential")


class Measured(NamedTuple):
    """What `run(..., measure=f)` records: `values[i] = f(state)` after `steps[i]` steps (steps = 0, chunk, 2·chunk,
    …, num_steps; the last chunk may be shorter), and `seconds[i]`, the wall time the steps took until then
    (compilation included, the measurements excluded): a curve against steps or against time."""

    steps: np.ndarray
    values: list
    seconds: np.ndarray


def _check_count(value, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _one_program(key, algorithm: Algorithm, state, num_steps: int, trace_fn, name, steps_before, total_steps, loop):
    """`num_steps` steps in one compiled program (or one jitted step from Python): the keys are
    `jax.random.split(key, num_steps)`. Raises `DivergenceError` naming the first bad step of the whole run."""
    iterate = _scan if loop == "scan" else _python_loop
    final, first_bad, keys, trace = iterate(key, state, algorithm.step, num_steps, trace_fn)
    first_bad = int(first_bad)
    if first_bad:
        # Recompute the state before the step that broke, then redo that step (jitted, as in the run) to name the
        # quantity that became non-finite.
        before_bad = _replay(keys[: first_bad - 1], state, algorithm.step) if first_bad > 1 else state
        bad_state, bad_info = jax.jit(algorithm.step)(keys[first_bad - 1], before_bad)
        field = _first_bad_field(bad_state, bad_info)
        raise DivergenceError(
            f"{name} diverged at step {first_bad + steps_before} of {total_steps or num_steps}: "
            f"{field} became NaN or infinite.\n"
            f"Usual causes: a step size too large for the target's curvature, or a log density\n"
            f"that is not finite where the approximation puts mass.",
            step=first_bad + steps_before, field=field)
    return final, trace


def _chunked(key, algorithm: Algorithm, state, num_steps: int, trace_fn, chunk, measure, bar, name, steps_before,
             total_steps, loop):
    """The run cut into compiled chunks; chunk c gets the c-th key of `jax.random.split(key, num_chunks)`."""
    if chunk is None:
        return _one_program(key, algorithm, state, num_steps, trace_fn, name, steps_before, total_steps, loop)
    total = total_steps or steps_before + num_steps
    traces, done, elapsed = [], 0, 0.0
    steps, values, seconds = ([0], [measure(state)], [0.0]) if measure else (None, None, None)
    for k in jax.random.split(key, -(-num_steps // chunk)):
        todo = min(chunk, num_steps - done)
        start = time.perf_counter()
        state, trace = _one_program(k, algorithm, state, todo, _no_trace if measure else trace_fn, name,
                                    steps_before + done, total, loop)
        jax.block_until_ready(state)
        elapsed += time.perf_counter() - start
        done += todo
        if bar is not None:
            bar.update(todo)
        if measure:
            steps.append(done)
            values.append(measure(state))
            seconds.append(elapsed)
        else:
            traces.append(trace)
    if measure:
        return state, Measured(np.asarray(steps), values, np.asarray(seconds))
    return state, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *traces)


def run(key, algorithm: Algorithm, state, num_steps: int, trace_fn: Optional[Callable] = None, *,
        chunk: Optional[int] = None, measure: Optional[Callable] = None, progress: bool = False,
        num_replicas: Optional[int] = None, replicas: str = "vmap", loop: str = "scan", name: str = "the run",
        steps_before: int = 0, total_steps: Optional[int] = None):
    """Run `num_steps` steps of `algorithm` from `state`: the one driver of `wvi`.

    Returns `(final_state, trace)`. The trace stacks `trace_fn(state, info)` after every step along a leading axis
    of length `num_steps` (default: the pair `(state, info)`). Raises `DivergenceError` naming the first step
    (1-based, counted over the whole run) at which the state or the info held a NaN or an infinity.

    Args:
      key: a `jax.random` key. Without `chunk` the steps use `jax.random.split(key, num_steps)`; with `chunk`,
        chunk c uses the c-th key of `jax.random.split(key, ⌈num_steps / chunk⌉)`, split again per step. The same
        key and chunk give the same result, with or without a progress bar or measurements.
      algorithm: an `Algorithm` (`init`, `step`).
      state: the starting state (with a leading replica axis when `num_replicas` is given).
      num_steps: the number of steps, a positive integer.
      trace_fn: `(state, info) -> pytree` recorded after every step, inside the compiled program.
      chunk: run in compiled programs of `chunk` steps (the last may be shorter): the granularity of the progress
        bar and of `measure`. Every chunk of the same length reuses one compiled program.
      measure: `state -> value`, called eagerly (any Python) at the start and after every chunk; requires `chunk`
        and replaces the per-step trace: the trace returned is `Measured(steps, values)`, a convergence curve of any
        quantity without tracing every state.
      progress: show a tqdm progress bar, updated after every chunk.
      num_replicas: `state` holds that many independent replicas along a leading axis; each step key is split into
        one key per replica (`replicate`). The trace gains a replica axis after the step axis.
      replicas: "vmap" steps the replicas together in one program (`replicate`); "sequential" runs one replica
        after the other with the same keys (for replicas that do not fit in memory together). They agree up to
        floating-point rounding, which a long chaotic run can amplify.
      loop: "scan" (`jax.lax.scan`, one compiled program per chunk) or "python" (one jitted step called from Python,
        the same keys; the result agrees up to rounding). Use "python" for convolutional networks on CPU, where XLA
        runs convolution gradients several times slower inside a compiled loop (`benchmarks/train_throughput.py`).
      name: how the error message names the run.
      steps_before, total_steps: for a run continued from an earlier one, so that the error names the step of the
        whole run.

    Compiled programs are cached on the step function (`compiled`): calling `run` again with the same algorithm and
    `trace_fn` objects reuses them, while a new `lambda` as `trace_fn` on every call compiles anew.
    """
    num_steps = _check_count(num_steps, "num_steps")
    check_choice(loop, LOOPS, "loop")
    check_choice(replicas, REPLICA_MODES, "replicas")
    if chunk is not None:
        chunk = _check_count(chunk, "chunk")
    if measure is not None:
        if chunk is None:
            raise ValueError("measure is called after every chunk: give chunk too (run(..., chunk=k, measure=f))")
        if trace_fn is not None:
            raise ValueError("give either trace_fn (recorded after every step) or measure (after every chunk), not both")
    trace_fn = trace_fn or _state_and_info
    bar = None
    if progress:
        from tqdm import tqdm  # the plain bar: tqdm.auto warns in kernels without ipywidgets

        bar = tqdm(total=num_steps * (num_replicas if replicas == "sequential" and num_replicas else 1), desc=name)
    try:
        if num_replicas is None:
            return _chunked(key, algorithm, state, num_steps, trace_fn, chunk, measure, bar, name, steps_before,
                            total_steps, loop)
        num_replicas = _check_count(num_replicas, "num_replicas")
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != num_replicas:
                raise ValueError(
                    f"state must hold num_replicas = {num_replicas} replicas along a leading axis (from "
                    f"replicate(algorithm, {num_replicas}).init(...) or jax.vmap(algorithm.init)); state"
                    f"{jax.tree_util.keystr(path)} has shape {jnp.shape(leaf)}")
        if replicas == "vmap":
            return _chunked(key, replicate(algorithm, num_replicas), state, num_steps, trace_fn, chunk, measure, bar,
                            name, steps_before, total_steps, loop)
        finals, traces = [], []
        for r in range(num_replicas):
            one = Algorithm(algorithm.init, _replica_step(algorithm.step, num_replicas, r))
            final, trace = _chunked(key, one, replica(state, r), num_steps, trace_fn, chunk, measure, bar,
                                    f"{name} (replica {r})", steps_before, total_steps, loop)
            finals.append(final)
            traces.append(trace)
        stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *finals)
        if measure:
            values = [jax.tree_util.tree_map(lambda *xs: np.stack(xs), *v) for v in zip(*(t.values for t in traces))]
            return stacked, Measured(traces[0].steps, values, np.sum([t.seconds for t in traces], axis=0))
        return stacked, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *traces)
    finally:
        if bar is not None:
            bar.close()


def replica(tree, index: int):
    """Replica `index` of a pytree stacked along a leading replica axis (as `run(..., num_replicas=n)` returns)."""
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def trace_state(state, info):
    """The trace function that records every state (`run(..., trace_fn=trace_state)`: the iterates 1..n; put the
    start in front with `prepend`)."""
    return state


def trace_approximation(state, info):
    """The trace function that records the current approximation after every step (`state.approximation`: a
    Gaussian, Mixture, MeanField or the particles, whatever the algorithm), the same for every algorithm."""
    return state.approximation


def trace_loss(state, info):
    """The trace function that records the info's `loss` after every step (`run(..., trace_fn=trace_loss)`): one
    module-level function, so every run that uses it shares its compiled program."""
    return info.loss


def _replica_step(step, num_replicas: int, index: int):
    """Replica `index`'s step with the key it gets under vmap (one object per (step, replica), kept on `step` by
    `compiled`: compiled once, reused by later runs, freed with the algorithm)."""
    def one(key, state):
        return step(jax.random.split(key, num_replicas)[index], state)

    return compiled(step, ("replica", num_replicas, index), lambda: one)


def _no_trace(state, info):
    return ()


def resample_particles(key, particles, num_samples: int):
    """`num_samples` draws from the empirical measure of `particles` (a pytree whose leaves share a leading axis
    of length n): indices uniform on {0, …, n−1}, with replacement, the same for every leaf."""
    n = jax.tree_util.tree_leaves(particles)[0].shape[0]
    index = jax.random.randint(key, (num_samples,), 0, n)
    return jax.tree_util.tree_map(lambda leaf: leaf[index], particles)


def prepend(first, stacked):
    """Put a single state (or any pytree) in front of a trace stacked along axis 0: iterations 0..n."""
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b]), first, stacked)


def replicate(algorithm: Algorithm, num_replicas: int) -> Algorithm:
    """`num_replicas` independent copies of `algorithm`, stepped together with vmap.

    `init` takes the same arguments as `algorithm.init` (validated once) and broadcasts the state to a leading
    replica axis (to start replicas from different points, use `jax.vmap(algorithm.init)` instead); `step` splits
    its key into one key per replica. `run(..., num_replicas=n)` runs an algorithm this way (or one replica after
    the other). The returned step is the same object for the same (algorithm.step, num_replicas), so its compiled
    programs are reused (`compiled`).
    """
    num_replicas = _check_count(num_replicas, "num_replicas")

    def init(*args, **kwargs):
        state = algorithm.init(*args, **kwargs)
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_replicas,) + jnp.shape(x)), state)

    def make():
        def step(key, state):
            return jax.vmap(algorithm.step)(jax.random.split(key, num_replicas), state)

        return step

    return Algorithm(init, compiled(algorithm.step, ("vmap", num_replicas), make))


def over_settings(make: Callable[..., Algorithm], **settings) -> Algorithm:
    """K copies of one algorithm that differ only in scalar settings, stepped together in one program.

    Copy k is `make(**{name: values[k] for name, values in settings.items()})`. Its `init` takes the arguments of
    the made algorithm's `init` and stacks the K states along a leading settings axis; its `step(key, state)` steps
    every copy with the same key (common random numbers: the same minibatches and samples for every setting), so
    copy k follows the iteration of `make(**setting_k)` run alone with the same keys, up to floating-point rounding
    (which a long chaotic run, such as a network's training, can amplify into a different solution). The state's
    `approximation` has the settings axis in front. Combined with `run(..., num_replicas=n)`, each replica gets its
    own key and the state is (n, K, ...): a sweep of scalar settings (temperatures, prior scales) as extra replicas
    of one compiled program (Part V's sweeps, `book/part5/mlp_digits`; `wvi.experiments.campaign`). Unlike `sweep`,
    a run that diverges raises `DivergenceError`: one setting that diverges stops all K (the error names the step
    and the quantity, not the setting).

    Args:
      make: settings (keyword arguments, traced scalars) -> Algorithm; it must not branch on them in Python
        (`wvi.bnn.meanfield_vi` accepts traced `prior_std`, `temperature` and `noise_std`, `wvi.bnn.map_estimation`
        traced `prior_std` and `noise_std`). Each setting is also given to `make` once as a concrete value when
        `over_settings` is called, so that its own checks (a positive prior scale) refuse a bad value.
        Settings that change shapes (a network's width) cannot be swept this way.
      settings: name=values, each a non-empty 1-D array, all of the same length K.
    """
    if not settings:
        raise ValueError("over_settings needs at least one setting, e.g. over_settings(make, temperature=[0.1, 1.0])")
    values = {name: jnp.asarray(v) for name, v in settings.items()}
    lengths = set()
    for name, v in values.items():
        if v.ndim != 1 or v.shape[0] == 0:
            raise ValueError(f"setting {name} must be a non-empty 1-D array of values; got shape {v.shape}")
        lengths.add(v.shape[0])
    if len(lengths) > 1:
        raise ValueError(f"every setting must have the same number of values; got "
                         f"{ {name: v.shape[0] for name, v in values.items()} }")
    for k in range(lengths.pop()):  # the constructor's own checks, on concrete values
        make(**{name: v[k] for name, v in values.items()})

    def init(*args, **kwargs):
        return jax.vmap(lambda s: make(**s).init(*args, **kwargs))(values)

    def step(key, state):
        return jax.vmap(lambda s, st: make(**s).step(key, st))(values, state)

    return Algorithm(init, step)


def seconds_per_step(algorithm: Algorithm, state, num_steps: int = 50, key=None) -> float:
    """Wall time of one jitted `step`, averaged over `num_steps` calls after a warm-up call (compilation excluded).
    For the book's timing cells (marked NBVAL_IGNORE_OUTPUT); benchmarks compare such times within one run."""
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
    step = jax.jit(algorithm.step)
    keys = list(jax.random.split(jax.random.PRNGKey(0) if key is None else key, num_steps + 1))
    jax.block_until_ready(step(keys[0], state))
    start = time.perf_counter()
    for k in keys[1:]:
        state, _ = step(k, state)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / num_steps


def sweep(key, make: Callable, values, init_args: tuple, num_steps: int, measure: Callable, *, num_seeds: int = 1,
          every: int = 1) -> np.ndarray:
    """`measure(state)` along runs of `make(value)` for every value of one scalar hyper-parameter (a step size) and
    every seed, all in one compiled program (the runs one after the other, see below), as a NumPy array of shape
    (len(values), num_seeds, num_steps // every + 1): the measurement at steps 0, every, 2·every, … (a pytree of
    such arrays, with the measurement's own shape after them, when `measure` returns one).

    Unlike `run`, a run that diverges is not an error: a sweep looks for where a method stops being stable, so its
    measurements simply become NaN or infinite from the step where it broke (`stable` reads them).

    Args:
      key: a `jax.random` key; seed s uses the s-th key of `jax.random.split(key, num_seeds)` for every value
        (common random numbers across values).
      make: value -> Algorithm; `value` is a traced scalar, so `make` must not branch on it in Python (the
        constructors of `wvi.gaussian_vi`, `wvi.bbvi` with an optax optimiser and `wvi.ngvi` accept one).
      values: the hyper-parameter values, a 1-D array.
      init_args: the arguments of the algorithm's `init` (the same start for every run).
      num_steps: steps per run, a multiple of `every`.
      measure: state -> scalar (or a pytree of arrays), traced (jit-compatible).
      num_seeds, every: seeds per value; steps between measurements.
    """
    num_steps, num_seeds, every = (_check_count(num_steps, "num_steps"), _check_count(num_seeds, "num_seeds"),
                                   _check_count(every, "every"))
    if num_steps % every:
        raise ValueError(f"num_steps must be a multiple of every = {every}; got {num_steps}")
    values = jnp.asarray(values)
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(f"values must be a non-empty 1-D array; got shape {values.shape}")

    def one(value, seed_key):
        algorithm = make(value)
        state = algorithm.init(*init_args)

        def chunk(state, chunk_key):
            state = jax.lax.scan(lambda s, k: (algorithm.step(k, s)[0], None), state,
                                 jax.random.split(chunk_key, every))[0]
            return state, measure(state)

        _, trace = jax.lax.scan(chunk, state, jax.random.split(seed_key, num_steps // every))
        return prepend(measure(state), trace)

    # The runs go one after the other (lax.map) rather than side by side (vmap): jaxlib 0.10's batched LAPACK
    # kernels (Cholesky, eigh) hand their batch to XLA's CPU thread pool and block on it, which deadlocks the pool
    # when the program runs as many of them at once as the pool has threads (every thread waits, nothing runs;
    # seen here on 2 cores with vmapped sweeps; jaxlib 0.11.2 builds this path out). Unbatched calls do not.
    num_values = values.shape[0]
    seed_keys = jax.random.split(key, num_seeds)
    run_values = jnp.repeat(values, num_seeds)
    run_keys = seed_keys[jnp.arange(num_values * num_seeds) % num_seeds]
    program = jax.jit(lambda vs, ks: jax.lax.map(lambda pair: one(*pair), (vs, ks)))
    out = program(run_values, run_keys)
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf).reshape(num_values, num_seeds, *leaf.shape[1:]), out)


def stable(curves, start: Optional[float] = None) -> np.ndarray:
    """Which runs of a `sweep` stayed stable: every measurement finite and, when `start` is given, the last one
    below it (the run ended closer to the optimum than it began). Reduces the last axis (the measurements)."""
    curves = np.asarray(curves)
    ok = np.all(np.isfinite(curves), axis=-1)
    if start is not None:
        ok &= np.where(np.isfinite(curves[..., -1]), curves[..., -1], np.inf) < start
    return ok
