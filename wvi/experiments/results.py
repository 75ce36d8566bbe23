"""Reading the committed results of `wvi.experiments.permutation` (the results chapter, book/part5/full_scale).

Each run of a figure lives in `<root>/<run name>/result.json`. `run_status` says whether it is there and at which
scale: "full" when its config is the figure's (Table 1's budget), "reduced" when some fields differ (a smaller
budget, e.g. on CPU; the differences are listed), "missing" when there is no file. Seed k > 0 of a run, another
independent replica pair, lives in `<run name>-seed<k>/` (`seed_statuses`, `committed_runs`); `figure_pairs` gives
every seed of each run of a figure. `figure_check` evaluates the paper's claim for a figure on the pairs there,
with a verdict only where each run has `MIN_PAIRS` pairs; `figure_verdict` turns it into the ledger's verdict,
decided only when every run of the figure is there at full scale from `MIN_PAIRS` seeds, "not yet run" otherwise.

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

from wvi.barrier import (BarrierCurve, alike, aligned_trend_verdict, barrier_from_losses,
                         smaller_change_verdict, trend_verdict, zero_barrier_verdict)
from wvi.experiments.permutation import FIGURES, RESULT_KEYS, SCHEMA, Run, schema_holds
from wvi.report import book_root, combine_verdicts


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
    if not schema_holds(record) or set(record) != set(RESULT_KEYS):
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


def command(number: int, root: str = "results/permutation", seed: int = 0) -> str:
    """The command that (re)generates Fig. `number`'s runs from `seed` (one replica pair per run; a verdict needs
    `MIN_PAIRS` seeds, 0, 1 and 2)."""
    return f"python -m wvi.experiments.permutation --figure {number} --out {root}" + (f" --seed {seed}" if seed else "")


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


def _by_preset(pairs: list) -> dict:
    """{preset: [pairs of each of its runs there]} of `figure_pairs`' lists, in the figure's order."""
    groups: dict = {}
    for p in pairs:
        if p:
            groups.setdefault(p[0].run.preset, []).append(p)
    return groups


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _budget(status: RunStatus) -> tuple:
    return tuple(sorted((k, ran) for k, (ran, _) in status.differences.items()))


MIN_PAIRS = 3
"""The independent replica pairs (seeds) a run needs before a figure's claim is decided on it."""


def figure_pairs(root, number: int) -> list:
    """The committed replica pairs of every run of Fig. `number`, in the figure's order: for each run, the
    `RunStatus` of each seed whose result is under `root` (`seed_statuses`; an empty list for a run not yet run)."""
    return [[s for s in seed_statuses(root, r) if s.record is not None] for r in FIGURES[number].runs]


def _values(pairs: list, label: str, split: str = "test") -> np.ndarray:
    return np.array([barrier(s, label, split) for s in pairs])


def _both_splits(runs: list, label: str) -> np.ndarray:
    """The `label` barriers of every pair of every run in `runs`, train then test (the zero-barrier rule's input)."""
    return np.concatenate([_values(p, label, split) for p in runs for split in ("train", "test")])


def _by_seed(a: list, b: list, label: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The `label` barriers of two runs' pairs on the seeds both have, in the same order (for paired rules)."""
    seeds_a = {s.record["config"]["seed"]: s for s in a}
    seeds_b = {s.record["config"]["seed"]: s for s in b}
    common = sorted(set(seeds_a) & set(seeds_b))
    return tuple(np.array([barrier(run[k], label, split) for k in common]) for run in (seeds_a, seeds_b))


def _mean_sd(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if values.size > 1 else _fmt(values[0])


def pair_summary(pairs: list) -> dict:
    """One run's replica pairs (a list of its seeds' `RunStatus`) in a table row: the number of pairs, the mean
    test accuracy of their 2n networks, and the naive and aligned test barriers as "mean ± sd" over the pairs (the
    one value for a single pair). Pairs of more than one budget are not averaged together: the row is of the
    budget `_one_budget` keeps, and "left out" names the others."""
    if not pairs:
        raise ValueError("pair_summary needs at least one pair")
    (pairs,), left_out = _one_budget([pairs])
    accuracies = [s.record["accuracy"][q]["test"] for s in pairs for q in ("q0", "q1")]
    row = {"pairs": len(pairs), "test accuracy": float(np.mean(accuracies)),
           "barrier naive": _mean_sd(_values(pairs, "naive")), "barrier aligned": _mean_sd(_values(pairs, "aligned"))}
    return {**row, "left out": ", ".join(left_out)} if left_out else row


def _one_budget(pairs: list) -> tuple[list, list]:
    """The pairs of one budget (`_budget`) out of `pairs` (`figure_pairs`' lists, one per run; each run keeps its
    place, with an empty list where none of its pairs is of that budget), and the folders of the pairs left out: a
    comparison across budgets says nothing. The budget kept is the one that covers the most runs; among those, full
    scale, then the one with the most pairs, then the most steps, posterior samples and values of τ."""
    covered: dict = {}
    for p in pairs:
        for s in p:
            runs, count = covered.get(_budget(s), (set(), 0))
            covered[_budget(s)] = (runs | {s.run.name}, count + 1)
    if not covered:
        return [[] for _ in pairs], []

    def size(b):
        ran = dict(b)
        return tuple(ran.get(field, float("inf")) for field in BUDGET_FIELDS)

    kept = max(covered, key=lambda b: (len(covered[b][0]), b == (), covered[b][1], size(b)))
    left_out = [s.run.folder(s.record["config"]["seed"]) for p in pairs for s in p if _budget(s) != kept]
    return [[s for s in p if _budget(s) == kept] for p in pairs], left_out


def _check_pairs(number: int, pairs) -> None:
    """`figure_pairs(root, number)`'s shape, or a TypeError that says what was expected."""
    if number not in FIGURES:
        raise ValueError(f"unknown figure {number}; expected one of {', '.join(map(str, FIGURES))}")
    runs = len(FIGURES[number].runs)
    if (not isinstance(pairs, (list, tuple)) or len(pairs) != runs
            or not all(isinstance(p, (list, tuple)) and all(isinstance(s, RunStatus) for s in p) for p in pairs)):
        got = (f"a {type(pairs).__name__} of {len(pairs)} {type(pairs[0]).__name__ if pairs else 'items'}"
               if isinstance(pairs, (list, tuple)) else type(pairs).__name__)
        raise TypeError(f"pairs must be figure_pairs(root, {number}): for each of the figure's {runs} runs, a list "
                        f"of the RunStatus of its seeds; got {got}")


def figure_check(number: int, pairs: list) -> tuple[str, Optional[str]]:
    """(what was measured, the verdict on the paper's claim for Fig. `number`) from the test barriers of the
    replica pairs there (`figure_pairs`: for each run, its seeds' statuses). The verdict is None when the runs the
    comparison needs are not there, or when one of them has fewer than `MIN_PAIRS` pairs (what they measure is
    still described). Pairs trained on different budgets are not compared: only the pairs of the budget most of
    them share are used (`_one_budget`), and the others are named. One rule per figure, on the pairs of each run
    (k = 3 standard errors, `wvi.barrier`)::

      4: `zero_barrier_verdict` over every pair of every run, train and test: each pair's
         naive barrier above 0.5 nats/point and its aligned one below a quarter of it
         (`ZERO_BARRIER_RULE`) → "reproduced", none → "not reproduced", some → "partly
         reproduced";
      5: for each model, `trend_verdict` (falls) of the aligned barrier from the narrowest
         to the widest run; for the MLP the naive barrier's too;
      7: for each model, two parts: `trend_verdict` (falls) of the naive barrier from the
         smallest to the largest prior variance, and `smaller_change_verdict`: the aligned
         barrier changes less between them than the naive one does, beyond 3 standard
         errors of the gap;
      8: `trend_verdict` (rises) of the aligned barrier from the coldest run (T < 1) to the
         warmest (T > 1);
      9: two parts: at the narrowest width both methods ran, VI's and MAP's aligned barriers
         are `alike` (paired by seed, within a tenth of the smaller mean naive barrier, the
         margin of the CPU chapter's Fig. 9) → "reproduced", else "not testable at this
         scale"; at the widest, `trend_verdict` (falls) from VI's aligned barrier to MAP's
         (with one width both ran, the second part only);
      11: three parts: `zero_barrier_verdict` on the FRN run and on the LayerNorm run (both
         can be aligned), and `trend_verdict` (falls) from the FRN run's aligned barrier to
         the LayerNorm run's.

    `trend_verdict` says "not testable at this scale" when a change is within 3 standard errors; on aligned barriers
    the rule is `aligned_trend_verdict` (also "not testable" when the mean aligned barrier is within 3 standard
    errors of zero at both ends: nothing there to fall), as in the CPU chapter's sweeps. The parts of a figure's
    claim combine by `wvi.report.combine_verdicts`: a part that is "not testable at this scale" counts as not
    met, so one reproduced part and one untestable part are "partly reproduced".
    """
    _check_pairs(number, pairs)
    if not any(pairs):
        return "no results", None
    kept, left_out = _one_budget(pairs)
    there = [p for p in kept if p]
    note = f"; left out, at another budget: {', '.join(left_out)}" if left_out else ""
    x = FIGURES[number].x
    used, parts, verdicts = [], [], []
    if number == 4:
        used = there
        parts = [f"{p[0].run.name} {_mean_sd(_values(p, 'aligned'))} vs {_mean_sd(_values(p, 'naive'))}" for p in there]
        measured = "aligned vs naive test barrier: " + "; ".join(parts)
        if min(len(p) for p in there) >= MIN_PAIRS:  # every pair, train and test: the rule of the CPU chapters
            verdicts.append(zero_barrier_verdict(*(_both_splits(there, label) for label in ("naive", "aligned")),
                                                 min_pairs=MIN_PAIRS))
    elif number in (5, 7, 8):
        for preset, group in _by_preset(there).items():
            group = sorted(group, key=lambda p: p[0].record["config"][x])
            if len(group) < 2:
                continue
            lo, hi = group[0], group[-1]
            x_lo, x_hi = lo[0].record["config"][x], hi[0].record["config"][x]
            if number == 8 and not x_lo < 1 < x_hi:
                continue
            used += [lo, hi]
            aligned = [_values(p, "aligned") for p in (lo, hi)]
            naive = [_values(p, "naive") for p in (lo, hi)]
            if number == 5:
                parts.append(f"{preset}: aligned {_mean_sd(aligned[0])} → {_mean_sd(aligned[1])}, naive "
                             f"{_mean_sd(naive[0])} → {_mean_sd(naive[1])} ({x} {x_lo:g} → {x_hi:g})")
                if min(len(lo), len(hi)) >= MIN_PAIRS:
                    verdicts.append(aligned_trend_verdict(*aligned, min_pairs=MIN_PAIRS))
                    if preset.startswith("mlp"):
                        verdicts.append(trend_verdict(*naive, min_pairs=MIN_PAIRS))
            elif number == 7:
                parts.append(f"{preset}: naive {_mean_sd(naive[0])} → {_mean_sd(naive[1])}, aligned "
                             f"{_mean_sd(aligned[0])} → {_mean_sd(aligned[1])} ({x} {x_lo:g} → {x_hi:g})")
                if min(len(lo), len(hi)) >= MIN_PAIRS:
                    verdicts.append(trend_verdict(*naive, min_pairs=MIN_PAIRS))
                    verdicts.append(smaller_change_verdict(*aligned, *naive, min_pairs=MIN_PAIRS))
            else:
                parts.append(f"{preset}: aligned {_mean_sd(aligned[0])} at T = {x_lo:g} vs {_mean_sd(aligned[1])} "
                             f"at T = {x_hi:g}")
                if min(len(lo), len(hi)) >= MIN_PAIRS:
                    verdicts.append(aligned_trend_verdict(*aligned, falls=False, min_pairs=MIN_PAIRS))
        if not parts:
            return ("needs a cold (T < 1) and a warm (T > 1) run of one model" if number == 8
                    else "fewer than two runs of any model") + note, None
        measured = "; ".join(parts)
    elif number == 9:
        widths = {}
        for p in there:
            widths.setdefault(p[0].record["config"]["width"], {})[p[0].record["config"]["method"]] = p
        both = sorted(w for w, m in widths.items() if {"vi", "map"} <= set(m))
        if not both:
            return "no width with both VI and MAP runs" + note, None
        ends = [both[0], both[-1]] if len(both) > 1 else [both[-1]]
        parts = []
        for w in ends:
            vi, map_ = widths[w]["vi"], widths[w]["map"]
            used += [vi, map_]
            parts.append(f"width ×{w}: aligned MAP {_mean_sd(_values(map_, 'aligned'))} vs VI "
                         f"{_mean_sd(_values(vi, 'aligned'))}")
        measured = "; ".join(parts)
        if min(len(p) for p in used) >= MIN_PAIRS:
            if len(ends) > 1:  # narrow: alike, paired by seed
                vi, map_ = widths[ends[0]]["vi"], widths[ends[0]]["map"]
                margin = 0.1 * min(np.mean(_values(vi, "naive")), np.mean(_values(map_, "naive")))
                alike_ = alike(*_by_seed(map_, vi, "aligned"), margin=margin)
                verdicts.append("reproduced" if alike_ else "not testable at this scale")
            vi, map_ = widths[ends[-1]]["vi"], widths[ends[-1]]["map"]
            verdicts.append(aligned_trend_verdict(_values(vi, "aligned"), _values(map_, "aligned"),
                                                  min_pairs=MIN_PAIRS))
    else:  # Fig. 11 (_check_pairs knows the figures)
        norms = {p[0].record["config"]["norm"]: p for p in there}
        if set(norms) != {"frn", "layernorm"}:
            return "needs both the FRN and the LayerNorm run" + note, None
        ln, frn = norms["layernorm"], norms["frn"]
        used += [ln, frn]
        measured = f"aligned LayerNorm {_mean_sd(_values(ln, 'aligned'))} vs FRN {_mean_sd(_values(frn, 'aligned'))}"
        if min(len(ln), len(frn)) >= MIN_PAIRS:
            for run in (frn, ln):  # both can be aligned, train and test, as Fig. 4's rule
                verdicts.append(zero_barrier_verdict(*(_both_splits([run], label) for label in ("naive", "aligned")),
                                                     min_pairs=MIN_PAIRS))
            verdicts.append(aligned_trend_verdict(_values(frn, "aligned"), _values(ln, "aligned"),
                                                  min_pairs=MIN_PAIRS))
    counts = sorted({len(p) for p in used})
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    measured += f" (test barriers, mean ± sd over {span} pair{'s' * (counts[-1] > 1)} per run){note}"
    if counts[0] < MIN_PAIRS:
        return measured + f"; a verdict needs {MIN_PAIRS} pairs per run", None
    return measured, combine_verdicts(verdicts)


def figure_verdict(number: int, pairs: list) -> tuple[str, str]:
    """(verdict, measured) of Fig. `number` for the reproduction ledger, the rule the results chapter and
    `tests/test_defects_part5.py` share: "not yet run" unless the pairs `figure_check` compares (`_one_budget`) are
    at full scale and every run of the figure has `MIN_PAIRS` of them (what the pairs measure, and `figure_check`'s
    verdict on them at their budget, go in `measured`); then `figure_check`'s verdict."""
    measured, verdict = figure_check(number, pairs)
    kept, _ = _one_budget(pairs)
    there = [s for p in kept for s in p]
    full = bool(there) and all(s.scale == "full" for s in there)
    if verdict is None or not full or any(len(p) < MIN_PAIRS for p in kept):
        runs = sum(bool(p) for p in pairs)
        so_far = (f"{runs} of {len(pairs)} runs, {'full scale' if full else 'reduced budget'}: {measured}" if there
                  else "no runs committed")
        return "not yet run", so_far + (f"; at that budget: {verdict}" if verdict else "")
    return verdict, measured


def plot_figure(number: int, pairs: list, split: str = "test"):
    """Rossi et al.'s Fig. `number` from the replica pairs there (`figure_pairs`): naive and aligned barriers as
    bars per run, train and test (Figs. 4 and 11), or against the swept setting on `split`, one panel per model
    (the others); a run not there is marked "not run" or left out. A run with several pairs is drawn as their mean
    with ±1 sd and each pair as a dot. Only the pairs `figure_check` compares are drawn (one budget, `_one_budget`).
    Returns the matplotlib figure, or None when no run of the figure is there."""
    import matplotlib.pyplot as plt

    from wvi import plot

    _check_pairs(number, pairs)
    figure = FIGURES[number]
    if not any(pairs):
        return None
    pairs, _ = _one_budget(pairs)  # the pairs figure_check compares
    statuses = [p[0] if p else RunStatus(r, "missing", None, {}) for p, r in zip(pairs, figure.runs)]

    def tag(s):
        return {"full": "", "reduced": " (reduced)", "missing": ""}[s.scale]

    if figure.x is None:
        wide = len(statuses) > 2  # train and test one above the other once the bars need the column's width
        fig, axes = plot.panels(2, 1 if wide else 2, panel_size=(min(plot.MAX_WIDTH, 2.4 + 1.2 * len(statuses)), 3.6),
                                sharey=True)
        for ax, one_split in zip(axes, ("train", "test")):
            plot.barrier_bars(ax, [s.run.name + tag(s) for s in statuses],
                              [_values(p, "naive", one_split) if p else np.nan for p in pairs],
                              [_values(p, "aligned", one_split) if p else np.nan for p in pairs], one_split)
            ax.set_title(one_split)
        fig.suptitle(f"Fig. {number}: {figure.title}")
        fig.tight_layout()
        return fig

    def sweep_values(group, label):  # for each point, the barriers of its pairs
        return [[barrier(s, label, split) for s in p] for p in group]

    groups = _by_preset(pairs)
    if number == 9:  # the paper overlays aligned VI and aligned MAP against width
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        for preset, group in groups.items():
            group = sorted(group, key=lambda p: p[0].record["config"]["width"])
            label = "MAP" if group[0][0].record["config"]["method"] == "map" else "aligned"
            text = ("MAP, weight matching" if label == "MAP" else "VI, aligned") + (
                " (reduced)" if any(p[0].scale == "reduced" for p in group) else "")
            plot.pairs_line(ax, [p[0].record["config"]["width"] for p in group], sweep_values(group, "aligned"),
                            "-", plot.color(label), text)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width multiplier")
        ax.set_ylabel(f"{split} barrier (nats / point)")
        ax.legend()
        ax.set_title(f"Fig. {number}: {figure.title}")
        fig.tight_layout()
        return fig
    fig, axes = plot.panels(len(groups), panel_size=(4.2, 3.4))
    for ax, (preset, group) in zip(axes, groups.items()):
        group = sorted(group, key=lambda p: p[0].record["config"][figure.x])
        reduced = any(s.scale == "reduced" for p in group for s in p)
        plot.barrier_sweep(ax, [p[0].record["config"][figure.x] for p in group], sweep_values(group, "naive"),
                           sweep_values(group, "aligned"), figure.x.replace("_", " "),
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
