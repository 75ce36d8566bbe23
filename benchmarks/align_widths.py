#!/usr/bin/env python3
"""Fig. A14 of Rossi et al.: time to align trained VI pairs against weight matching of trained MAP (SGD) pairs,
across widths.

The paper (App. D) times "the SOLAP with the Wasserstein cost" on VI solutions and "the deterministic case"
(Git Re-Basin's weight matching) on SGD solutions, for MLPs and ResNet20 of several widths, and reads off Fig. A14
that most alignments finish within a minute and that aligning VI solutions of wide networks costs more than
matching the weights of SGD solutions. This script measures the same on the book's CPU-scale pairs.

Pairs (trained here first, cached under `benchmarks/.cache/`), at the settings of Part V's chapters:
- digits MLP 3×w, w in `--mlp-widths` (default 64 128 256 512): 3,000 SGD steps (lr 0.1, momentum 0.9,
  batch 128, prior std 0.3, VI stds started at 0.01), as `book/part5/mlp_digits.ipynb`;
- ResNet20-FRN ×m on the 8×8 digit images, m in `--resnet-widths` (default 1 2): 600 steps (lr 0.05,
  momentum 0.9, batch 32, prior std 0.6), as `book/part5/resnet_digits.ipynb`.
For each width, `--pairs` pairs (default 3) of VI and of MAP solutions: 2 × pairs replicas trained together from
the keys (0, 1); pair k is replicas (2k, 2k + 1); the MAP pair k starts from the same initial means as VI's.

Timed (one core by default, `--cores 2` for two), each `--repeats` times (default 3), all times kept:
- VI: `wvi.align.align(q0, q1, spec, cost="wasserstein")` with its defaults (the paper's SOLAP);
- MAP: `wvi.align.align(m0, m1, spec, cost="mean")` with its defaults: weight matching (the Wasserstein cost of
  point masses), by the same code, so that the two differ only in the problem they solve;
- MAP, Git Re-Basin: its `weight_matching` as ported in `benchmarks/align.py` (the baseline `benchmarks/align.py` names),
  for reference.

Output: `results/align-timing/fig-a14.json` (or `--out`), written after each point, so that a rerun skips the
points already there; the Part V results chapter (`book/part5/full_scale.ipynb`, section 10) plots it and decides
the ledger row with `wvi.experiments.results.alignment_time_check`.
Training is not timed and runs faster on two cores: `--cores 2 --train-only` first fills the cache, then the
timing run (one core) reads it.
Usage: python benchmarks/align_widths.py [--cores 2 --train-only]; python benchmarks/align_widths.py [--cores 1]
       [--pairs 3] [--repeats 3] [--mlp-widths 64 128 256 512] [--resnet-widths 1 2] [--out PATH]
"""
from timing import pin_cores

CORES = pin_cores()

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from align import CACHE, rebasin_weight_matching  # noqa: E402  (benchmarks/align.py)
from wvi import align, bnn, data, networks  # noqa: E402
from wvi.experiments import permutation  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "mlp": dict(steps=3_000, lr=0.1, batch=128, prior_std=0.3, std_init=0.01, chunk=1_000, loop="scan"),
    "resnet": dict(steps=600, lr=0.05, batch=32, prior_std=0.6, std_init=0.01, chunk=600, loop="python"),
}


def problem(arch: str, width: int):
    """(apply, init_fn, x_train, y_train, spec_fn) of the digits network `arch` at `width`."""
    if arch == "mlp":
        digits = data.digits()
        apply = partial(networks.mlp_apply, activation="relu")
        return (apply, partial(networks.mlp_he_init, sizes=[64] + [width] * 3 + [10]), jnp.asarray(digits.x_train),
                jnp.asarray(digits.y_train), align.mlp_spec)
    images = data.digits(images=True)
    return (networks.resnet20_apply, lambda k: networks.resnet20_init(k, 10, 1, width, "frn"),
            jnp.asarray(images.x_train), jnp.asarray(images.y_train), align.resnet20_spec)


def trained(arch: str, width: int, method: str, num_pairs: int):
    """`num_pairs` pairs of `method` ("vi" or "map") solutions, trained together once and cached."""
    path = CACHE / f"a14-{arch}-{width}-{method}-{num_pairs}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    s = SETTINGS[arch]
    apply, init_fn, x, y, _ = problem(arch, width)
    common = dict(prior_std=s["prior_std"], optimizer=optax.sgd(s["lr"], momentum=0.9), batch_size=s["batch"])
    trainer = (bnn.meanfield_vi if method == "vi" else bnn.map_estimation)(apply, x, y, **common)
    start = time.perf_counter()
    reps, losses = bnn.train_replicas(jax.random.key(0), jax.random.key(1), trainer, init_fn, s["steps"],
                                      num_replicas=2 * num_pairs, std_init=s["std_init"] if method == "vi" else None,
                                      chunk=s["chunk"], loop=s["loop"])
    reps = [jax.tree_util.tree_map(np.asarray, q) for q in reps]
    pairs = [(reps[2 * k], reps[2 * k + 1]) for k in range(num_pairs)]
    print(f"  trained {num_pairs} {method.upper()} pairs of {arch} x{width} in {time.perf_counter() - start:.0f} s; "
          f"the trainer's loss over the last 100 steps {np.asarray(losses[-100:]).mean():.3f}", flush=True)
    CACHE.mkdir(exist_ok=True)
    path.write_bytes(pickle.dumps(pairs))
    return pairs


def times(fn, repeats: int):
    """(result of the last call, wall times of `repeats` calls after one untimed warm-up call); `fn` is
    deterministic, so every call returns the same result."""
    fn()
    spent = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        spent.append(time.perf_counter() - start)
    return result, spent


def point(arch: str, width: int, num_pairs: int, repeats: int) -> dict:
    spec_fn = problem(arch, width)[-1]
    vi, maps = trained(arch, width, "vi", num_pairs), trained(arch, width, "map", num_pairs)
    rows = []
    for (q0, q1), (m0, m1) in zip(vi, maps):
        q0, q1, m0, m1 = jax.tree_util.tree_map(jnp.asarray, (q0, q1, m0, m1))
        spec = spec_fn(q0.mean)
        r_vi, t_vi = times(lambda: align.align(q0, q1, spec, cost="wasserstein"), repeats)
        r_map, t_map = times(lambda: align.align(m0, m1, spec, cost="mean"), repeats)
        flat = align.leaves_by_path
        pairs = [(flat(m0.mean), flat(m1.mean))]
        (_, sweeps_rb), t_rb = times(lambda: rebasin_weight_matching(jax.random.key(2), spec, pairs), repeats)
        rows.append({"vi": {"seconds": t_vi, "sweeps": int(r_vi.sweeps)},
                     "map": {"seconds": t_map, "sweeps": int(r_map.sweeps)},
                     "map_git_rebasin": {"seconds": t_rb, "sweeps": int(sweeps_rb)}})
        print(f"  {arch} x{width}: VI {min(t_vi):.3f} s ({r_vi.sweeps} sweeps), MAP {min(t_map):.3f} s "
              f"({r_map.sweeps} sweeps), Git Re-Basin on MAP {min(t_rb):.3f} s", flush=True)
    sizes = sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(vi[0][0].mean))
    return {"arch": arch, "width": width, "parameters": sizes, "pairs": rows}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"device": jax.devices()[0].platform, "cpu": cpu, "cores": CORES, **permutation.versions()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=1, choices=(1, 2))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mlp-widths", type=int, nargs="*", default=[64, 128, 256, 512])
    parser.add_argument("--resnet-widths", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--train-only", action="store_true", help="train and cache the pairs, time nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "align-timing" / "fig-a14.json")
    args = parser.parse_args(argv)
    points = [(arch, w) for arch, widths in (("mlp", args.mlp_widths), ("resnet", args.resnet_widths)) for w in widths]
    if args.train_only:
        for arch, width in points:
            print(f"{arch}-{width}:", flush=True)
            trained(arch, width, "vi", args.pairs), trained(arch, width, "map", args.pairs)
        return None
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"points": {}}
    doc.setdefault("machine", machine())  # the first run's; each point also records its own
    doc.update(figure="A14", repeats=args.repeats, settings=SETTINGS,
               timed={"vi": "wvi.align.align(cost='wasserstein'), defaults", "map": "wvi.align.align(cost='mean'), "
                      "defaults", "map_git_rebasin": "Git Re-Basin weight_matching (benchmarks/align.py)"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for arch, width in points:
        name = f"{arch}-{width}"
        if name in doc["points"] and len(doc["points"][name]["pairs"]) == args.pairs:
            print(f"{name}: already measured", flush=True)
            continue
        print(f"{name}:", flush=True)
        doc["points"][name] = {**point(arch, width, args.pairs, args.repeats), "machine": machine()}
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    main()
