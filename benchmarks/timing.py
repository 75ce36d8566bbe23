"""Timing shared by the benchmark scripts (run them as `python benchmarks/<name>.py`, which puts this folder on the path)."""
import os
import sys
import time


def pin_cores(argv=None) -> int:
    """Pin this process, BLAS and XLA to the number of cores `--cores N` asks for (default 1); call it before jax
    is imported. Returns N."""
    argv = sys.argv if argv is None else argv
    cores = int(argv[argv.index("--cores") + 1]) if "--cores" in argv else 1
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(cores)
    if cores == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    return cores


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
