#!/usr/bin/env python3
"""Training images per second per replica: VI replicas vmapped in one program against one replica at a time.

Problems: two mean-field VI replicas (Part V) on scikit-learn's 8×8 digits: the MLP 64-128-128-128-10 (ReLU,
batch 128) and ResNet20-FRN ×1 on 8×8×1 images (batch 32), float32, one posterior sample per step.
Baseline (named, measured in the same run): `wvi.algorithm.run(..., num_replicas=2, replicas="sequential")`, one
replica after the other, each a `lax.scan` over its steps. wvi: `replicas="vmap"`, both replicas in one vmapped,
scanned program.
On CPU two more modes are timed, with each step a separately jitted call from Python (`loop="python"`): one
replica at a time, and both vmapped. The ResNet chapter uses the vmapped one there, because XLA's CPU backend runs
convolution gradients inside a compiled loop several times slower. All modes use the same keys; the first steps'
losses are checked to agree before timing.

Throughput per replica = steps × batch / wall time of training all replicas (compilation excluded: each mode runs
once before it is timed). Ratio = wvi / baseline (> 1: vmapping is faster).

Usage: python benchmarks/train_throughput.py [--mlp-steps 300] [--resnet-steps 6]
"""
import argparse
import time
from functools import partial

import jax
import numpy as np
import optax

from wvi import algorithm, bnn, data, networks
from wvi import gaussian as G

MODES = {"one at a time (baseline)": dict(replicas="sequential", loop="scan"),
         "vmapped (wvi)": dict(replicas="vmap", loop="scan"),
         "one at a time, Python loop": dict(replicas="sequential", loop="python"),
         "vmapped, Python loop": dict(replicas="vmap", loop="python")}


def measure(label, trainer, init, steps, batch, modes):
    state = jax.vmap(trainer.init)(init)
    rates, first = {}, {}
    for mode in modes:
        kwargs = MODES[mode]
        algorithm.run(jax.random.key(1), trainer, state, steps, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=steps, **kwargs)  # compile
        start = time.perf_counter()
        out, losses = algorithm.run(jax.random.key(1), trainer, state, steps, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=steps, **kwargs)
        jax.block_until_ready(out)
        rates[mode] = steps * batch / (time.perf_counter() - start)
        first[mode] = losses[:3]
    reference = first[modes[0]]
    for mode in modes[1:]:
        np.testing.assert_allclose(first[mode], reference, rtol=1e-3, atol=1e-4)
    base = rates[modes[0]]
    print(f"{label:<26}" + "".join(f"{rates[m]:>12.0f} img/s ({rates[m] / base:5.2f}x)" for m in modes))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp-steps", type=int, default=300)
    parser.add_argument("--resnet-steps", type=int, default=6)
    args = parser.parse_args()
    device = jax.devices()[0]
    modes = list(MODES) if device.platform == "cpu" else list(MODES)[:2]
    print(f"device: {device.device_kind} ({device.platform}); two replicas; ratios against {modes[0]!r}")
    print(f"{'problem':<26}" + "".join(f"{m:>30}" for m in modes))

    flat = data.digits()
    apply = partial(networks.mlp_apply, activation="relu")
    trainer = bnn.meanfield_vi(apply, flat.x_train, flat.y_train, prior_std=0.3, optimizer=optax.sgd(0.1, momentum=0.9), batch_size=128)
    init = jax.vmap(lambda k: G.meanfield(networks.mlp_he_init(k, [64, 128, 128, 128, 10]), 0.01))(jax.random.split(jax.random.key(0), 2))
    measure("MLP 3x128, batch 128", trainer, init, args.mlp_steps, 128, modes)

    images = data.digits(images=True)
    trainer = bnn.meanfield_vi(networks.resnet20_apply, images.x_train, images.y_train, prior_std=0.3, optimizer=optax.sgd(0.05, momentum=0.9), batch_size=32)
    init = jax.vmap(lambda k: G.meanfield(networks.resnet20_init(k, 10, 1, 1, "frn"), 0.01))(jax.random.split(jax.random.key(0), 2))
    measure("ResNet20-FRN x1, batch 32", trainer, init, args.resnet_steps, 32, modes)


if __name__ == "__main__":
    main()
