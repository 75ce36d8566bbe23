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
