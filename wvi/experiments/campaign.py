"""Campaigns: one prepared command that runs many points of Rossi et al.'s experiments in turn on one machine, with
each point's time predicted before any of it runs (Part V at paper scale; chapter `book/part5/full_scale`). ::

    # the plan, with predicted times
    python -m wvi.experiments.permutation --campaign gpu --list
    # run it (a second call resumes)
    python -m wvi.experiments.permutation --campaign gpu --out results/permutation
    # the CPU smoke run of the tests
    python -m wvi.experiments.permutation --campaign smoke --out /tmp/smoke

A GPU session of this project has one H200 for 15 minutes in all, start-up included, without a network; so each
GPU campaign is sized to at most 5 minutes of predicted wall time (`BUDGET_SECONDS`), leaving room for a second
try. "gpu" holds MNIST points of the paper's Figs. 4, 5, 7 and 8 with the MLP 3×512 of Table 1, every one at a tenth
of Table 1's steps (100 epochs) with 32 posterior samples per loss (Table 1: 128), so that a sweep compares settings
at one budget, and every point on three seeds (three replica pairs, the book's rule for a barrier claim): the main
point, prior variances ¼ and 4 times Table 1's, temperatures 0.1 and 3, and width 1024. The points of one seed that
differ only in prior variance or temperature train together, as extra replicas of one compiled program (`groups`;
`permutation.run_group`, `wvi.algorithm.over_settings`: each pair stepped with the keys of its own run); widths
change the shapes, so they run in turn. At the assumed device figures nothing fits at Table 1's full budget (one MLP
run: about two minutes of training alone). "gpu-2" holds, at the same budget and on three seeds each, MAP weight
matching on the same MLP (Fig. 9's VI-against-MAP comparison, which the paper makes on ResNet20) and VI at width
128 (Fig. 5's narrow end, which did not fit in "gpu"), and, on one seed each, ResNet20 with FRN and with
LayerNorm on MNIST padded to 32×32 (`--data mnist32`), a stand-in for Fig. 11's CIFAR-10, which cannot be had
here, at 1/120 of the steps with 4 samples and 13 path positions. Both are sized for an H200; an H100 has the same
tensor-core throughput and slower memory. MNIST comes from the working tree (`data/mnist`, hashes pinned;
`wvi.data.image_classification`).

Sizing (`cost`, `predict`): a training step's floating-point operations and its number of kernels are counted
from the compiled step of the program's vmapped replicas, two per point it trains (XLA's cost analysis and the
instructions of the compiled program on the host, a proxy for the GPU's kernels); evaluation operations are a
forward pass per example (counted the same way) times the points, samples and path positions the barriers and
accuracies use. The predicted time of a point is::

    (compile + steps · max(step FLOPs / device FLOP/s, kernels · seconds per kernel))
        / points in the program
    + evaluation FLOPs / device FLOP/s

with the device's figures in `DEVICES` (assumptions, stated there, until a GPU run measures them: the campaign
records every point's measured wall time beside its prediction in `campaign-<name>.json`). `--list` also measures
the step's time on this machine's CPU. Each point writes its own `result.json` (`permutation.run_group`) as soon
as its program ends, and a program whose points' results are all there with the same config is skipped, so a
second call resumes; a program whose prediction (scaled by the measured / predicted time of the programs run so
far, when that is above 1) would take the campaign past `--max-seconds` is not started; when
a program diverges, only the diverging point is lost (its other points run again alone: `run_campaign`).
"""
from __future__ import annotations

import json
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from wvi import algorithm
from wvi.experiments import permutation
from wvi.experiments.permutation import PRESETS, Preset, Run

BUDGET_SECONDS = 300.0  # the "gpu" campaign's predicted wall time at most: 5 of the session's 15 minutes


class Device(NamedTuple):
    name: str
    flops: float  # sustained float32 FLOP/s on these programs
    kernel_seconds: float  # launch and synchronisation time per kernel of a step inside the compiled training loop
    compile_seconds: dict  # per program, by architecture: compiling the training segment and the evaluation
    source: str  # where the figures come from


DEVICES = {
    "h200": Device("NVIDIA H200", 5e13, 6e-6, {"mlp": 15.0, "resnet20": 45.0},
                   "assumed, not yet measured: 10% of the H200's dense TF32 tensor-core peak (about 495 TFLOP/s; JAX's "
                   "default float32 matmul precision on GPU uses TF32), a few microseconds per kernel launched from a "
                   "compiled loop, and compile times of the order seen for such programs; a GPU run's measured wall "
                   "times (campaign-gpu.json) replace them"),
    "cpu": Device("this machine's CPU", 5e10, 2e-6, {"mlp": 5.0, "resnet20": 30.0},
                  "rough figures for a 2-core x86 machine, for the smoke campaign only"),
}


class Point(NamedTuple):
    """One run of a campaign: a figure's run (`permutation.Run`), the budget it runs at (overrides of `steps`,
    `num_samples`, `num_taus`, ...; empty: Table 1's), a seed, and what it is for."""

    run: Run
    budget: tuple = ()  # ((field, value), ...)
    seed: int = 0
    figures: str = ""

    @property
    def folder(self) -> str:
        """Its folder under the campaign's output, named as the figure's run (so that the results chapter finds
        it and reads its budget from its recorded config), with -seed<k> for seeds other than 0."""
        return self.run.folder(self.seed)

    @property
    def config(self) -> Preset:
        return self.run.config._replace(**dict(self.budget))


def _budget(fraction: float, num_samples: int, preset: str = "mlp-mnist", **other) -> tuple:
    """Overrides for a fraction of Table 1's training steps and `num_samples` posterior samples per loss."""
    return (("steps", int(round(PRESETS[preset].steps * fraction))), ("num_samples", num_samples),
            *other.items())


_TENTH = _budget(1 / 10, 32)  # 12,000 steps (100 of Table 1's 1,000 epochs), 32 samples per loss (Table 1: 128)
_TINY_MLP = (("data", "digits"), ("width", 16), ("steps", 20), ("batch_size", 64), ("num_samples", 4),
             ("num_taus", 5))
_SEEDS = (0, 1, 2)  # three replica pairs per point: the book's rule for a barrier claim
CAMPAIGNS = {
    "gpu": (
        *(Point(Run("mlp-mnist"), _TENTH, s, "Figs. 4, 5, 7, 8: the main point, pair " + str(s + 1)) for s in _SEEDS),
        *(Point(Run("mlp-mnist", (("prior_variance", v),)), _TENTH, s, "Fig. 7") for v in (0.000625, 0.01)
          for s in _SEEDS),
        *(Point(Run("mlp-mnist", (("temperature", t),)), _TENTH, s, "Fig. 8") for t in (0.1, 3.0) for s in _SEEDS),
        *(Point(Run("mlp-mnist", (("width", 1024),)), _TENTH, s, "Fig. 5") for s in _SEEDS),
    ),
    "gpu-2": (
        *(Point(Run("mlp-mnist-map"), _TENTH, s, "VI against MAP on the MLP (Fig. 9 uses ResNet20)")
          for s in _SEEDS),
        *(Point(Run("mlp-mnist", (("width", 128),)), _TENTH, s, "Fig. 5") for s in _SEEDS),
        *(Point(Run(preset), _budget(1 / 120, 4, preset, num_taus=13), 0,
                "Fig. 11 stand-in (MNIST 32×32 for CIFAR-10)")
          for preset in ("resnet20-mnist32", "resnet20-layernorm-mnist32")),
    ),
    "smoke": (
        Point(Run("mlp-mnist"), _TINY_MLP, 0, "CPU smoke run, MLP"),
        Point(Run("mlp-mnist", (("temperature", 0.5),)), _TINY_MLP, 0, "CPU smoke run, MLP, trained with the first"),
        Point(Run("mlp-mnist"), _TINY_MLP, 1, "CPU smoke run, MLP, second seed"),
    ),
}
"""The campaigns by name. "gpu" and "gpu-2" are each sized to `BUDGET_SECONDS` on an H200 (run "gpu" first; "gpu-2"
in a later session, or at once if "gpu" measured well under its prediction); `DEFAULT_DEVICE[name]` is the device
each is sized for."""
DEFAULT_DEVICE = {"gpu": "h200", "gpu-2": "h200", "smoke": "cpu"}

DATA_SIZES = {"mnist": (60_000, 10_000), "mnist32": (60_000, 10_000), "fashion_mnist": (60_000, 10_000),
              "cifar10": (50_000, 10_000), "digits": (1_347, 450)}
_INPUT_SHAPES = {("mnist", "mlp"): (784,), ("fashion_mnist", "mlp"): (784,), ("cifar10", "mlp"): (3072,),
                 ("mnist32", "resnet20"): (32, 32, 1), ("cifar10", "resnet20"): (32, 32, 3),
                 ("digits", "mlp"): (64,), ("digits", "resnet20"): (8, 8, 1)}


def groups(points) -> list:
    """The points as training programs, in the order of their first point: points that `permutation.shares_program`
    (VI MLPs) with the same seed whose configs differ only in `permutation.SETTING_FIELDS` (prior variance,
    temperature) train together as extra replicas of one program (`permutation.run_group`); every other point
    trains alone."""
    programs: dict = {}
    for point in points:
        c = point.config
        key = (permutation.program_key(c), point.seed) if permutation.shares_program(c) else (point,)
        programs.setdefault(key, []).append(point)
    return [tuple(group) for group in programs.values()]


class Cost(NamedTuple):
    """What one point computes: `step_flops` and `step_kernels` of one training step of the program it trains in
    (two replicas of each of its `num_settings` points), `steps`, `eval_flops` of its barriers and accuracies, and
    `cpu_step_seconds` of that step measured here (None when not measured)."""

    step_flops: float
    step_kernels: int
    steps: int
    eval_flops: float
    cpu_step_seconds: Optional[float]
    num_settings: int = 1


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", 0.0))


def _kernels(compiled) -> int:
    """Instructions of the compiled program's entry computation that do work (a proxy for kernels launched)."""
    text = compiled.as_text()
    entry = text[text.index("ENTRY"):]
    body = entry[entry.index("{") + 1:entry.index("\n}")]
    idle = ("parameter(", "constant(", "tuple(", "get-tuple-element(", "bitcast(", "copy-start(", "copy-done(")
    return sum(1 for line in body.splitlines() if "=" in line and not any(op in line for op in idle))


MEASURE_BATCH = 100  # the largest batch timed on the CPU (a ResNet20 step of 2 × 500 images needs gigabytes)


@lru_cache(maxsize=None)
def _step_cost(data_name: str, arch: str, width: int, norm: str, method: str, batch_size: int, measure: bool,
               num_settings: int = 1):
    shape = _INPUT_SHAPES[(data_name, arch)]
    x = jnp.zeros((batch_size,) + shape, jax.dtypes.canonicalize_dtype(jnp.float64))  # the parameters' dtype
    y = jnp.zeros((batch_size,), jnp.int32)
    preset = Preset(data_name, arch, width, 0.01, method=method, norm=norm, batch_size=batch_size)
    settings = [preset._replace(temperature=1.0 + k) for k in range(num_settings)] if num_settings > 1 else None
    trainer, start, apply = permutation.trainer_and_start(preset, x, y, settings=settings)
    keys = jax.random.split(jax.random.key(0), 2)
    state = jax.vmap(trainer.init)(start)
    step = jax.jit(jax.vmap(trainer.step))
    compiled = step.lower(keys, state).compile()
    forward = jax.jit(apply).lower(jax.tree_util.tree_map(lambda a: a[0], start.mean if method == "vi" else start),
                                   x[:1]).compile()
    seconds = None
    if measure:  # at a batch of at most MEASURE_BATCH, scaled to the full batch (the work grows linearly with it)
        small = min(batch_size, MEASURE_BATCH)
        if small < batch_size:
            return (_flops(compiled), _kernels(compiled), _flops(forward),
                    _step_cost(data_name, arch, width, norm, method, small, True, num_settings)[3] * batch_size / small)
        out = step(keys, state)
        jax.block_until_ready(out)
        begin = time.perf_counter()
        for _ in range(2):
            out = step(keys, out[0])
        jax.block_until_ready(out)
        seconds = (time.perf_counter() - begin) / 2
    return _flops(compiled), _kernels(compiled), _flops(forward), seconds


def cost(point: Point, measure: bool = False, num_settings: int = 1) -> Cost:
    """The point's `Cost`, counted from its compiled training step and forward pass (inputs of its data's shape,
    zeros), for a program that trains `num_settings` points together (`groups`); with `measure`, the step is also
    timed on this machine (the mean of two steps after a warm-up, at a batch of at most `MEASURE_BATCH` and scaled
    to the point's batch)."""
    c = point.config
    step_flops, kernels, forward_flops, seconds = _step_cost(c.data, c.arch, c.width, c.norm, c.method,
                                                             c.batch_size, measure, num_settings)
    n_train, n_test = DATA_SIZES[c.data]
    samples = c.num_samples if c.method == "vi" else 1
    # barriers: naive and aligned paths, num_taus positions, `samples` networks each; accuracies: q0 and q1
    passes = 2 * c.num_taus * samples + 2 * samples
    return Cost(step_flops, kernels, c.steps, forward_flops * (n_train + n_test) * passes, seconds, num_settings)


def predict(point: Point, point_cost: Cost, device: Device) -> float:
    """Predicted wall seconds of the point on `device` (the module docstring's formula); the compile and training
    time of a program shared by several points (`Cost.num_settings`) is split evenly between them."""
    per_step = max(point_cost.step_flops / device.flops, point_cost.step_kernels * device.kernel_seconds)
    return ((device.compile_seconds[point.config.arch] + point_cost.steps * per_step) / point_cost.num_settings
            + point_cost.eval_flops / device.flops)


def plan(name: str, device: Optional[str] = None, measure: bool = False) -> list:
    """[(point, cost, predicted seconds)] of campaign `name` on `device` (default: the one it is sized for), in
    the order the programs run (`groups`: the points of one program next to each other)."""
    if name not in CAMPAIGNS:
        raise ValueError(f"unknown campaign {name!r}; expected one of {', '.join(map(repr, CAMPAIGNS))}")
    dev = DEVICES[device or DEFAULT_DEVICE[name]]
    rows = []
    for group in groups(CAMPAIGNS[name]):
        for point in group:
            c = cost(point, measure, len(group))
            rows.append((point, c, predict(point, c, dev)))
    return rows


def list_plan(name: str, device: Optional[str] = None, measure: bool = True) -> float:
    """Print the plan of campaign `name`, one point a line (with the number of the program it trains in), and
    return its predicted total seconds."""
    dev = DEVICES[device or DEFAULT_DEVICE[name]]
    rows = plan(name, device, measure)
    program = {point: k for k, group in enumerate(groups(CAMPAIGNS[name]), start=1) for point in group}
    print(f"campaign {name!r} on {dev.name} ({dev.source})")
    width = max(len(point.folder) for point, *_ in rows) + 1
    print(f"{'point':<{width}}{'program':>8}{'steps':>8}{'GFLOP/step':>11}{'kernels':>8}{'eval TFLOP':>11}"
          f"{'CPU s/step':>11}{'predicted s':>12}")
    for point, c, seconds in rows:
        cpu = "-" if c.cpu_step_seconds is None else f"{c.cpu_step_seconds:.3g}"
        print(f"{point.folder:<{width}}{program[point]:>8d}{c.steps:>8d}{c.step_flops / 1e9:>11.3g}{c.step_kernels:>8d}"
              f"{c.eval_flops / 1e12:>11.3g}{cpu:>11}{seconds:>12.1f}")
    total = sum(seconds for *_, seconds in rows)
    print(f"predicted total: {total:.0f} s" + (f" (budget {BUDGET_SECONDS:.0f} s)" if name != "smoke" else "") +
          f"; a program's step (GFLOP, kernels, CPU s) trains all its points; its compile and training time is "
          f"split evenly between them; CPU s/step timed at batch ≤ {MEASURE_BATCH}, scaled to the point's batch")
    return total


def measured_seconds(result: dict) -> float:
    """A result's measured seconds, comparable with its prediction: its wall time when it trained alone; else its
    program's training time split evenly over the program's points, plus its own alignment, barriers and
    accuracies."""
    seconds, shared = result["seconds"], len(result["trained_with"]) + 1
    if shared == 1:
        return seconds["wall"]
    return seconds["train"] / shared + seconds["align_and_barriers"] + seconds["accuracy"]


def _diverged_before(entry: Optional[dict], point: Point) -> bool:
    """Whether a campaign log's entry records that this point, with this config and seed, diverged when it trained
    alone (deterministic: the same keys diverge again, so it is not run again)."""
    return (entry is not None and entry.get("status") == "diverged" and entry.get("seed") == point.seed
            and entry.get("config") == json.loads(json.dumps(point.config._asdict())))


def _read_log(path: Path) -> dict:
    """The points of an earlier call's campaign log ({} when there is none, or, with a warning, when it cannot be
    read)."""
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["points"])
    except (ValueError, KeyError, TypeError) as error:
        warnings.warn(f"{path} cannot be read ({error}); its points' earlier statuses are ignored")
        return {}


def _write_log(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)  # atomic: a call killed while writing keeps the previous log


def _train_or_divergence(points: list, out_root: Path, checkpoint_every: int, progress: bool):
    """`permutation.run_group` of the points as one program: (results, None), or (None, the DivergenceError)."""
    steps = points[0].config.steps
    try:
        return permutation.run_group([p.config for p in points], [out_root / p.folder for p in points],
                                     [p.run.preset for p in points], min(checkpoint_every, steps), points[0].seed,
                                     progress), None
    except algorithm.DivergenceError as error:  # (its checkpoint is gone: `permutation.train_pair`)
        return None, error


def run_campaign(name: str, out_root: Path, device: Optional[str] = None, max_seconds: Optional[float] = None,
                 checkpoint_every: int = 5_000, progress: bool = False) -> dict:
    """Run campaign `name`'s programs (`groups`) in turn, each point into out_root/<point folder>/
    (`permutation.run_group`), skipping a program whose points' results are all there with the same config (one
    with some missing runs again whole, less its points recorded as diverged), and not starting a program whose
    predicted time would take the campaign's wall time past `max_seconds`.

    The predictions are assumptions until a program has run: once some have, a prediction is multiplied by
    max(1, measured / predicted seconds of the programs run so far in this call) before it is compared with what
    is left of `max_seconds`, so that a device slower than assumed stops the campaign between programs rather than
    in the middle of one (the factor is logged as `prediction_scale`; it never shrinks a prediction, because a
    later program may compile more than the first).

    A program that diverges (`wvi.algorithm.DivergenceError`) does not stop the campaign: when it trains several
    points, each of them without a result is run again alone (if its prediction alone fits `max_seconds`), so that
    only the setting that diverges is lost (at the price of the solo runs); a point that diverges alone is recorded
    as "diverged", with the step and the quantity, and a later call does not run it again (the same keys diverge
    again; to retry after a fix, delete its entry from the log, or the log).

    out_root/campaign-<name>.json records every point's status, predicted and measured seconds (a shared program's
    training time split evenly, as predicted; a point run again alone has its solo prediction, and
    `diverged_program_seconds`, the time its diverged program took) and device. It is rewritten after every
    program and every solo run, keeping the entries of an earlier call for the points not handled yet. Returns
    that record."""
    dev = DEVICES[device or DEFAULT_DEVICE[name]]
    out_root.mkdir(parents=True, exist_ok=True)
    log_path = out_root / f"campaign-{name}.json"
    folders = {point.folder for point in CAMPAIGNS[name]}
    earlier_log = {folder: entry for folder, entry in _read_log(log_path).items() if folder in folders}
    start = time.perf_counter()
    record = {"campaign": name, "predicted_for": dev.name, "device": jax.devices()[0].device_kind,
              "versions": permutation.versions(), "points": dict(earlier_log)}
    predicted = {point: seconds for point, _, seconds in plan(name, device)}

    timed = {"measured": 0.0, "predicted": 0.0}  # the programs run so far in this call, without divergence

    def scale() -> float:
        return max(1.0, timed["measured"] / timed["predicted"]) if timed["predicted"] > 0 else 1.0

    def fits(seconds: float) -> bool:
        return max_seconds is None or time.perf_counter() - start + seconds * scale() <= max_seconds

    def past(seconds: float) -> str:
        scaled = f", ×{scale():.2f} as measured so far: {seconds * scale():.0f} s" if scale() > 1 else ""
        return f"predicted {seconds:.0f} s{scaled} would pass {max_seconds:.0f} s"

    def ran(entry: dict, result: dict):
        entry.update(status="ran", seconds=measured_seconds(result), device=result["device"],
                     trained_with=result["trained_with"], barriers=result["barriers"])

    def diverged(entry: dict, error: algorithm.DivergenceError):
        entry.update(status="diverged", error=str(error), step=error.step, field=error.field)

    def there(entry: dict, result: dict):
        entry.update(status="already there", seconds=measured_seconds(result), trained_with=result["trained_with"])

    order = [point.folder for point in CAMPAIGNS[name]]

    def log(entries: dict):
        for point, entry in entries.items():
            record["points"][point.folder] = entry
        record["points"] = {folder: record["points"][folder] for folder in order if folder in record["points"]}
        record["wall_seconds"] = time.perf_counter() - start
        record["prediction_scale"] = scale()
        _write_log(log_path, record)

    for group in groups(CAMPAIGNS[name]):
        entries = {point: {"figures": point.figures, "predicted_seconds": predicted[point],
                           "config": point.config._asdict(), "seed": point.seed} for point in group}
        earlier = [permutation.finished(out_root / point.folder, point.config, point.seed) for point in group]
        # a result there wins over an earlier "diverged" entry (made by hand after a fix, say)
        gone = [e is None and _diverged_before(earlier_log.get(point.folder), point) for point, e in zip(group, earlier)]
        for point, was_gone in zip(group, gone):
            if was_gone:
                entries[point] = earlier_log[point.folder]
                print(f"{point.folder}: diverged in an earlier call, not run again")
        todo = [point for point, g in zip(group, gone) if not g]
        group_seconds = sum(predicted[point] for point in todo)
        names = ", ".join(point.folder for point in todo)
        if all(e is not None for e, g in zip(earlier, gone) if not g):
            for point, e, g in zip(group, earlier, gone):
                if not g:
                    there(entries[point], e)
            if todo:
                print(f"{names}: results already there, skipped")
        elif not fits(group_seconds):
            for point in todo:
                entries[point].update(status="not started: predicted past --max-seconds")
            print(f"{names}: not started ({past(group_seconds)})")
        else:
            print(f"{names}: running (predicted {group_seconds:.0f} s on {dev.name})", flush=True)
            program_start = time.perf_counter()
            results, error = _train_or_divergence(todo, out_root, checkpoint_every, progress)
            if error is None:
                for point, result in zip(todo, results):
                    ran(entries[point], result)
                timed["measured"] += time.perf_counter() - program_start
                timed["predicted"] += group_seconds
            elif len(todo) == 1:
                diverged(entries[todo[0]], error)
                print(f"{names}: diverged ({error}); recorded, not run again by a later call")
            else:
                program_seconds = time.perf_counter() - program_start
                print(f"{names}: the program diverged ({error}); each point without a result runs again alone",
                      flush=True)
                for point in todo:
                    e = earlier[group.index(point)]
                    if e is not None:  # a result of an earlier call, of this config: kept
                        there(entries[point], e)
                        continue
                    alone = predict(point, cost(point), dev)
                    entries[point].update(predicted_seconds=alone, diverged_program_seconds=program_seconds)
                    if not fits(alone):
                        entries[point].update(status="not started: predicted past --max-seconds")
                        print(f"{point.folder}: not started alone ({past(alone)})")
                        continue
                    print(f"{point.folder}: running alone (predicted {alone:.0f} s)", flush=True)
                    solo_start = time.perf_counter()
                    results, error = _train_or_divergence([point], out_root, checkpoint_every, progress)
                    if error is None:
                        ran(entries[point], results[0])
                        timed["measured"] += time.perf_counter() - solo_start
                        timed["predicted"] += alone
                    else:
                        diverged(entries[point], error)
                        print(f"{point.folder}: diverged alone ({error}); recorded, not run again by a later call")
                    log({point: entries[point]})
        log(entries)
    return record
