#!/usr/bin/env python3
"""Steps per second of a vmapped 100-member MLP ensemble step against a Python loop over the members.

Problem: Part IV's toy regression (90 points, MLPs 1-10-10-1, tanh), DE and DLE updates, float32.
Baseline (named, measured in the same run): the same update for one member, jitted, called once per member in a
Python loop (what training an ensemble "one network at a time" costs). wvi: `wvi.ensembles.ensemble(...).step`, which
updates all members in one vmapped program, timed two ways: the jitted step called from a Python loop, and
`wvi.algorithm.run` (all steps in one `lax.scan`). Before timing, one DE step of both is checked to agree.

Usage: python benchmarks/ensembles.py [--members N] [--steps N]
"""
import argparse

import jax
import jax.numpy as jnp
import optax

from wvi import data, ensembles, networks
from wvi.algorithm import run
from timing import best_rate, python_loop

SIZES = (1, 10, 10, 1)


def loss_only(state, info):
    return info.loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    x, y = data.toy_regression(0)
    inputs, targets = jnp.asarray((x - 3.5) / 2), jnp.asarray(y)
    loss = lambda p: jnp.sum((targets - networks.mlp_apply(p, inputs)[:, 0]) ** 2) / (2 * 0.25**2)  # noqa: E731
    members = jax.vmap(lambda k: networks.mlp_init(k, SIZES))(jax.random.split(jax.random.key(0), args.members))
    eta = 1e-4
    print(f"device: {jax.devices()[0].device_kind}; {args.members} members of {SIZES}, {args.steps} steps, float32")

    # The baseline: one member at a time (same update as DE; DLE adds the prior drift and the noise).
    optimizer = optax.sgd(eta)

    @jax.jit
    def member_step(params, opt_state):
        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    one = [jax.tree_util.tree_map(lambda a: a[i], members) for i in range(args.members)]
    states = [optimizer.init(p) for p in one]

    de = ensembles.ensemble(loss, "de", eta)
    state0 = de.init(members)
    vmapped, _ = jax.jit(de.step)(jax.random.key(1), state0)
    looped = [member_step(p, s)[0] for p, s in zip(one, states)]
    gap = max(float(jnp.max(jnp.abs(vmapped.particles[0]["w"][i] - looped[i][0]["w"]))) for i in range(args.members))
    assert gap < 1e-5, f"vmapped and looped DE steps disagree by {gap}"

    def loop_members():
        params, opt_states = list(one), list(states)
        for _ in range(args.steps):
            for i in range(args.members):
                params[i], opt_states[i] = member_step(params[i], opt_states[i])
        jax.block_until_ready(params)

    baseline = best_rate(loop_members, args.steps, repeats=1)
    print(f"{'baseline: Python loop over members (DE)':52s} {baseline:10.1f} steps/s   1.00×")
    for name, kwargs in (("de", {}), ("dle", dict(lam2=1.0))):
        algorithm = ensembles.ensemble(loss, name, eta, **kwargs)
        state = algorithm.init(members)
        step = jax.jit(algorithm.step)
        loop = python_loop(step, state, jax.random.split(jax.random.key(2), args.steps))

        def scanned():
            jax.block_until_ready(run(jax.random.key(3), algorithm, state, args.steps, trace_fn=loss_only))

        for how, fn in (("jitted vmapped step, Python loop", loop), ("vmapped step in lax.scan", scanned)):
            rate = best_rate(fn, args.steps)
            print(f"{f'wvi {name.upper()}: {how}':52s} {rate:10.1f} steps/s {rate / baseline:7.1f}×")


if __name__ == "__main__":
    main()
