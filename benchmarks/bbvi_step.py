#!/usr/bin/env python3
"""Steps per second of the jitted BBVI-path step against the same update written as a plain NumPy loop.

Baseline (named, measured in the same run): NumPy, float64, one vectorised update per step in a Python loop:
    x = m + z Sᵀ,  g = ∇log p(x) + S⁻ᵀ z  (= ∇log p - ∇log q),  m ← m + η·mean(g),  S ← S + η·mean(g zᵀ).
wvi: `wvi.bbvi.bbvi(..., optax.sgd(η), estimator="path")`, float64, timed two ways: the jitted `step` called from
a Python loop, and `wvi.algorithm.run` (all steps in one `lax.scan`). Targets: N(0, Σp) in d = 2 and d = 100.
Before timing, one step of each on shared noise is checked to agree to 1e-10.

Usage: python benchmarks/bbvi_step.py [--steps N] [--samples N]
"""
import argparse

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from wvi import bbvi  # noqa: E402
from wvi import gaussian as G  # noqa: E402
from wvi.algorithm import run  # noqa: E402
from timing import best_rate  # noqa: E402


def problem(d, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    cov = a @ a.T + 0.5 * np.eye(d)
    return np.linalg.inv(cov), rng.normal(size=d), np.eye(d)


def numpy_step(m, S, z, precision, eta):
    x = m + z @ S.T
    g = -(x @ precision) + np.linalg.solve(S.T, z.T).T  # ∇log p(x) - ∇log q(x), target mean 0
    return m + eta * g.mean(0), S + eta * (g.T @ z) / z.shape[0]


def loss_only(state, info):
    return info.loss


def bench(d, steps, num_samples, eta=1e-3):
    precision, m0, S0 = problem(d)
    log_p = lambda x: -0.5 * x @ jnp.asarray(precision) @ x  # noqa: E731
    algorithm = bbvi.bbvi(log_p, optax.sgd(eta), num_samples, "path")
    state0 = algorithm.init(G.Gaussian(jnp.asarray(m0), jnp.asarray(S0)))
    step = jax.jit(algorithm.step)

    # same update: one step on shared noise
    key = jax.random.key(1)
    z = np.asarray(jax.random.normal(key, (num_samples, d)))
    ours, _ = step(key, state0)
    m1, S1 = numpy_step(m0, S0, z, precision, eta)
    assert np.allclose(ours.q.mean, m1, atol=1e-10) and np.allclose(ours.q.scale, S1, atol=1e-10), "updates differ"

    def numpy_loop():
        rng = np.random.default_rng(0)
        m, S = m0.copy(), S0.copy()
        for _ in range(steps):
            m, S = numpy_step(m, S, rng.standard_normal((num_samples, d)), precision, eta)
        return m

    def jax_loop():
        state = state0
        for k in jax.random.split(jax.random.key(0), steps):
            state, _ = step(k, state)
        return jax.block_until_ready(state)

    def jax_scan():  # `loss_only` is one object, so run() compiles once and reuses the program
        return jax.block_until_ready(run(jax.random.key(0), algorithm, state0, steps, trace_fn=loss_only)[0])

    return best_rate(numpy_loop, steps), best_rate(jax_loop, steps), best_rate(jax_scan, steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    print(f"BBVI-path step, {args.samples} samples, float64, {jax.devices()[0].platform}; baseline: plain NumPy loop")
    print(f"{'d':>4s} {'NumPy steps/s':>14s} {'jit step steps/s':>17s} {'ratio':>6s} {'scan steps/s':>13s} {'ratio':>6s}")
    for d in (2, 100):
        base, loop, scan = bench(d, args.steps, args.samples)
        print(f"{d:4d} {base:14.0f} {loop:17.0f} {loop / base:6.2f} {scan:13.0f} {scan / base:6.2f}")


if __name__ == "__main__":
    main()
