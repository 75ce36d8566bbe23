#!/usr/bin/env python3
"""Time of `wvi.align.align` against Git Re-Basin's weight matching, on random and on trained mean-field pairs.

Problems
- random: 3-hidden-layer ReLU MLPs (784 inputs, 10 outputs) of widths 512 … 2048 and ResNet20-FRN (3 input
  channels) with width multipliers 4 and 8; q0 and q1 are independent random mean-field Gaussians (He-normal
  means, log-normal stds), so the coordinate descent has real work to do.
- trained (`--trained`): the pairs of Part V's chapters at their CPU settings, trained here first (cached under
  `benchmarks/.cache/`): the digits MLP 3×128 and 3×512 (3,000 steps, as `mlp_digits`) and ResNet20-FRN ×1 on
  the 8×8 digit images (600 steps, as `resnet_digits`).

Baseline (named, measured in the same run): Git Re-Basin's `weight_matching` (Ainsworth et al. 2023,
github.com/samuela/git-re-basin, src/weight_matching.py), ported line by line to our specs: float32 JAX arrays, one
`get_permuted_param` per (leaf, axis), every assignment matrix recomputed at every visit, scipy's LAP, and its
stopping rule (a sweep in which no assignment gained more than 1e-12 in float32). For the mean cost it sees the
means; for the Wasserstein cost the means and the standard deviations (each leaf twice: Σ M0 M1ᵀ + S0 S1ᵀ, the
Wasserstein cost run with Git Re-Basin's code). wvi: `align(..., cost)` with its defaults (float64 products,
scipy's LAP), with `precision="float32"`, and with both `precision="float32"` and `solver="lapjv"` (the optional
lapx package's `lap.lapjvh`, if installed).
Both methods visit the permutations in the same order (Git Re-Basin's: a permutation of the spec's names from
`fold_in(key, sweep)`, passed to wvi as `order`), so both follow the same coordinate descent and their objectives
(the maximised Σ ⟨m0, P m1⟩ [+ ⟨s0, P s1⟩], evaluated in float64 for both) are comparable; the relative
difference (wvi − baseline) / |baseline| is printed beside each time (≥ 0: wvi reached at least as high).

Cores: `--cores 1` (default) pins the process, BLAS and XLA to one core; `--cores 2` lets both use two.
Usage: python benchmarks/align.py [--cores 1] [--trained] [--quick]
"""

from timing import pin_cores

CORES = pin_cores()

import argparse  # noqa: E402
import pickle  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from wvi import algorithm, align, bnn, networks  # noqa: E402
from wvi import gaussian as G

CACHE = Path(__file__).resolve().parent / ".cache"


def _get_permuted_param(spec, perm, key, params, except_axis=None):
    w = params[key]
    for axis, p in enumerate(spec.axes_to_perm[key]):
        if axis == except_axis:
            continue
        if p is not None:
            w = jnp.take(w, perm[p], axis=axis)
    return w


def rebasin_order(rng, names, iteration):
    return [names[int(i)] for i in jax.random.permutation(jax.random.fold_in(rng, iteration), len(names))]


def rebasin_weight_matching(rng, spec, pairs, max_iter=100):
    """Git Re-Basin's weight_matching on flat {leaf: array} dicts, as published, with A summed over `pairs`
    [(params_a, params_b), ...] (the means; and the stds for the Wasserstein cost)."""
    params_a = pairs[0][0]
    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in spec.perm_to_axes.items()}
    perm = {p: jnp.arange(n) for p, n in perm_sizes.items()}
    perm_names = list(perm.keys())
    for iteration in range(max_iter):
        progress = False
        for p in rebasin_order(rng, perm_names, iteration):
            n = perm_sizes[p]
            A = jnp.zeros((n, n))
            for wk, axis in spec.perm_to_axes[p]:
                for pa, pb in pairs:
                    w_a = pa[wk]
                    w_b = _get_permuted_param(spec, perm, wk, pb, except_axis=axis)
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
    return {p: np.asarray(v) for p, v in perm.items()}, iteration + 1


def objective(q0, q1, spec, perms, cost):
    """Σ ⟨m0, P m1⟩ (+ Σ ⟨s0, P s1⟩ for the Wasserstein cost), in float64."""
    p1 = align.permute(q1, spec, perms)
    parts = [(q0.mean, p1.mean)] + ([(q0.std, p1.std)] if cost == "wasserstein" else [])
    return sum(float(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64)))
               for x, y in parts for a, b in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)))


def random_q(key, init):
    mean = init(key)
    leaves, tree = jax.tree_util.tree_flatten(mean)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    std = jax.tree_util.tree_unflatten(tree, [0.02 * jnp.exp(0.5 * jax.random.normal(k, jnp.shape(m))) for k, m in zip(keys, leaves)])
    return G.meanfield(mean, std)


def timed(fn, repeats=1):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def variants():
    out = {"wvi (defaults)": {}, "wvi float32": {"precision": "float32"}}
    try:
        import lap
    except ImportError:
        lap = None
    if hasattr(lap, "lapjvh"):  # the optional lapx
        out["wvi float32, lapjv"] = {"precision": "float32", "solver": "lapjv"}
    return out


def compare(label, q0, q1, spec, cost, repeats):
    rng = jax.random.key(2)
    names = list(spec.perm_to_axes)
    flat = lambda tree: align.leaves_by_path(tree)
    pairs = [(flat(q0.mean), flat(q1.mean))] + ([(flat(q0.std), flat(q1.std))] if cost == "wasserstein" else [])
    rebasin_weight_matching(rng, spec, pairs, max_iter=1)  # compile its jnp ops for these shapes
    (base_perms, base_sweeps), t_base = timed(lambda: rebasin_weight_matching(rng, spec, pairs), repeats)
    base_obj = objective(q0, q1, spec, base_perms, cost)
    cells = [f"{label:<20}{cost:<12}{t_base:8.3f} s {base_sweeps:3d}"]
    for name, options in variants().items():
        run = lambda: align.align(q0, q1, spec, cost=cost, key=rng, order=lambda k: rebasin_order(rng, names, k), **options)
        run()  # warm the jax.random calls of the visiting order
        result, t = timed(run, repeats)
        rel = (objective(q0, q1, spec, result.perms, cost) - base_obj) / abs(base_obj)
        cells.append(f"{t:8.3f} s {t_base / t:5.1f}x {result.sweeps:3d} {rel:+9.1e}")
    print("  ".join(cells), flush=True)


def header():
    names = list(variants())
    print(f"{'':<32}{'Git Re-Basin':>16}" + "".join(f"{n:>30}" for n in names))
    print(f"{'network':<20}{'cost':<12}{'time':>10} {'sw':>3}" + f"{'time':>12} {'ratio':>6} {'sw':>3} {'Δobj rel':>9}" * len(names))


def trained_pairs():
    """Pairs of Part V's chapters at their CPU settings, trained once and cached."""
    from wvi import data

    CACHE.mkdir(exist_ok=True)
    path = CACHE / "align_trained_pairs.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    digits = data.digits()
    pairs = {}
    for width in (128, 512):
        x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
        trainer = bnn.meanfield_vi(lambda p, xb: networks.mlp_apply(p, xb, activation="relu"), x, y, prior_std=0.3,
                                optimizer=optax.sgd(0.1, momentum=0.9), batch_size=128)
        init = jax.vmap(lambda k: G.meanfield(networks.mlp_he_init(k, [64, width, width, width, 10]), 0.01))(
            jax.random.split(jax.random.key(0), 2))
        state, _ = algorithm.run(jax.random.key(1), trainer, jax.vmap(trainer.init)(init), 3_000, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=1_000)
        pairs[f"digits MLP 3x{width}"] = ("mlp", (algorithm.replica(state.approximation, 0), algorithm.replica(state.approximation, 1)))
        print(f"trained the digits MLP pair, width {width}", flush=True)
    images = data.digits(images=True)
    x, y = jnp.asarray(images.x_train), jnp.asarray(images.y_train)
    trainer = bnn.meanfield_vi(networks.resnet20_apply, x, y, prior_std=0.6, optimizer=optax.sgd(0.05, momentum=0.9), batch_size=32)
    init = jax.vmap(lambda k: G.meanfield(networks.resnet20_init(k, 10, 1, 1, "frn"), 0.01))(jax.random.split(jax.random.key(0), 2))
    state, _ = algorithm.run(jax.random.key(1), trainer, jax.vmap(trainer.init)(init), 600, trace_fn=algorithm.trace_loss, num_replicas=2, chunk=600, loop="python")
    pairs["digits ResNet20 x1"] = ("resnet", (algorithm.replica(state.approximation, 0), algorithm.replica(state.approximation, 1)))
    print("trained the digits ResNet20-FRN x1 pair", flush=True)
    pairs = {k: (kind, jax.tree_util.tree_map(np.asarray, qs)) for k, (kind, qs) in pairs.items()}
    path.write_bytes(pickle.dumps(pairs))
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=1, choices=(1, 2))
    parser.add_argument("--trained", action="store_true", help="also the trained pairs of Part V (trains them once)")
    parser.add_argument("--quick", action="store_true", help="MLP 3x512 and ResNet20 x4 only")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].platform}; {CORES} CPU core(s); float32 weights. Time: the best of "
          f"{'3 runs' if args.quick else '1 run (3 for problems under 2 s)'}; ratio: Git Re-Basin time / wvi time; "
          "sw: sweeps; Δobj rel: (wvi − Git Re-Basin) / |Git Re-Basin| of the objective reached")
    header()
    mlp = lambda w: (lambda k: networks.mlp_he_init(k, [784, w, w, w, 10]))
    resnet = lambda m: (lambda k: networks.resnet20_init(k, 10, 3, m))
    problems = [(f"MLP 3x{w}", mlp(w), align.mlp_spec) for w in ((512,) if args.quick else (512, 1024, 2048))]
    problems += [(f"ResNet20-FRN x{m}", resnet(m), align.resnet20_spec) for m in ((4,) if args.quick else (4, 8))]
    warm = random_q(jax.random.key(0), mlp(32))
    align.align(warm, warm, align.mlp_spec(warm.mean))
    for label, init, spec_fn in problems:
        q0, q1 = random_q(jax.random.key(0), init), random_q(jax.random.key(1), init)
        spec = spec_fn(q0.mean)
        for cost in ("wasserstein", "mean"):
            compare(label, q0, q1, spec, cost, repeats=3 if args.quick or "x512" in label or "x4" in label else 1)
    if args.trained:
        print("\ntrained pairs (Part V's chapters, CPU settings)")
        header()
        for label, (kind, qs) in trained_pairs().items():
            q0, q1 = jax.tree_util.tree_map(jnp.asarray, qs)
            spec = (align.mlp_spec if kind == "mlp" else align.resnet20_spec)(q0.mean)
            for cost in ("wasserstein", "mean"):
                compare(label, q0, q1, spec, cost, repeats=3)


if __name__ == "__main__":
    main()
