#!/usr/bin/env python3
"""Time of `wvi.align.align` on random weights, on one CPU core, against Git Re-Basin's weight matching.

Problems: a 3-hidden-layer ReLU MLP (784 inputs, 10 outputs) of widths 128 … 2048, and ResNet20 (FRN, 3 input
channels) with width multipliers 1 … 8. q0 and q1 are independent random mean-field Gaussians (He-normal means,
log-normal stds), so the coordinate descent has real work to do.

Baseline (named, measured in the same run): Git Re-Basin's `weight_matching` (Ainsworth et al. 2023,
github.com/samuela/git-re-basin, src/weight_matching.py), ported line by line to our specs: JAX arrays, one
`get_permuted_param` per (leaf, axis), the LAP from scipy, on the means alone. wvi: `align(..., cost="mean")`
(the same problem) and `align(..., cost="wasserstein")` (means and stds: twice the products). Both are checked to
reach the same objective on the mean cost before timing. The ratio is baseline time / wvi time (> 1: wvi faster).

Usage: python benchmarks/align.py [--max-width 2048] [--max-multiplier 8]
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from wvi import align, nn  # noqa: E402


def _get_permuted_param(spec, perm, key, params, except_axis=None):
    w = params[key]
    for axis, p in enumerate(spec.axes_to_perm[key]):
        if axis == except_axis:
            continue
        if p is not None:
            w = jnp.take(w, perm[p], axis=axis)
    return w


def rebasin_weight_matching(rng, spec, params_a, params_b, max_iter=100):
    """Git Re-Basin's weight_matching on flat {leaf: array} dicts (means only), as published."""
    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in spec.perm_to_axes.items()}
    perm = {p: jnp.arange(n) for p, n in perm_sizes.items()}
    perm_names = list(perm.keys())
    for iteration in range(max_iter):
        progress = False
        for p_ix in jax.random.permutation(jax.random.fold_in(rng, iteration), len(perm_names)):
            p = perm_names[int(p_ix)]
            n = perm_sizes[p]
            A = jnp.zeros((n, n))
            for wk, axis in spec.perm_to_axes[p]:
                w_a = params_a[wk]
                w_b = _get_permuted_param(spec, perm, wk, params_b, except_axis=axis)
                w_a = jnp.moveaxis(w_a, axis, 0).reshape((n, -1))
                w_b = jnp.moveaxis(w_b, axis, 0).reshape((n, -1))
                A += w_a @ w_b.T
            ri, ci = linear_sum_assignment(A, maximize=True)
            assert (ri == np.arange(len(ri))).all()
            old = jnp.vdot(A, jnp.eye(n)[perm[p]])
            new = jnp.vdot(A, jnp.eye(n)[ci, :])
            progress = progress or bool(new > old + 1e-12)
            perm[p] = jnp.array(ci)
        if not progress:
            break
    return perm, iteration + 1


def mean_objective(spec, params_a, params_b, perm):
    return float(sum(jnp.vdot(params_a[k], _get_permuted_param(spec, perm, k, params_b)) for k in params_a))


def random_q(key, init):
    mean = init(key)
    leaves, tree = jax.tree_util.tree_flatten(mean)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    std = jax.tree_util.tree_unflatten(tree, [0.02 * jnp.exp(0.5 * jax.random.normal(k, jnp.shape(m))) for k, m in zip(keys, leaves)])
    return nn.meanfield(mean, std)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def compare(label, init, spec_fn, show=True):
    q0, q1 = random_q(jax.random.key(0), init), random_q(jax.random.key(1), init)
    spec = spec_fn(q0.mean)
    a, b = align.leaves_by_path(q0.mean), align.leaves_by_path(q1.mean)
    rebasin_weight_matching(jax.random.key(2), spec, a, b, max_iter=1)  # compile its jnp ops for these shapes
    (base_perm, base_sweeps), t_base = timed(lambda: rebasin_weight_matching(jax.random.key(2), spec, a, b))
    ours, t_mean = timed(lambda: align.align(q0, q1, spec, cost="mean", key=jax.random.key(2)))
    wass, t_w2 = timed(lambda: align.align(q0, q1, spec, cost="wasserstein", key=jax.random.key(2)))
    # same problem, same kind of answer: a local optimum of the same objective (the visiting orders differ)
    base_obj, our_obj = mean_objective(spec, a, b, base_perm), float(ours.objectives[-1])
    assert abs(base_obj - our_obj) <= 0.02 * abs(base_obj), (base_obj, our_obj)
    if show:
        print(f"{label:<22} {t_base:9.3f} s ({base_sweeps:2d} sweeps) {t_mean:9.3f} s {t_base / t_mean:7.1f}x ({ours.sweeps:2d} sweeps)"
              f"   {t_w2:9.3f} s {t_base / t_w2:7.1f}x ({wass.sweeps:2d} sweeps)")
    return t_mean, t_w2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-width", type=int, default=2048)
    parser.add_argument("--max-multiplier", type=int, default=8)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].platform}; one CPU core; float32 weights, float64 assignment matrices")
    print(f"{'network':<22} {'Git Re-Basin (ported)':>24} {'wvi, mean cost':>14} {'ratio':>7}"
          f"               {'wvi, Wasserstein':>16} {'ratio':>7}")
    compare("warm-up", lambda k: nn.mlp_he_init(k, [784, 32, 32, 32, 10]), align.mlp_spec, show=False)  # imports, caches
    times = {}
    width = 128
    while width <= args.max_width:
        times[width] = compare(f"MLP 3x{width}", lambda k, w=width: nn.mlp_he_init(k, [784, w, w, w, 10]), align.mlp_spec)
        width *= 2
    m = 1
    while m <= args.max_multiplier:
        compare(f"ResNet20-FRN x{m}", lambda k, m=m: nn.resnet20_init(k, 10, 3, m), align.resnet20_spec)
        m *= 2
    if 512 in times:
        verdict = "under" if times[512][1] < 1.0 else "NOT under"
        print(f"\nThe 3x512 MLP aligns with the Wasserstein cost in {times[512][1]:.2f} s on one core: {verdict} 1 second.")


if __name__ == "__main__":
    main()
