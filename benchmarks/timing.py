"""Timing shared by the benchmark scripts (run them as `python benchmarks/<name>.py`, which puts this folder on the path)."""
import time


def best_rate(fn, steps, repeats=3):
    """Steps per second, best of `repeats` timings (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return steps / min(times)


def python_loop(step, state, keys):
    """A function that runs `state, _ = step(k, state)` for every key from Python (a jitted `step`, one dispatch a
    step) and waits for the result: the 'Python loop of a jitted step' mode of the benchmarks."""
    import jax

    keys = list(keys)  # split the key array once, outside the timing

    def loop():
        s = state
        for k in keys:
            s, _ = step(k, s)
        jax.block_until_ready(s)

    return loop
