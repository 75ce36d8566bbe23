"""The shape every iterative method in `wvi` takes, and the driver that runs it.

An algorithm is a pair of pure functions, as in optax and blackjax:

    state = algorithm.init(...)
    state, info = algorithm.step(key, state)

`run` iterates `step` under `jax.lax.scan` (one compiled program), records a trace, and turns a run that
diverged into an error that says at which step and which quantity stopped being finite. `replicate` runs
independent copies side by side with `vmap`; `prepend` puts the starting point in front of a trace.
"""
from __future__ import annotations

import types
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np


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
    """Raised by `run` when the state or the step info becomes NaN or infinite."""


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


def run(key, algorithm: Algorithm, state, num_steps: int, trace_fn: Optional[Callable] = None, name: str = "the run",
        steps_before: int = 0, total_steps: Optional[int] = None, loop: str = "scan"):
    """Run `num_steps` steps of `algorithm` from `state` with keys split from `key`.

    Returns `(final_state, trace)`, where `trace` stacks `trace_fn(state, info)` after every step along a leading
    axis of length `num_steps` (default: the pair `(state, info)`). Raises `DivergenceError` naming the first step
    (1-based) at which the state or the info held a NaN or an infinity.

    The compiled program is cached per (algorithm.step, num_steps, trace_fn): calling `run` again with the same
    objects reuses it, while a new `lambda` as `trace_fn` on every call compiles anew.

    A long run cut into chunks (to show progress, say) passes `steps_before` (steps already taken) and
    `total_steps`, so that the error names the step of the whole run.

    `loop="python"` iterates one jitted step from Python instead of `lax.scan`, with the same keys (the result agrees up
    to floating-point rounding). Use it
    for convolutional networks on CPU, where XLA runs the gradients of convolutions several times slower inside a
    compiled loop than in a single jitted step (`benchmarks/train_throughput.py` measures it).
    """
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
    if loop not in LOOPS:
        raise ValueError(f"unknown loop {loop!r}; expected one of {', '.join(map(repr, LOOPS))}")
    iterate = _scan if loop == "scan" else _python_loop
    final, first_bad, keys, trace = iterate(key, state, algorithm.step, int(num_steps), trace_fn or _state_and_info)
    first_bad = int(first_bad)
    if first_bad:
        # Recompute the state before the step that broke, then redo that step (jitted, as in the run) to name the
        # quantity that became non-finite.
        before_bad = _replay(keys[: first_bad - 1], state, algorithm.step) if first_bad > 1 else state
        bad_state, bad_info = jax.jit(algorithm.step)(keys[first_bad - 1], before_bad)
        raise DivergenceError(
            f"{name} diverged at step {first_bad + steps_before} of {total_steps or num_steps}: "
            f"{_first_bad_field(bad_state, bad_info)} became NaN or infinite.\n"
            f"Usual causes: a step size too large for the target's curvature, or a log density\n"
            f"that is not finite where the approximation puts mass."
        )
    return final, trace


def run_measured(key, algorithm: Algorithm, state, num_steps: int, every: int, measure: Callable, name: str = "the run",
                 loop: str = "scan"):
    """Run `num_steps` steps in chunks of `every`, calling `measure(state)` at the start and after each chunk: a
    convergence curve of any quantity (a distance to a reference, say) without tracing every state.

    Returns `(final_state, steps, measurements)` with steps = 0, every, 2·every, …, num_steps. Chunk c uses the
    c-th key of `jax.random.split(key, num_chunks)`; every chunk of the same length reuses one compiled program."""
    if not isinstance(every, (int, np.integer)) or every < 1 or not isinstance(num_steps, (int, np.integer)) or num_steps % every:
        raise ValueError(f"every must be a positive integer dividing num_steps={num_steps!r}; got {every!r}")
    num_chunks = num_steps // every
    steps, measurements = [0], [measure(state)]
    for c, k in enumerate(jax.random.split(key, num_chunks)):
        state, _ = run(k, algorithm, state, every, trace_fn=_no_trace, name=name, steps_before=c * every,
                       total_steps=num_steps, loop=loop)
        steps.append((c + 1) * every)
        measurements.append(measure(state))
    return state, np.asarray(steps), measurements


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
    """`num_replicas` independent copies of `algorithm`, started from one state and stepped together with vmap.

    `init` takes the same arguments as `algorithm.init` (validated once) and broadcasts the state; each `step`
    splits its key into one key per replica. Used to measure Monte Carlo spread across seeds in one program.
    """
    if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
        raise ValueError(f"num_replicas must be a positive integer; got {num_replicas!r}")

    def init(*args, **kwargs):
        state = algorithm.init(*args, **kwargs)
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_replicas,) + jnp.shape(x)), state)

    def step(key, state):
        return jax.vmap(algorithm.step)(jax.random.split(key, num_replicas), state)

    return Algorithm(init, step)


def seconds_per_step(algorithm: Algorithm, state, num_steps: int = 50, key=None) -> float:
    """Wall time of one jitted `step`, averaged over `num_steps` calls after a warm-up call (compilation excluded).
    For the book's timing cells (marked NBVAL_IGNORE_OUTPUT); benchmarks compare such times within one run."""
    import time

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
