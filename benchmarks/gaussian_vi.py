#!/usr/bin/env python3
"""Steps per second of the Gaussian VI algorithms of `wvi.gaussian_vi.METHODS`, side by side, on two targets.

Problems
- gaussian-50: N(m, Σ) in d = 50 with condition number 100 (Σ's eigenvalues log-spaced from 0.01 to 1 in a random
  rotation, seed 0), q0 = N(0, I).
- logreg-diabetes: Bayesian logistic regression on the diabetes set (`wvi.data.binary_classification("diabetes",
  test_fraction=0.2, seed=0)`, with intercept), N(0, 1) prior (`wvi.targets.logistic_regression(x, y, 1.0)`),
  q0 = N(0, I).
Every method takes 8 draws a step and the same small step size (1e-3, stable for all on both problems: the final
state of each timed run is checked to be finite), float64. A method's step is `jax.jit(algorithm.step)` called
from a Python loop (`timing.python_loop`), steps/s the best of 3 timed runs after a warm-up run
(`timing.best_rate`). Baseline (named, measured in the same run): BBVI-path, the book's Part I scheme; `ratio` is a
method's steps/s over BBVI-path's. `∇/step` is the cost model of `wvi.gaussian_vi.gradients_per_step` (gradient
evaluations of log p per step: d per draw for the methods that need Hessians), and `∇/s` = steps/s × ∇/step.

Usage: python benchmarks/gaussian_vi.py [--steps N] [--quick]
"""
import argparse

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from wvi import data, targets  # noqa: E402
from wvi import gaussian as G  # noqa: E402
from wvi.gaussian_vi import METHODS, gradients_per_step  # noqa: E402
from timing import best_rate, python_loop  # noqa: E402

BASELINE = "BBVI-path"
NUM_SAMPLES = 8
STEP_SIZE = 1e-3


def gaussian_problem(d=50, condition=100.0, seed=0):
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    cov = rotation @ np.diag(np.logspace(-np.log10(condition), 0.0, d)) @ rotation.T
    precision, mean = jnp.asarray(np.linalg.inv(cov)), jnp.asarray(rng.normal(size=d))

    def log_density(x):
        r = x - mean
        return -0.5 * r @ precision @ r

    return log_density, d


def logreg_problem():
    split = data.binary_classification("diabetes", test_fraction=0.2, seed=0)
    return targets.logistic_regression(split.x_train, split.y_train, 1.0), split.x_train.shape[1]


def rates(log_density, d, steps, repeats):
    """name -> (steps/s, the final state of the last timed run is finite)."""
    q0 = G.Gaussian(jnp.zeros(d), jnp.eye(d))
    keys = jax.random.split(jax.random.key(0), steps)
    out = {}
    for name, method in METHODS.items():
        algorithm = method.make(log_density, STEP_SIZE, NUM_SAMPLES)
        step = jax.jit(algorithm.step)
        state0 = algorithm.init(q0)
        rate = best_rate(python_loop(step, state0, keys), steps, repeats)
        final = state0
        for k in keys:
            final, _ = step(k, final)
        finite = all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(final))
        out[name] = (rate, finite)
    return out


def table(title, d, results):
    base = results[BASELINE][0]
    print(f"\n{title} (d = {d}, {NUM_SAMPLES} draws/step, step size {STEP_SIZE:g})")
    print(f"{'method':16s} {'steps/s':>9s} {'ratio':>7s} {'∇/step':>7s} {'∇/s':>10s} {'finite':>6s}")
    for name, (rate, finite) in results.items():
        cost = gradients_per_step(name, d, NUM_SAMPLES)
        print(f"{name:16s} {rate:9.0f} {rate / base:6.2f}× {cost:7d} {rate * cost:10.0f} {'yes' if finite else 'NO':>6s}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps per timed run (default 1000, 100 with --quick)")
    parser.add_argument("--quick", action="store_true", help="100 steps per timed run, best of 1")
    args = parser.parse_args()
    steps = args.steps or (100 if args.quick else 1000)
    repeats = 1 if args.quick else 3
    print(f"device: {jax.devices()[0].platform}; float64; jitted step from a Python loop, {steps} steps, best of "
          f"{repeats}; baseline: {BASELINE} (ratio = steps/s over {BASELINE}'s, same run)")
    for title, (log_density, d) in (("gaussian-50, condition number 100", gaussian_problem()),
                                    ("logreg-diabetes", logreg_problem())):
        table(title, d, rates(log_density, d, steps, repeats))


if __name__ == "__main__":
    main()
