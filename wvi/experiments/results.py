"""Reading the committed results of `wvi.experiments.permutation` (the results chapter, book/part5/full_scale).

Each run of a figure lives in `<root>/<run name>/result.json`. `run_status` says whether it is there and at which
scale: "full" when its config is the figure's (Table 1's budget), "reduced" when some fields differ (a smaller
budget, e.g. on CPU; the differences are listed), "missing" when there is no file. `figure_check` evaluates the
paper's claim for a figure on whatever runs are there; `figure_verdict` turns it into the ledger's verdict:
"reproduced" or "not reproduced" only when every run of the figure is there at full scale, "not yet run"
otherwise. Seed k > 0 of a run lives in `<run name>-seed<k>/` (`seed_statuses`, `committed_runs`).

Fig. A14's alignment times come from another file, `results/align-timing/fig-a14.json`, written by
`benchmarks/align_widths.py`: `load_alignment_times` reads it, `alignment_table` tabulates it and
`alignment_time_check` decides the figure's claim.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from wvi.barrier import BarrierCurve, barrier_from_losses
from wvi.experiments.permutation import FIGURES, RESULT_KEYS, SCHEMA, Run
from wvi.report import book_root


class RunStatus(NamedTuple):
    run: Run
    scale: str  # "full", "reduced" or "missing"
    record: Optional[dict]  # the result, when there is one
    differences: dict  # field -> (value run, value of the figure's config), for a reduced run


BUDGET_FIELDS = ("steps", "num_samples", "num_taus")
"""The fields a reduced run may change; any other difference means the file belongs to another experiment."""


def load_result(path: Path) -> dict:
    """A result.json, checked against the schema the command writes (`RESULT_KEYS`, `SCHEMA`)."""
    record = json.loads(Path(path).read_text())
    if record.get("schema") != SCHEMA or set(record) != set(RESULT_KEYS):
        raise ValueError(f"{path}: not a result of schema {SCHEMA} with keys {RESULT_KEYS}; rerun its command")
    return record


def run_status(root, run: Run, seed: int = 0) -> RunStatus:
    """Whether `run`'s result for `seed` is under `root` (in `<run name>`, or `<run name>-seed<k>` for a seed k > 0,
    the folders `--seed k` and the campaign write), at full scale or at a reduced budget (`BUDGET_FIELDS` differ); a
    file whose config differs in any other field (another seed, data set, width...) raises `ValueError`."""
    path = Path(root) / run.folder(seed) / "result.json"
    if not path.exists():
        return RunStatus(run, "missing", None, {})
    record = load_result(path)
    full = {**run.config._asdict(), "seed": seed}
    differences = {k: (record["config"].get(k), v) for k, v in full.items() if record["config"].get(k) != v}
    foreign = sorted(set(differences) - set(BUDGET_FIELDS))
    if foreign:
        raise ValueError(f"{path}: config differs from run {run.name} in {', '.join(foreign)}, not only in its budget "
                         f"({', '.join(BUDGET_FIELDS)}); it belongs to another experiment")
    return RunStatus(run, "reduced" if differences else "full", record, differences)


def seed_statuses(root, run: Run) -> list:
    """`run_status` of `run` for seed 0 and for every seed k whose folder `<run name>-seed<k>` is under `root`, in
    seed order: the independent replica pairs committed for one run."""
    pattern = re.compile(re.escape(run.name) + r"-seed([1-9][0-9]*)")
    seeds = sorted(int(m.group(1)) for d in Path(root).glob(f"{run.name}-seed*") if (m := pattern.fullmatch(d.name)))
    return [run_status(root, run, seed) for seed in [0] + seeds]


def committed_runs(root) -> dict:
    """{folder name: RunStatus} of every run of every figure committed under `root`, each seed of a run under its
    own folder name (`<run name>`, `<run name>-seed<k>`), sorted by name."""
    runs = {r.name: r for figure in FIGURES.values() for r in figure.runs}
    found = {}
    for run in runs.values():
        for status in seed_statuses(root, run):
            if status.record is not None:
                found[run.folder(status.record["config"]["seed"])] = status
    return dict(sorted(found.items()))


def figure_status(root, number: int) -> list:
    """`run_status` of every run of Fig. `number`, in the figure's order."""
    return [run_status(root, r) for r in FIGURES[number].runs]


def describe(status: RunStatus) -> str:
    """One line: where and how a run ran, or that it has not."""
    if status.scale == "missing":
        return "not yet run"
    r = status.record
    where = f"{r['device']} × {r['replica_devices']}, {r['seconds']['wall'] / 60:.1f} min"
    if status.scale == "full":
        return f"full scale ({where})"
    diffs = ", ".join(f"{k} {ran} (full: {full})" for k, (ran, full) in status.differences.items())
    return f"reduced: {diffs} ({where})"


def command(number: int, root: str = "results/permutation") -> str:
    """The command that (re)generates Fig. `number`'s runs."""
    return f"python -m wvi.experiments.permutation --figure {number} --out {root}"


def default_root(start=None) -> Optional[Path]:
    """results/permutation of the checkout of the book holding `start` (`wvi.report.book_root`); None outside one."""
    root = book_root(start)
    return None if root is None else root / "results" / "permutation"


def barrier(status: RunStatus, label: str, split: str = "test") -> float:
    return status.record["barriers"][label][split]


def curve(status: RunStatus, label: str, split: str = "test") -> BarrierCurve:
    """The loss curve along the path ("naive" or "aligned") of a run, as a `wvi.barrier.BarrierCurve`."""
    c = status.record["curves"][label][split]
    taus, losses = np.asarray(c["taus"]), np.asarray(c["losses"])
    return BarrierCurve(taus, losses, *barrier_from_losses(taus, losses))


def _by_preset(statuses: list) -> dict:
    groups: dict = {}
    for s in statuses:
        if s.record is not None:
            groups.setdefault(s.run.preset, []).append(s)
    return groups


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _budget(status: RunStatus) -> tuple:
    return tuple(sorted((k, ran) for k, (ran, _) in status.differences.items()))


def figure_check(number: int, statuses: list) -> tuple[str, Optional[bool]]:
    """(what was measured, whether the paper's claim for Fig. `number` holds on the runs there), using the test
    barriers; (message, None) when the runs needed for the comparison are not there, or when the runs there were
    trained on different budgets (a comparison across budgets says nothing). The claims, one per figure::

      4: every run's aligned barrier is below a quarter of its naive one (train and test);
      5: for each model, the aligned barrier of the widest run is at most that of the narrowest; for the MLP the
         naive barrier too;
      7: for each model, the naive barrier falls from the smallest to the largest prior variance, and the aligned
         barriers vary less over the variances than the naive ones;
      8: the aligned barrier of the coldest run (T < 1) is at most that of the warmest (T > 1);
      9: at the widest width both methods ran, MAP's aligned barrier is at most VI's;
      11: the LayerNorm run's aligned barrier is below the FRN run's.
    """
    there = [s for s in statuses if s.record is not None]
    if not there:
        return "no results", None
    budgets = {_budget(s) for s in there}
    if len(budgets) > 1:
        return f"runs of {len(budgets)} different budgets; not compared", None
    x = FIGURES[number].x
    if number == 4:
        parts = [f"{s.run.name} {_fmt(barrier(s, 'aligned'))} vs {_fmt(barrier(s, 'naive'))}" for s in there]
        holds = all(barrier(s, "aligned", split) < barrier(s, "naive", split) / 4 for s in there for split in ("train", "test"))
        return "aligned vs naive test barrier: " + "; ".join(parts), holds
    if number in (5, 7, 8):
        parts, holds = [], []
        for preset, group in _by_preset(there).items():
            group = sorted(group, key=lambda s: s.record["config"][x])
            if len(group) < 2:
                continue
            lo, hi = group[0], group[-1]
            xs = f"{x} {lo.record['config'][x]:g} → {hi.record['config'][x]:g}"
            aligned = [barrier(s, "aligned") for s in group]
            naive = [barrier(s, "naive") for s in group]
            if number == 5:
                parts.append(f"{preset}: aligned {_fmt(aligned[0])} → {_fmt(aligned[-1])}, naive {_fmt(naive[0])} → "
                             f"{_fmt(naive[-1])} ({xs})")
                holds.append(aligned[-1] <= aligned[0] and (naive[-1] <= naive[0] or not preset.startswith("mlp")))
            elif number == 7:
                parts.append(f"{preset}: naive {_fmt(naive[0])} → {_fmt(naive[-1])}, aligned range "
                             f"{_fmt(max(aligned) - min(aligned))} vs naive range {_fmt(max(naive) - min(naive))} ({xs})")
                holds.append(naive[-1] < naive[0] and max(aligned) - min(aligned) < max(naive) - min(naive))
            else:
                t_lo, t_hi = lo.record["config"][x], hi.record["config"][x]
                if not t_lo < 1 < t_hi:
                    continue
                parts.append(f"{preset}: aligned {_fmt(aligned[0])} at T = {t_lo:g} vs {_fmt(aligned[-1])} at T = {t_hi:g}")
                holds.append(aligned[0] <= aligned[-1])
        if not parts:
            return ("needs a cold (T < 1) and a warm (T > 1) run of one model" if number == 8
                    else "fewer than two runs of any model"), None
        return "; ".join(parts), all(holds)
    if number == 9:
        widths = {}
        for s in there:
            widths.setdefault(s.record["config"]["width"], {})[s.record["config"]["method"]] = s
        both = sorted(w for w, m in widths.items() if {"vi", "map"} <= set(m))
        if not both:
            return "no width with both VI and MAP runs", None
        w = both[-1]
        vi, map_ = barrier(widths[w]["vi"], "aligned"), barrier(widths[w]["map"], "aligned")
        return f"width ×{w}: aligned MAP {_fmt(map_)} vs VI {_fmt(vi)}", map_ <= vi
    if number == 11:
        norms = {s.record["config"]["norm"]: s for s in there}
        if set(norms) != {"frn", "layernorm"}:
            return "needs both the FRN and the LayerNorm run", None
        ln, frn = barrier(norms["layernorm"], "aligned"), barrier(norms["frn"], "aligned")
        return f"aligned LayerNorm {_fmt(ln)} vs FRN {_fmt(frn)}", ln < frn
    raise ValueError(f"unknown figure {number}; expected one of {', '.join(map(str, FIGURES))}")


def figure_verdict(number: int, statuses: list) -> tuple[str, str]:
    """(verdict, measured) of Fig. `number` for the reproduction ledger, the rule the results chapter and
    `tests/test_defects_part5.py` share: "not yet run" unless every run of the figure is there at full scale (what
    the runs there measure goes in `measured`); at full scale, `wvi.report.verdict_of` of `figure_check`'s
    comparison ("reproduced" or "not reproduced")."""
    from wvi.report import verdict_of

    measured, holds = figure_check(number, statuses)
    there = [s for s in statuses if s.record is not None]
    if holds is None or not statuses or any(s.scale != "full" for s in statuses):
        scale = "full scale" if there and all(s.scale == "full" for s in there) else "reduced budget"
        so_far = f"{len(there)} of {len(statuses)} runs, {scale}: {measured}" if there else "no runs committed"
        return "not yet run", so_far
    return verdict_of(holds), measured


def plot_figure(number: int, statuses: list, split: str = "test"):
    """Rossi et al.'s Fig. `number` from the runs there: naive and aligned barriers as bars per run, train and test
    (Figs. 4 and 11), or against the swept setting on `split`, one panel per model (the others); a run not there is
    marked "not run" or left out. Returns the matplotlib figure, or None when no run of the figure is there."""
    import matplotlib.pyplot as plt

    from wvi import plot

    figure = FIGURES[number]
    if all(s.record is None for s in statuses):
        return None
    nan = float("nan")

    def pick(s, label, one_split=split):
        return barrier(s, label, one_split) if s.record is not None else nan

    def tag(s):
        return {"full": "", "reduced": " (reduced)", "missing": ""}[s.scale]

    if figure.x is None:
        wide = len(statuses) > 2  # train and test one above the other once the bars need the column's width
        fig, axes = plot.panels(2, 1 if wide else 2, panel_size=(min(plot.MAX_WIDTH, 2.4 + 1.2 * len(statuses)), 3.6),
                                sharey=True)
        for ax, one_split in zip(axes, ("train", "test")):
            plot.barrier_bars(ax, [s.run.name + tag(s) for s in statuses],
                              [pick(s, "naive", one_split) for s in statuses],
                              [pick(s, "aligned", one_split) for s in statuses], one_split)
            ax.set_title(one_split)
        fig.suptitle(f"Fig. {number}: {figure.title}")
        fig.tight_layout()
        return fig
    groups = _by_preset(statuses)
    if number == 9:  # the paper overlays aligned VI and aligned MAP against width
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        for preset, group in groups.items():
            group = sorted(group, key=lambda s: s.record["config"]["width"])
            label = "MAP" if group[0].record["config"]["method"] == "map" else "aligned"
            ax.plot([s.record["config"]["width"] for s in group], [pick(s, "aligned") for s in group], marker="o",
                    color=plot.color(label), label=f"{'MAP, weight matching' if label == 'MAP' else 'VI, aligned'}"
                    + (" (reduced)" if any(s.scale == "reduced" for s in group) else ""))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width multiplier")
        ax.set_ylabel(f"{split} barrier (nats / point)")
        ax.legend()
        ax.set_title(f"Fig. {number}: {figure.title}")
        fig.tight_layout()
        return fig
    fig, axes = plot.panels(len(groups), panel_size=(4.2, 3.4))
    for ax, (preset, group) in zip(axes, groups.items()):
        group = sorted(group, key=lambda s: s.record["config"][figure.x])
        reduced = any(s.scale == "reduced" for s in group)
        plot.barrier_sweep(ax, [s.record["config"][figure.x] for s in group], [pick(s, "naive") for s in group],
                           [pick(s, "aligned") for s in group], figure.x.replace("_", " "),
                           preset + (" (reduced)" if reduced else ""))
    fig.suptitle(f"Fig. {number}: {figure.title}")
    fig.tight_layout()
    return fig


TIMING_METHODS = {"vi": "VI, Wasserstein cost", "map": "MAP, weight matching",
                  "map_git_rebasin": "MAP, Git Re-Basin's code"}
"""The alignments `benchmarks/align_widths.py` times on each pair (Fig. A14), and their labels in the book."""


def load_alignment_times(path: Path) -> dict:
    """Fig. A14's timing file (written by `benchmarks/align_widths.py`), checked: each point has `arch`, `width` and
    `pairs`, each pair the `seconds` (one per repeat) and `sweeps` of every method in `TIMING_METHODS`."""
    doc = json.loads(Path(path).read_text())
    for name, point in doc.get("points", {}).items():
        missing = {"arch", "width", "pairs"} - set(point)
        if missing or not point["pairs"]:
            raise ValueError(f"{path}: point {name!r} lacks {sorted(missing) or 'pairs'}")
        for pair in point["pairs"]:
            for method in TIMING_METHODS:
                if not pair.get(method, {}).get("seconds"):
                    raise ValueError(f"{path}: point {name!r} has no {method!r} times")
    return doc


def alignment_times(doc: dict) -> dict:
    """{arch: (widths, {method: array (widths, pairs) of each pair's fastest time in seconds})} of a Fig. A14
    timing file, widths sorted."""
    out = {}
    for arch in sorted({p["arch"] for p in doc["points"].values()}):
        points = sorted((p for p in doc["points"].values() if p["arch"] == arch), key=lambda p: p["width"])
        out[arch] = ([p["width"] for p in points],
                     {m: np.array([[min(pair[m]["seconds"]) for pair in p["pairs"]] for p in points])
                      for m in TIMING_METHODS})
    return out


def alignment_table(doc: dict) -> list:
    """Rows of the Fig. A14 table, one per point of a timing file (by architecture, then width): the number of
    weights (means only), the pairs, the median over pairs of each method's time (a pair's time: the fastest of its
    runs), the median over pairs of each pair's VI / MAP time ratio, of its ratio of times per sweep, and the
    median sweeps."""
    rows = []
    for arch, (widths, _) in alignment_times(doc).items():
        for width in widths:
            pairs = doc["points"][f"{arch}-{width}"]["pairs"]
            t = {m: np.array([min(p[m]["seconds"]) for p in pairs]) for m in TIMING_METHODS}
            sweeps = {m: np.array([p[m]["sweeps"] for p in pairs]) for m in ("vi", "map")}
            rows.append({"network": {"mlp": "MLP 3×{}", "resnet": "ResNet20 ×{}"}[arch].format(width),
                         "weights": doc["points"][f"{arch}-{width}"].get("parameters"), "pairs": len(pairs),
                         "VI (s)": np.median(t["vi"]), "MAP (s)": np.median(t["map"]),
                         "VI / MAP": np.median(t["vi"] / t["map"]),
                         "VI / MAP per sweep": np.median(t["vi"] / sweeps["vi"] / (t["map"] / sweeps["map"])),
                         "sweeps VI": np.median(sweeps["vi"]), "sweeps MAP": np.median(sweeps["map"]),
                         "Git Re-Basin on MAP (s)": np.median(t["map_git_rebasin"])})
    return rows


def alignment_time_check(doc: dict) -> tuple[bool, str]:
    """Fig. A14's criterion on a timing file, and what was measured: "for wide networks aligning VI solutions is
    more demanding than matching SGD weights" holds when, at the widest width of each architecture, for every pair,
    the fastest of its VI alignments (Wasserstein cost) is slower than the slowest of its MAP weight matchings by
    the same code (the repeats' spread is the timing noise; fewer than 3 pairs raise). `measured` also gives the
    longest VI alignment, for the paper's "within a minute".

    Returns (the criterion met, measured)."""
    vi_all = np.concatenate([pair["vi"]["seconds"] for p in doc["points"].values() for pair in p["pairs"]])
    widest, ratios = [], []
    for arch, (widths, _) in alignment_times(doc).items():
        pairs = doc["points"][f"{arch}-{widths[-1]}"]["pairs"]
        if len(pairs) < 3:
            raise ValueError(f"Fig. A14's criterion needs at least 3 pairs at {arch} x{widths[-1]}; got {len(pairs)}")
        slower = [min(pair["vi"]["seconds"]) > max(pair["map"]["seconds"]) for pair in pairs]
        widest.append(all(slower))
        r = [min(pair["vi"]["seconds"]) / min(pair["map"]["seconds"]) for pair in pairs]
        ratios.append(f"{arch} x{widths[-1]}: VI / MAP time {min(r):.1f}–{max(r):.1f} "
                      f"({sum(slower)} of {len(slower)} pairs slower beyond the repeats' spread)")
    measured = "; ".join(ratios) + f"; longest of {vi_all.size} VI alignments {vi_all.max():.2f} s"
    return bool(widest) and all(widest), measured
