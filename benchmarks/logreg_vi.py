#!/usr/bin/env python3
"""Steps per second of BBVI on Bayesian logistic regression: wvi against numpyro's SVI, same model and data.

Problem: Part III's breast-cancer posterior (455 × 31 with intercept, N(0, 1) prior), 32 draws a step, Adam at
0.01, float64. Baseline (named, measured in the same run): numpyro's SVI with `Trace_ELBO(num_particles=32,
vectorize_particles=True)` and the `AutoMultivariateNormal` guide (full covariance) or `AutoNormal` (mean-field).
wvi: `wvi.bbvi.bbvi(..., estimator="path")` (and "rep") on a `Gaussian` / `MeanField`. Two ways of running:
one jitted step called from Python (`jax.jit(svi.update)` against `jax.jit(algorithm.step)`), and a whole run
compiled as one loop (a jitted `lax.scan` of `svi.update`, which is what `svi.run` does without a progress bar,
against `wvi.algorithm.run`), timed after a first call that compiles. Before
timing, the two log joints are checked to agree.

Usage: python benchmarks/logreg_vi.py [--steps N]
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from timing import best_rate, python_loop


def loss_only(state, info):
    return info.loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed run")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
    from numpyro.infer.util import log_density

    from wvi import bbvi, data, targets
    from wvi.algorithm import run

    split = data.binary_classification("breast_cancer")
    x, y = jnp.asarray(split.x_train), jnp.asarray(split.y_train, jnp.float64)
    dim = x.shape[1]
    log_posterior = targets.logistic_regression(split.x_train, split.y_train, 1.0)

    def model():
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([dim]).to_event(1))
        numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)

    w_test = jax.random.normal(jax.random.key(1), (dim,))
    theirs = log_density(model, (), {}, {"w": w_test})[0]
    np.testing.assert_allclose(float(theirs), float(log_posterior(w_test)), rtol=1e-10)

    print(f"device: {jax.devices()[0].device_kind}; breast cancer, D = {dim}, N = {x.shape[0]}, 32 draws/step, float64")
    print(f"{'family':16s} {'mode':22s} {'baseline: numpyro SVI':>22s} {'wvi path':>12s} {'ratio':>7s} {'wvi rep':>12s} {'ratio':>7s}")
    for family, guide_class in (("full-covariance", AutoMultivariateNormal), ("mean-field", AutoNormal)):
        svi = SVI(model, guide_class(model), optax.adam(0.01), Trace_ELBO(num_particles=32, vectorize_particles=True))
        svi_state = svi.init(jax.random.key(0))
        update = jax.jit(svi.update)

        def svi_loop():
            state = svi_state
            for _ in range(args.steps):
                state, _ = update(state)
            jax.block_until_ready(state)

        # what svi.run does without a progress bar (a lax.scan of svi.update), jitted once so that it compiles once
        svi_scan = jax.jit(lambda state: jax.lax.scan(lambda st, _: svi.update(st), state, None, length=args.steps))

        def svi_compiled():
            jax.block_until_ready(svi_scan(svi_state))

        rates = {"python loop of a jitted step": [best_rate(svi_loop, args.steps)],
                 "whole run compiled": [best_rate(svi_compiled, args.steps)]}
        for estimator in ("path", "rep"):
            algorithm = bbvi.bbvi(log_posterior, optax.adam(0.01), 32, estimator)
            state0 = algorithm.init(bbvi.initial(family, dim))
            step = jax.jit(algorithm.step)
            ours_loop = python_loop(step, state0, jax.random.split(jax.random.key(0), args.steps))

            def ours_compiled():
                jax.block_until_ready(run(jax.random.key(0), algorithm, state0, args.steps, trace_fn=loss_only)[0])

            rates["python loop of a jitted step"].append(best_rate(ours_loop, args.steps))
            rates["whole run compiled"].append(best_rate(ours_compiled, args.steps))
        for mode, (base, path, rep) in rates.items():
            print(f"{family:16s} {mode:22s} {base:16.0f} st/s {path:8.0f} st/s {path / base:6.2f}× {rep:8.0f} st/s {rep / base:6.2f}×")


if __name__ == "__main__":
    main()
