"""Rossi et al.'s permutation-alignment experiments, one command per run (Part V at full scale).

    python -m wvi.experiments.permutation --preset mlp-mnist --out results/permutation/mlp-mnist
    python -m wvi.experiments.permutation --preset mlp-mnist --width 1024 --out results/permutation/mlp-mnist-w1024
    python -m wvi.experiments.permutation --list

Each run trains two replicas of a mean-field VI (or MAP) network from different seeds, together in one vmapped
program, aligns the second to the first (`wvi.align.align`: Wasserstein cost for VI, weight matching on the means
for MAP), and measures the loss barrier along the W2 geodesic before and after alignment on the training and test
sets (`wvi.barrier.naive_and_aligned`, 25 τ, 128 posterior samples). It writes `result.json` (`RESULT_KEYS`:
config, package versions, device, wall times, accuracies, the alignment's objectives, barriers and loss curves).

With several devices the replica axis is sharded across them (`spread_replicas`). Training is cut into segments of
`--checkpoint-every` steps; after each one the state is saved to `checkpoint.npz` next to the result. Run the same command again after an interruption (a Colab session that ended)
and it resumes after the last saved segment. Segment k always uses the k-th key of one split, so an interrupted
and resumed run gives the same numbers as an uninterrupted one.

Presets follow the paper's Table 1 (`../shared/reference/experiments.md` §6): batch 500, VI std init 0.01, one
training sample a step, 128 test samples; MLP 3×512 ReLU with prior variance 0.0025; ResNet20 (base width 16) with
FRN or LayerNorm and prior variance 0.01. The numbers of steps are ours (the paper does not give them): 50 epochs
of MNIST-sized data for the MLPs, 100 epochs of CIFAR-10 for ResNet20. `--data digits` swaps in scikit-learn's
offline 8×8 digits for smoke tests on CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import typing
from functools import partial
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wvi import align, barrier, data, nn


class Preset(NamedTuple):
    data: str  # "mnist", "fashion_mnist", "cifar10" (or "digits" offline)
    arch: str  # "mlp" or "resnet20"
    width: int  # MLP hidden units, or ResNet20 width multiplier (base 16 channels)
    prior_variance: float  # α²
    temperature: float = 1.0
    method: str = "vi"  # "vi" or "map"
    norm: str = "frn"  # ResNet20 only: "frn" or "layernorm"
    steps: int = 6_000
    batch_size: int = 500
    learning_rate: float = 0.1
    std_init: float = 0.01
    num_samples: int = 128  # posterior samples behind each loss on the path
    num_taus: int = 25


PRESETS = {
    "mlp-mnist": Preset("mnist", "mlp", 512, 0.0025),
    "mlp-fashion-mnist": Preset("fashion_mnist", "mlp", 512, 0.0025),
    "mlp-cifar10": Preset("cifar10", "mlp", 512, 0.0025, steps=10_000),
    "mlp-mnist-map": Preset("mnist", "mlp", 512, 0.0025, method="map"),
    "resnet20-cifar10": Preset("cifar10", "resnet20", 1, 0.01, steps=10_000, learning_rate=0.05),
    "resnet20-layernorm-cifar10": Preset("cifar10", "resnet20", 1, 0.01, norm="layernorm", steps=10_000, learning_rate=0.05),
    "resnet20-cifar10-map": Preset("cifar10", "resnet20", 1, 0.01, method="map", steps=10_000, learning_rate=0.05),
}

RESULT_KEYS = ("schema", "preset", "config", "versions", "device", "num_devices", "replica_devices", "seconds", "accuracy",
               "alignment", "barriers", "curves")
SCHEMA = 1


def load_data(name: str, arch: str):
    """Training and test arrays: images (N, H, W, C) for ResNet20, flat (N, H·W·C) for the MLP."""
    if name == "digits":
        split = data.digits(images=arch == "resnet20")
    else:
        split = data.image_classification(name, allow_unpinned=True, flat=arch == "mlp")
    real = jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 unless x64 is enabled: the parameters' dtype
    return (jnp.asarray(split.x_train, real), jnp.asarray(split.y_train), jnp.asarray(split.x_test, real),
            jnp.asarray(split.y_test))


def network(preset: Preset, x_train):
    """(init(key) -> params, apply, spec_fn) of the preset's architecture for inputs like x_train."""
    if preset.arch == "mlp":
        sizes = [x_train.shape[1]] + [preset.width] * 3 + [10]
        return partial(nn.mlp_he_init, sizes=sizes), partial(nn.mlp_apply, activation="relu"), align.mlp_spec
    if preset.arch == "resnet20":
        return (lambda key: nn.resnet20_init(key, 10, x_train.shape[-1], preset.width, preset.norm)), nn.resnet20_apply, align.resnet20_spec
    raise ValueError(f"unknown arch {preset.arch!r}; expected 'mlp' or 'resnet20'")


def spread_replicas(state, num_replicas: int):
    """(state, number of devices): the replica axis (the leading axis of every leaf) placed across all devices with
    JAX's sharding when there are several and they divide the replicas, so that the vmapped training step runs one
    share of the replicas on each; unchanged on one device."""
    devices = jax.devices()
    if len(devices) < 2 or num_replicas % len(devices):
        return state, 1
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    return jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replica"))), len(devices)


def _save_checkpoint(path: Path, state, segment: int, losses, config: dict) -> None:
    leaves = jax.tree_util.tree_leaves(state)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, segment=segment, losses=np.asarray(losses), config=json.dumps(config),
             **{f"leaf{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    tmp.replace(path)  # atomic: an interruption while saving keeps the previous checkpoint


def _load_checkpoint(path: Path, like, config: dict):
    """(state, segments done, losses) from `path`, or None when there is none; a checkpoint of another
    configuration raises instead of being silently reused."""
    if not path.exists():
        return None
    with np.load(path) as saved:
        if json.loads(str(saved["config"])) != config:
            raise ValueError(f"{path} was written by another configuration; delete it or choose another --out")
        treedef = jax.tree_util.tree_structure(like)
        leaves = [jnp.asarray(saved[f"leaf{i}"]) for i in range(treedef.num_leaves)]
        return jax.tree_util.tree_unflatten(treedef, leaves), int(saved["segment"]), list(saved["losses"])


def train_pair(preset: Preset, x_train, y_train, out: Path, checkpoint_every: int, seed: int = 0, progress: bool = False):
    """Two replicas trained together (vmap, spread over the devices when there are several), resumable from
    `out/checkpoint.npz`; returns (q0, q1, seconds, number of devices holding the replicas)."""
    init_fn, apply, _ = network(preset, x_train)
    prior_std = float(np.sqrt(preset.prior_variance))
    common = dict(prior_std=prior_std, batch_size=min(preset.batch_size, len(y_train)), learning_rate=preset.learning_rate)
    if preset.method == "vi":
        trainer = nn.vi_trainer(apply, x_train, y_train, temperature=preset.temperature, **common)
        start = jax.vmap(lambda k: nn.meanfield(init_fn(k), preset.std_init))(jax.random.split(jax.random.key(seed), 2))
    elif preset.method == "map":
        trainer = nn.map_trainer(apply, x_train, y_train, **common)
        start = jax.vmap(init_fn)(jax.random.split(jax.random.key(seed), 2))
    else:
        raise ValueError(f"unknown method {preset.method!r}; expected 'vi' or 'map'")
    state = jax.vmap(trainer.init)(start)
    config = {**preset._asdict(), "seed": seed, "checkpoint_every": checkpoint_every}
    path = out / "checkpoint.npz"
    resumed = _load_checkpoint(path, state, config)
    done, losses = (0, []) if resumed is None else resumed[1:]
    if resumed is not None:
        state = resumed[0]
        print(f"resuming after step {min(done * checkpoint_every, preset.steps)} of {preset.steps}")
    state, replica_devices = spread_replicas(state, 2)
    num_segments = -(-preset.steps // checkpoint_every)
    # XLA's CPU backend runs convolution gradients slowly inside lax.scan (benchmarks/train_throughput.py)
    loop = "python" if preset.arch == "resnet20" and jax.default_backend() == "cpu" else "scan"
    keys = jax.random.split(jax.random.key(seed + 1), num_segments)
    start_time = time.perf_counter()
    for k in range(done, num_segments):
        steps = min(checkpoint_every, preset.steps - k * checkpoint_every)
        state, segment_losses = nn.train(keys[k], trainer, state, steps, num_replicas=2, chunk=steps, progress=progress,
                                         name=f"segment {k + 1}/{num_segments}", loop=loop)
        losses.extend(np.asarray(segment_losses).mean(axis=1).tolist())
        _save_checkpoint(path, state, k + 1, losses, config)
    q = state.q if preset.method == "vi" else nn.point_mass(state.params)
    return nn.replica(q, 0), nn.replica(q, 1), time.perf_counter() - start_time, replica_devices


def versions() -> dict:
    import optax
    import scipy

    import wvi

    return {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
            "optax": optax.__version__, "scipy": scipy.__version__, "wvi": wvi.__version__}


def run(preset: Preset, out: Path, name: str, checkpoint_every: int = 1_000, seed: int = 0, progress: bool = False) -> dict:
    """Train, align, measure; write and return the result (keys `RESULT_KEYS`)."""
    out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    x_train, y_train, x_test, y_test = load_data(preset.data, preset.arch)
    _, apply, spec_fn = network(preset, x_train)
    q0, q1, train_seconds, replica_devices = train_pair(preset, x_train, y_train, out, checkpoint_every, seed, progress)
    spec = spec_fn(q0.mean)
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    align_start = time.perf_counter()
    cost = "wasserstein" if preset.method == "vi" else "mean"
    result = barrier.naive_and_aligned(jax.random.key(seed + 2), q0, q1, spec, apply, splits, cost=cost,
                                       num_taus=preset.num_taus, num_samples=preset.num_samples if preset.method == "vi" else 1)
    align_seconds = time.perf_counter() - align_start
    accuracy = {}
    for label, q in (("q0", q0), ("q1", q1)):
        accuracy[label] = {s: nn.accuracy(nn.predictive_log_probs(jax.random.key(seed + 3), q, apply, x, preset.num_samples), y)
                           for s, (x, y) in splits.items()}
    record = {
        "schema": SCHEMA, "preset": name, "config": {**preset._asdict(), "seed": seed},
        "versions": versions(), "device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
        "replica_devices": replica_devices,
        "seconds": {"train": train_seconds, "align_and_barriers": align_seconds, "wall": time.perf_counter() - wall_start},
        "accuracy": accuracy,
        "alignment": {"cost": cost, "sweeps": result.alignment.sweeps, "objectives": [float(v) for v in result.alignment.objectives]},
        "barriers": {label: {s: float(c.barrier) for s, c in getattr(result, label).items()} for label in ("naive", "aligned")},
        "curves": {label: {s: {"taus": np.asarray(c.taus).tolist(), "losses": np.asarray(c.losses).tolist()}
                           for s, c in getattr(result, label).items()} for label in ("naive", "aligned")},
    }
    (out / "result.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: Optional[list] = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--out", type=Path, help="folder for result.json and checkpoint.npz")
    parser.add_argument("--list", action="store_true", help="print the presets and exit")
    for field in ("data", "width", "prior_variance", "temperature", "method", "norm", "steps", "batch_size",
                  "learning_rate", "num_samples", "num_taus"):
        kind = typing.get_type_hints(Preset)[field]  # str, int or float
        parser.add_argument("--" + field.replace("_", "-"), type=kind, help=f"override the preset's {field}")
    parser.add_argument("--checkpoint-every", type=int, default=1_000, help="steps between checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show a progress bar while training")
    args = parser.parse_args(argv)
    if args.list:
        for name, preset in PRESETS.items():
            print(f"{name:28s} {preset}")
        return None
    if args.preset is None or args.out is None:
        parser.error("--preset and --out are required (or --list)")
    overrides = {f: getattr(args, f) for f in Preset._fields if getattr(args, f, None) is not None}
    preset = PRESETS[args.preset]._replace(**overrides)
    if args.checkpoint_every < 1:
        parser.error("--checkpoint-every must be a positive number of steps")
    record = run(preset, args.out, args.preset, args.checkpoint_every, args.seed, args.progress)
    print(json.dumps({k: record[k] for k in ("preset", "device", "barriers", "seconds")}, indent=1))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
