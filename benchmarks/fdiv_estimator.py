#!/usr/bin/env python3
"""Gradient estimates per second of the f-divergence path estimator for a 5-component 2D Gaussian mixture.

Problem: Yi & Liu's Rosenbrock mixture fit (Part II), 30 draws per component (150 per estimate), each of the four
divergences, float64. Baseline (named, measured in the same run): the same estimate computed sample by sample in
an un-jitted Python loop (`jax.grad` of one draw's term, summed), which is how the estimator reads on paper. wvi:
`wvi.bbvi.fdiv_grad`, jitted, all draws in one vmapped program; and `--batch` estimates at once under `vmap` over
keys. Before timing, both are checked to give the same gradient for the same draws.

Usage: python benchmarks/fdiv_estimator.py [--samples N] [--batch B]
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from wvi import bbvi, divergences, targets
from wvi import mixtures as M
from timing import best_rate


def looped_estimate(q, noise, name):
    """Σ_k w_k (1/n) Σ_i ∇(−h(r(x_ki))) one draw at a time, r's q under stop-gradient: the baseline."""
    div = divergences.get(name)
    fixed = jax.lax.stop_gradient(q)

    def term(params, k, z):
        x = params.means[k] + params.scales[k] @ z
        log_r = targets.rosenbrock(x) - M.log_prob(fixed, x)
        return -jax.nn.softmax(params.logits)[k] * div.h_log(log_r) / noise.shape[1]

    grad_term = jax.grad(term)
    total = jax.tree_util.tree_map(jnp.zeros_like, q)
    for k in range(noise.shape[0]):
        for i in range(noise.shape[1]):
            total = jax.tree_util.tree_map(jnp.add, total, grad_term(q, k, noise[k, i]))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="draws per component")
    parser.add_argument("--batch", type=int, default=64, help="estimates computed together under vmap")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    q = M.Mixture(jax.random.normal(keys[0], (5,)), jax.random.normal(keys[1], (5, 2)), jnp.tile(jnp.eye(2), (5, 1, 1)))
    print(f"device: {jax.devices()[0].device_kind}; 5-component 2D mixture, {args.samples} draws per component, float64")
    print(f"{'divergence':12s} {'baseline: un-jitted loop':>26s} {'jitted':>22s} {'ratio':>7s} "
          f"{'jitted, vmap over ' + str(args.batch):>24s} {'ratio':>7s}")
    for name in divergences.DIVERGENCES:
        noise = jax.random.normal(keys[2], (5, args.samples, 2))
        jitted = jax.jit(lambda key, q, name=name: bbvi.fdiv_grad(key, q, targets.rosenbrock, args.samples, name)[1])
        vmapped = jax.jit(jax.vmap(jitted, in_axes=(0, None)))
        batch_keys = jax.random.split(keys[2], args.batch)
        # the same draws give the same gradient
        reference = looped_estimate(q, noise, name)
        ours = jax.grad(lambda p: bbvi.fdiv_loss(p, noise, targets.rosenbrock, name)[0])(q)
        for a, b in zip(jax.tree_util.tree_leaves(reference), jax.tree_util.tree_leaves(ours)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
        baseline = best_rate(lambda: jax.block_until_ready(looped_estimate(q, noise, name)), 1, repeats=1)
        single = best_rate(lambda: jax.block_until_ready([jitted(k, q) for k in batch_keys]), args.batch)
        batched = best_rate(lambda: jax.block_until_ready(vmapped(batch_keys, q)), args.batch)
        print(f"{name:12s} {baseline:20.1f} est/s {single:16.1f} est/s {single / baseline:6.0f}x "
              f"{batched:18.1f} est/s {batched / baseline:6.0f}x")


if __name__ == "__main__":
    main()
