"""Rossi et al.'s permutation-alignment experiments, one command per run or per paper figure (Part V at full scale). ::

    python -m wvi.experiments.permutation --preset mlp-mnist \\
        --out results/permutation/mlp-mnist
    python -m wvi.experiments.permutation --preset mlp-mnist --width 1024 \\
        --out results/permutation/mlp-mnist-width1024
    python -m wvi.experiments.permutation --figure 5 --out results/permutation
    python -m wvi.experiments.permutation --list
    # a prepared GPU session (wvi.experiments.campaign)
    python -m wvi.experiments.permutation --campaign gpu --list

Each run trains two replicas of a mean-field VI (or MAP) network from the keys of `--seed` (`seed_keys`: no two
seeds share a key), together in one vmapped program, aligns the second to the first (`wvi.align.align`:
Wasserstein cost for VI, weight matching on the means for MAP), and measures the loss barrier along the W2 geodesic
before and after alignment on the training and test sets (`wvi.barrier.naive_and_aligned`, 25 τ, 128 posterior
samples). It writes `result.json` with the config, package versions, devices, wall times, accuracies, the
alignment's objectives, barriers and loss curves.

`--figure N` runs every point of the paper's figure N (`FIGURES`: Figs. 4, 5, 7, 8, 9 and 11), each into
`OUT/<run name>/` (`run_name`), skipping points whose result is already there. Overrides given on the command line
apply to every point (e.g. `--steps 2000 --num-samples 8` for a reduced budget; each result records its config).
With several devices the points run at the same time, each on its own share of the devices (`device_groups`); with
at least two devices per point the replica axis is sharded across its share (`spread_replicas`). MLP points that
share one device and differ only in prior variance or temperature (Figs. 7 and 8 on one GPU) train as one program
(`run_group`).

Training is cut into segments of `--checkpoint-every` steps; after each one the state is saved to `checkpoint.npz`
next to the result. Run the same command again after an interruption (a Colab session that ended) and it resumes
after the last saved segment. Segment k always uses the k-th key of one split, so an interrupted and resumed run
gives the same numbers as an uninterrupted one.

Presets follow the paper's Table 1 (appendix of `../shared/seeds/002_*.txt`): batch 500, 1,000 training epochs, VI
std init 0.01, temperature 1, one training sample a step, 128 test samples; MLP 3×512 ReLU with prior variance
0.0025; ResNet20 (base width 16) with FRN or LayerNorm and prior variance 0.01; SGD with momentum (0.9: ours, the
paper does not give it). Table 1's learning rate 1e-6 is read as a step on the summed loss, −ELBO over all N points;
our trainers step on −ELBO / N, so the same step is 1e-6 · N: 0.06 on MNIST and Fashion-MNIST (N = 60,000), 0.05 on
CIFAR-10 (N = 50,000). `--data digits` swaps in scikit-learn's offline 8×8 digits for smoke tests on CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wvi import algorithm, align, barrier, bnn, data, networks
from wvi import gaussian as G


class Preset(NamedTuple):
    data: str  # "mnist", "fashion_mnist", "cifar10" (or "digits" offline)
    arch: str  # "mlp" or "resnet20"
    width: int  # MLP hidden units, or ResNet20 width multiplier (base 16 channels)
    prior_variance: float  # α²
    temperature: float = 1.0
    method: str = "vi"  # "vi" or "map"
    norm: str = "frn"  # ResNet20 only: "frn" or "layernorm"
    steps: int = 120_000  # 1,000 epochs of 60,000 points in batches of 500
    batch_size: int = 500
    learning_rate: float = 0.06  # Table 1's 1e-6 on the summed loss, times N = 60,000 (see the module docstring)
    std_init: float = 0.01
    num_samples: int = 128  # posterior samples behind each loss on the path
    num_taus: int = 25


_CIFAR = dict(steps=100_000, learning_rate=0.05)  # 1,000 epochs of 50,000 points; 1e-6 · 50,000
PRESETS = {
    "mlp-mnist": Preset("mnist", "mlp", 512, 0.0025),
    "mlp-fashion-mnist": Preset("fashion_mnist", "mlp", 512, 0.0025),
    "mlp-cifar10": Preset("cifar10", "mlp", 512, 0.0025, **_CIFAR),
    "mlp-mnist-map": Preset("mnist", "mlp", 512, 0.0025, method="map"),
    "resnet20-cifar10": Preset("cifar10", "resnet20", 1, 0.01, **_CIFAR),
    "resnet20-layernorm-cifar10": Preset("cifar10", "resnet20", 1, 0.01, norm="layernorm", **_CIFAR),
    "resnet20-cifar10-map": Preset("cifar10", "resnet20", 1, 0.01, method="map", **_CIFAR),
    # not in the paper: ResNet20 on MNIST padded to 32×32, the GPU campaign's stand-in for CIFAR-10 (not had here)
    "resnet20-mnist32": Preset("mnist32", "resnet20", 1, 0.01),
    "resnet20-layernorm-mnist32": Preset("mnist32", "resnet20", 1, 0.01, norm="layernorm"),
}

RESULT_KEYS = ("schema", "preset", "config", "versions", "device", "num_devices", "replica_devices", "devices", "seconds",
               "accuracy", "alignment", "barriers", "curves", "trained_with")
SCHEMA = 4  # 3: `trained_with`, the other runs of one compiled training program (run_group); 4: `seed_keys`


def schema_holds(record: dict) -> bool:
    """Whether a result record is of this `SCHEMA`. A schema-3 record of seed 0 is too: schema 3 drew seed s's keys
    from key(s + j), j = 0…3, which for seed 0 are `seed_keys(0)`, so it holds what this version computes."""
    return record.get("schema") == SCHEMA or (record.get("schema") == 3 and record.get("config", {}).get("seed") == 0)


class SeedKeys(NamedTuple):
    """A seed's root keys, one per use (`seed_keys`)."""
    init: jax.Array      # the two replicas' initial weights: split in two
    train: jax.Array     # training: split into one key per segment of `--checkpoint-every` steps
    barrier: jax.Array   # alignment and the loss curves (`barrier.naive_and_aligned`)
    accuracy: jax.Array  # the replicas' predictive accuracies


def seed_keys(seed: int) -> SeedKeys:
    """Seed s's root keys, `jax.random.key(4s + j)` for its j-th use: no two seeds, and no two uses of one seed,
    share a root key, so the replica pairs of different seeds are independent by construction.

    (Schema 3 used key(s + j), so that seed s's initial weights were drawn from seed s − 1's training key: `split`
    of one key into 2 and into n keys agree on the first two.)

    Args:
      seed: a non-negative integer (`--seed`).
    Returns:
      `SeedKeys`: init, train, barrier and accuracy keys.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return SeedKeys(*(jax.random.key(len(SeedKeys._fields) * int(seed) + j) for j in range(len(SeedKeys._fields))))


def run_name(preset: str, overrides: dict) -> str:
    """A run's folder name: the preset, then -<field><value> for each override in `Preset`'s field order (e.g.
    mlp-mnist-width1024, resnet20-cifar10-width8-steps10000)."""
    ordered = sorted(overrides.items(), key=lambda item: Preset._fields.index(item[0]))
    return preset + "".join(f"-{field.replace('_', '')}{value:g}" if isinstance(value, float) else f"-{field.replace('_', '')}{value}"
                            for field, value in ordered)


class Run(NamedTuple):
    """One point of a figure: a preset and the fields it changes."""
    preset: str
    overrides: tuple = ()  # ((field, value), ...)

    @property
    def name(self) -> str:
        return run_name(self.preset, dict(self.overrides))

    @property
    def config(self) -> Preset:
        return PRESETS[self.preset]._replace(**dict(self.overrides))

    def folder(self, seed: int = 0) -> str:
        """The folder of its result for `seed`: its name, with -seed<k> for a seed k other than 0 (where the
        campaign writes and the results chapter reads)."""
        return self.name + (f"-seed{seed}" if seed else "")


class Figure(NamedTuple):
    number: int
    title: str
    claim: str  # what the paper reports, in words
    x: Optional[str]  # the swept field, or None for a bar chart of single runs
    runs: tuple  # (Run, ...)
    budget: str  # the training budget of its runs, stated


def _sweep(preset: str, field: str, values, **fixed) -> tuple:
    """Runs of `preset` with `field` at each value (and the `fixed` overrides); an override equal to the preset's
    own value is dropped, so that the preset's own point is the plain preset's run, shared between figures."""
    runs = []
    for value in values:
        overrides = {k: v for k, v in {**fixed, field: value}.items() if v != getattr(PRESETS[preset], k)}
        runs.append(Run(preset, tuple(overrides.items())))
    return tuple(runs)


_WIDE = dict(steps=10_000)  # 100 epochs of CIFAR-10: the budget of the ResNet20 width and prior sweeps
FIGURES = {
    4: Figure(4, "Zero-barrier solutions",
              "barriers between two VI solutions without alignment; after alignment none for MLPs on MNIST and "
              "CIFAR-10 and nearly none for ResNet20 on CIFAR-10, on train and test",
              None, (Run("mlp-mnist"), Run("mlp-cifar10"), Run("resnet20-cifar10")),
              "Table 1: 1,000 epochs each"),
    5: Figure(5, "Effect of width",
              "wider models have lower barriers: MLPs with and without alignment, ResNet20 only after alignment",
              "width", _sweep("mlp-mnist", "width", (128, 256, 512, 1024, 2048))
              + _sweep("resnet20-cifar10", "width", (1, 2, 4, 8, 16), **_WIDE),
              "MLPs 1,000 epochs; ResNet20 ×1 to ×16 100 epochs (×16 has 256 times the multiply-adds of ×1); the "
              "paper does not name the MLP's data set, we use MNIST"),
    7: Figure(7, "Effect of prior variance",
              "after alignment the prior variance has little effect; naive barriers fall as the variance grows",
              "prior_variance", _sweep("mlp-mnist", "prior_variance", (0.000625, 0.0025, 0.01))
              + _sweep("mlp-fashion-mnist", "prior_variance", (0.000625, 0.0025, 0.01))
              + _sweep("resnet20-cifar10", "prior_variance", (0.0025, 0.01, 0.04), width=8, **_WIDE),
              "MLPs 1,000 epochs; ResNet20 ×8 100 epochs; the grid (¼, 1 and 4 times Table 1's variance) is ours"),
    8: Figure(8, "Effect of temperature",
              "after alignment, cold posteriors (T < 1) give barriers marginally closer to zero than warm ones (T > 1)",
              "temperature", _sweep("mlp-mnist", "temperature", (0.1, 0.3, 1.0, 3.0)),
              "1,000 epochs; the paper does not name the model, we use its MLP on MNIST; the grid is ours"),
    9: Figure(9, "VI versus SGD (MAP)",
              "VI with alignment and MAP with weight matching alike for narrow ResNet20s; MAP marginally lower when wide",
              "width", _sweep("resnet20-cifar10", "width", (1, 2, 4, 8, 16), **_WIDE)
              + _sweep("resnet20-cifar10-map", "width", (1, 2, 4, 8, 16), **_WIDE),
              "100 epochs each; the VI runs are Fig. 5's"),
    11: Figure(11, "Effect of normalisation layers",
               "ResNet20s with FRN and with LayerNorm can both be aligned; LayerNorm has lower barriers",
               None, (Run("resnet20-cifar10"), Run("resnet20-layernorm-cifar10")),
               "Table 1: 1,000 epochs each; the FRN run is Fig. 4's"),
}
"""The paper's figures that `--figure N` regenerates (a run shared by two figures is trained once)."""


def load_data(name: str, arch: str):
    """Training and test arrays: images (N, H, W, C) for ResNet20, flat (N, H·W·C) for the MLP. "mnist32" is MNIST
    with two rows and columns of zeros on each side (32×32, CIFAR-10's size)."""
    if name == "digits":
        split = data.digits(images=arch == "resnet20")
    elif name == "mnist32":
        split = data.image_classification("mnist")
        shape = (-1, 32 * 32) if arch == "mlp" else (-1, 32, 32, 1)
        pad = lambda x: np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))).reshape(shape)
        split = split._replace(x_train=pad(split.x_train), x_test=pad(split.x_test))
    else:
        split = data.image_classification(name, flat=arch == "mlp")
    real = jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 unless x64 is enabled: the parameters' dtype
    return (jnp.asarray(split.x_train, real), jnp.asarray(split.y_train), jnp.asarray(split.x_test, real),
            jnp.asarray(split.y_test))


def network(preset: Preset, x_train):
    """(init(key) -> params, apply, spec_fn) of the preset's architecture for inputs like x_train."""
    if preset.arch == "mlp":
        sizes = [x_train.shape[1]] + [preset.width] * 3 + [10]
        return partial(networks.mlp_he_init, sizes=sizes), partial(networks.mlp_apply, activation="relu"), align.mlp_spec
    if preset.arch == "resnet20":
        return (lambda key: networks.resnet20_init(key, 10, x_train.shape[-1], preset.width, preset.norm)), networks.resnet20_apply, align.resnet20_spec
    raise ValueError(f"unknown arch {preset.arch!r}; expected 'mlp' or 'resnet20'")


def eval_batch(preset: Preset) -> int:
    """Posterior samples evaluated at once on the barrier's paths: 16, divided by the ResNet's width multiplier so
    that activation memory (∝ samples × width × `networks.DATA_CHUNK` points) stays that of ResNet20 ×1."""
    return max(1, 16 // preset.width) if preset.arch == "resnet20" else 16


def spread_replicas(state, num_replicas: int, devices=None):
    """(state, number of devices holding it): the replica axis (the leading axis of every leaf) placed across
    `devices` (default: all) with JAX's sharding when there are several and they divide the replicas, so that the
    vmapped training step runs one share of the replicas on each; otherwise the state goes to the first device."""
    devices = list(devices or jax.devices())
    if len(devices) < 2 or num_replicas % len(devices):
        return jax.device_put(state, devices[0]), 1
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    return jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replica"))), len(devices)


def device_groups(num_points: int, devices=None) -> list:
    """The devices of each of `num_points` sweep points run at the same time: two each (one per replica) when
    there are at least two devices per point; otherwise one each, shared round robin (points on the same device
    run one after another)."""
    devices = list(devices or jax.devices())
    size = 2 if len(devices) >= 2 * num_points else 1
    groups = [devices[i * size:(i + 1) * size] for i in range(len(devices) // size)]
    return [groups[i % len(groups)] for i in range(num_points)]


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


SETTING_FIELDS = ("prior_variance", "temperature")
"""The fields that VI runs may differ in and still train together, as extra replicas of one compiled program
(`algorithm.over_settings`; `run_group`)."""


def trainer_and_start(preset: Preset, x_train, y_train, seed: int = 0, settings: Optional[list] = None):
    """(trainer, start, apply): the preset's trainer on (x_train, y_train) (`bnn.meanfield_vi` for method "vi",
    `bnn.map_estimation` for "map"; SGD with momentum 0.9), the two replicas' starting approximations, stacked
    (from `seed`), and the network's `apply(params, x)`.

    With `settings`, a list of presets (VI) that differ from `preset` only in `SETTING_FIELDS`, the trainer is
    `algorithm.over_settings` of their prior scales and temperatures: one program whose state has a settings axis
    after the replica axis, where setting k steps with the keys its own run would use."""
    init_fn, apply, _ = network(preset, x_train)
    common = dict(batch_size=min(preset.batch_size, len(y_train)), optimizer=optax.sgd(preset.learning_rate, momentum=0.9))
    keys = jax.random.split(seed_keys(seed).init, 2)
    if preset.method not in ("vi", "map"):
        raise ValueError(f"unknown method {preset.method!r}; expected 'vi' or 'map'")
    if settings is not None:
        _check_group(settings)
        prior_stds = jnp.array([float(np.sqrt(p.prior_variance)) for p in settings])  # as `preset` alone
        make = partial(bnn.meanfield_vi, apply, x_train, y_train, **common)
        trainer = algorithm.over_settings(make, prior_std=prior_stds, temperature=jnp.array([p.temperature for p in settings]))
        start = jax.vmap(lambda k: G.meanfield(init_fn(k), preset.std_init))(keys)
    elif preset.method == "vi":
        trainer = bnn.meanfield_vi(apply, x_train, y_train, prior_std=float(np.sqrt(preset.prior_variance)),
                                   temperature=preset.temperature, **common)
        start = jax.vmap(lambda k: G.meanfield(init_fn(k), preset.std_init))(keys)
    else:
        trainer = bnn.map_estimation(apply, x_train, y_train, prior_std=float(np.sqrt(preset.prior_variance)), **common)
        start = jax.vmap(init_fn)(keys)
    return trainer, start, apply


def program_key(preset: Preset) -> Preset:
    """The preset with `SETTING_FIELDS` blanked: VI presets with the same key can train in one program."""
    return preset._replace(**dict.fromkeys(SETTING_FIELDS))


def shares_program(preset: Preset) -> bool:
    """Whether `--figure` and the campaign train the preset with the others of its `program_key`: VI MLPs do;
    MAP cannot, and ResNets stay alone (a program of K settings holds K times the activations, which a wide
    ResNet20 on one GPU may not have room for)."""
    return preset.method == "vi" and preset.arch == "mlp"


def _check_group(presets: list) -> None:
    """Presets can train together when all are VI and differ only in `SETTING_FIELDS`."""
    if not presets or any(p.method != "vi" for p in presets):
        raise ValueError("presets trained together must be a non-empty list of VI presets (method 'vi')")
    if len({program_key(p) for p in presets}) > 1:
        raise ValueError(f"presets trained together may differ only in {', '.join(SETTING_FIELDS)}; got {presets}")


def finished(out: Path, preset: Preset, seed: int) -> Optional[dict]:
    """The result in out/result.json when it is there, of this `SCHEMA`, and was run with this preset and seed,
    else None."""
    done = out / "result.json"
    if not done.exists():
        return None
    result = json.loads(done.read_text())
    same = schema_holds(result) and result["config"] == {**preset._asdict(), "seed": seed}
    return result if same else None


def train_pair(preset: Preset, x_train, y_train, out: Path, checkpoint_every: int, seed: int = 0, progress: bool = False,
               devices=None, settings: Optional[list] = None):
    """Two replicas trained together (vmap, spread over `devices` when there are several), resumable from
    `out/checkpoint.npz` (removed when training diverges); returns (q0, q1, seconds, number of devices holding the
    replicas). With `settings` (`trainer_and_start`), q0 and q1 have a settings axis in front: one pair per preset
    of `settings`, and the checkpoint is `out/checkpoint-program.npz`."""
    trainer, start, _ = trainer_and_start(preset, x_train, y_train, seed, settings)
    state = jax.vmap(trainer.init)(start)
    config = {**preset._asdict(), "seed": seed, "checkpoint_every": checkpoint_every, "schema": SCHEMA}  # its keys
    if settings is not None:
        config["settings"] = [{f: getattr(p, f) for f in SETTING_FIELDS} for p in settings]
    path = out / ("checkpoint.npz" if settings is None else "checkpoint-program.npz")  # a program's apart: no clash
    resumed = _load_checkpoint(path, state, config)
    done, losses = (0, []) if resumed is None else resumed[1:]
    if resumed is not None:
        state = resumed[0]
        print(f"resuming after step {min(done * checkpoint_every, preset.steps)} of {preset.steps}")
    state, replica_devices = spread_replicas(state, 2, devices)
    num_segments = -(-preset.steps // checkpoint_every)
    # XLA's CPU backend runs convolution gradients slowly inside lax.scan (benchmarks/train_throughput.py)
    loop = "python" if preset.arch == "resnet20" and jax.default_backend() == "cpu" else "scan"
    keys = jax.random.split(seed_keys(seed).train, num_segments)
    label = out.name if settings is None else f"{out.name} (a program of {len(settings)} settings)"
    start_time = time.perf_counter()
    for k in range(done, num_segments):
        steps = min(checkpoint_every, preset.steps - k * checkpoint_every)
        try:
            state, segment_losses = algorithm.run(keys[k], trainer, state, steps, algorithm.trace_loss,
                                                  num_replicas=2, chunk=steps, progress=progress, loop=loop,
                                                  name=f"{label}, segment {k + 1}/{num_segments}",
                                                  steps_before=k * checkpoint_every, total_steps=preset.steps)
        except algorithm.DivergenceError:
            # resuming from the checkpoint would only diverge again (a changed config refuses it anyway), and a
            # program of other settings later trained from this folder would refuse it
            path.unlink(missing_ok=True)
            raise
        losses.extend(np.asarray(segment_losses).mean(axis=1).tolist())
        _save_checkpoint(path, state, k + 1, losses, config)
    q = state.approximation
    return algorithm.replica(q, 0), algorithm.replica(q, 1), time.perf_counter() - start_time, replica_devices


def versions() -> dict:
    import optax
    import scipy

    import wvi

    return {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
            "optax": optax.__version__, "scipy": scipy.__version__, "wvi": wvi.__version__}


def run(preset: Preset, out: Path, name: str, checkpoint_every: int = 1_000, seed: int = 0, progress: bool = False,
        devices=None) -> dict:
    """Train, align, measure on `devices` (default: all); write and return the result (keys `RESULT_KEYS`)."""
    return run_group([preset], [out], [name], checkpoint_every, seed, progress, devices)[0]


def run_group(presets: list, outs: list, names: list, checkpoint_every: int = 1_000, seed: int = 0,
              progress: bool = False, devices=None) -> list:
    """`run` for several presets at once: VI presets that differ only in `SETTING_FIELDS` (prior variance, temperature)
    train as extra replicas of one compiled program (`algorithm.over_settings`; the checkpoint is
    outs[0]/checkpoint-program.npz), each pair with the keys of its own run, so that it follows that run's iteration
    up to floating-point rounding (which thousands of steps can amplify into a different solution); then each is
    aligned and measured on its own and writes outs[k]/result.json, whose `trained_with` names the other runs of the
    program (their `seconds.train` is the program's, shared; `seconds.wall` runs from the start of the group to that
    result). A single preset is `run`. Returns the results in order."""
    if not (len(presets) == len(outs) == len(names) >= 1):
        raise ValueError("run_group needs as many outs and names as presets, at least one")
    if len(presets) > 1:
        _check_group(presets)
    devices = list(devices or jax.devices())
    with jax.default_device(devices[0]):
        return _run(presets, outs, names, checkpoint_every, seed, progress, devices)


def _run(presets: list, outs: list, names: list, checkpoint_every: int, seed: int, progress: bool, devices: list) -> list:
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    preset = presets[0]
    x_train, y_train, x_test, y_test = load_data(preset.data, preset.arch)
    _, apply, spec_fn = network(preset, x_train)
    grouped = len(presets) > 1
    q0s, q1s, train_seconds, replica_devices = train_pair(preset, x_train, y_train, outs[0], checkpoint_every, seed,
                                                          progress, devices, presets if grouped else None)
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    records = []
    for k, (preset, out, name) in enumerate(zip(presets, outs, names)):
        q0, q1 = (algorithm.replica(q, k) for q in (q0s, q1s)) if grouped else (q0s, q1s)
        spec = spec_fn(q0.mean)
        align_start = time.perf_counter()
        cost = "wasserstein" if preset.method == "vi" else "mean"
        result = barrier.naive_and_aligned(seed_keys(seed).barrier, q0, q1, spec, apply, splits, cost=cost,
                                           num_taus=preset.num_taus, num_samples=preset.num_samples if preset.method == "vi" else 1,
                                           batch=eval_batch(preset))
        align_seconds = time.perf_counter() - align_start
        accuracy = {}
        for label, q in (("q0", q0), ("q1", q1)):
            accuracy[label] = {s: float(bnn.accuracy(bnn.predictive_log_probs(seed_keys(seed).accuracy, q, apply, x,
                                                                            preset.num_samples, eval_batch(preset)), y))
                               for s, (x, y) in splits.items()}
        accuracy_seconds = time.perf_counter() - align_start - align_seconds
        record = {
            "schema": SCHEMA, "preset": name, "config": {**preset._asdict(), "seed": seed},
            "versions": versions(), "device": devices[0].device_kind, "num_devices": jax.device_count(),
            "replica_devices": replica_devices, "devices": [str(d) for d in devices[:replica_devices]],
            "seconds": {"train": train_seconds, "align_and_barriers": align_seconds, "accuracy": accuracy_seconds,
                        "wall": time.perf_counter() - wall_start},
            "accuracy": accuracy,
            "alignment": {"cost": cost, "sweeps": result.alignment.sweeps, "seconds": result.alignment.seconds,
                          "objectives": [float(v) for v in result.alignment.objectives]},
            "barriers": {label: {s: float(c.barrier) for s, c in getattr(result, label).items()} for label in ("naive", "aligned")},
            "curves": {label: {s: {"taus": np.asarray(c.taus).tolist(), "losses": np.asarray(c.losses).tolist()}
                               for s, c in getattr(result, label).items()} for label in ("naive", "aligned")},
            "trained_with": [o.name for o in outs if o != out],
        }
        (out / "result.json").write_text(json.dumps(record, indent=1) + "\n")
        records.append(record)
    return records


def _programs(items: list, shared: bool) -> list:
    """(run, preset, out) items as programs: with `shared` (one device), the presets that `shares_program` with the
    same `program_key` together, in the order of their first item; else one item each."""
    if not shared:
        return [[item] for item in items]
    programs: dict = {}
    for k, item in enumerate(items):
        preset = item[1]
        programs.setdefault(program_key(preset) if shares_program(preset) else k, []).append(item)
    return list(programs.values())


def run_figure(number: int, out_root: Path, overrides: Optional[dict] = None, checkpoint_every: int = 1_000,
               seed: int = 0, progress: bool = False, devices=None) -> dict:
    """Every run of `FIGURES[number]` with `overrides` applied, from `seed`, each into out_root/<run name>/ (for a
    seed k > 0 out_root/<run name>-seed<k>/, `Run.folder`, where the results chapter reads a run's other replica
    pairs); a run whose result.json exists with the same config is not run again. With several devices the runs
    are spread over them (`device_groups`), one thread per share of devices. The VI MLP runs that share one device
    and differ only in `SETTING_FIELDS` (a prior variance or temperature sweep on one GPU) train as one program
    (`run_group`); if that program diverges, each of its runs trains again alone, so that the error names the run
    that diverges.
    Returns {run name: result}."""
    if number not in FIGURES:
        raise ValueError(f"unknown figure {number}; expected one of {', '.join(map(str, FIGURES))}")
    overrides = overrides or {}
    if FIGURES[number].x in overrides:
        raise ValueError(f"{FIGURES[number].x} is the setting Fig. {number} sweeps; it cannot be overridden")
    todo, results = [], {}
    for r in FIGURES[number].runs:
        preset = r.config._replace(**overrides)
        out = out_root / r.folder(seed)
        result = finished(out, preset, seed)
        if result is not None:
            print(f"{r.name}: result already there, skipped")
            results[r.name] = result
        else:
            todo.append((r, preset, out))
    groups = device_groups(len(todo), devices)
    queues: dict = {}
    for item, group in zip(todo, groups):
        queues.setdefault(tuple(group), []).append(item)

    def work(group, items):
        done = {}
        for program in _programs(items, shared=len(group) == 1):
            runs, presets, outs = (list(column) for column in zip(*program))
            try:
                records = run_group(presets, outs, [r.preset for r in runs], checkpoint_every, seed, progress,
                                    list(group))
            except algorithm.DivergenceError as error:
                if len(program) == 1:
                    raise
                print(f"{', '.join(r.name for r in runs)}: the program diverged ({error}); each runs again alone")
                records = [run(preset, out, r.preset, checkpoint_every, seed, progress, list(group))
                           for r, preset, out in program]
            done.update({r.name: record for r, record in zip(runs, records)})
        return done

    if len(queues) <= 1:
        for group, items in queues.items():
            results.update(work(group, items))
    else:
        with ThreadPoolExecutor(len(queues)) as pool:
            for done_runs in [pool.submit(work, g, items) for g, items in queues.items()]:
                results.update(done_runs.result())
    return results


def main(argv: Optional[list] = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--figure", type=int, choices=sorted(FIGURES), help="run every point of this paper figure")
    parser.add_argument("--out", type=Path, help="folder for result.json and checkpoint.npz (with --figure: for the runs' folders)")
    parser.add_argument("--list", action="store_true", help="print the presets and figures (with --campaign: the "
                        "campaign's plan and predicted times) and exit")
    parser.add_argument("--campaign", help="run (or, with --list, plan) a campaign of wvi.experiments.campaign: "
                        "'gpu', 'gpu-2' or 'smoke'")
    parser.add_argument("--max-seconds", type=float, help="with --campaign: start no program whose predicted time "
                        "would take the campaign past this many seconds")
    for field in ("data", "width", "prior_variance", "temperature", "method", "norm", "steps", "batch_size",
                  "learning_rate", "num_samples", "num_taus"):
        kind = typing.get_type_hints(Preset)[field]  # str, int or float
        parser.add_argument("--" + field.replace("_", "-"), type=kind, help=f"override the preset's {field}")
    parser.add_argument("--checkpoint-every", type=int, default=1_000, help="steps between checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show a progress bar while training")
    args = parser.parse_args(argv)
    if args.campaign is not None:
        from wvi.experiments import campaign

        if args.campaign not in campaign.CAMPAIGNS:
            parser.error(f"unknown campaign {args.campaign!r}; expected one of {', '.join(campaign.CAMPAIGNS)}")
        given = [f for f in Preset._fields if getattr(args, f, None) is not None]
        if given:
            parser.error(f"a campaign sets every point's config itself; --{given[0].replace('_', '-')} cannot be given")
        if args.list:
            campaign.list_plan(args.campaign)
            return None
        if args.out is None or args.preset is not None or args.figure is not None:
            parser.error("--campaign runs with --out alone (or plans with --list)")
        record = campaign.run_campaign(args.campaign, args.out, max_seconds=args.max_seconds, progress=args.progress)
        print(json.dumps({k: (v["status"], v.get("seconds")) for k, v in record["points"].items()}, indent=1))
        return record
    if args.list:
        for name, preset in PRESETS.items():
            print(f"{name:28s} {preset}")
        for number, figure in FIGURES.items():
            print(f"Fig. {number:<3d} {figure.title}: {', '.join(r.name for r in figure.runs)}")
        return None
    if (args.preset is None) == (args.figure is None) or args.out is None:
        parser.error("give --out and one of --preset or --figure (or --list)")
    if args.checkpoint_every < 1:
        parser.error("--checkpoint-every must be a positive number of steps")
    overrides = {f: getattr(args, f) for f in Preset._fields if getattr(args, f, None) is not None}
    if args.figure is not None:
        results = run_figure(args.figure, args.out, overrides, args.checkpoint_every, args.seed, args.progress)
        print(json.dumps({name: r["barriers"] for name, r in results.items()}, indent=1))
        return results
    record = run(PRESETS[args.preset]._replace(**overrides), args.out, args.preset, args.checkpoint_every, args.seed,
                 args.progress)
    print(json.dumps({k: record[k] for k in ("preset", "device", "barriers", "seconds")}, indent=1))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
