"""Tests of wvi.experiments.results: run status from result files, and each figure's claim on made-up barriers."""
import json

import pytest

from wvi.experiments import permutation, results
from wvi.experiments.permutation import FIGURES


def write(root, run, naive, aligned, folder=None, **changed):
    """A result file of `run` (in `folder`, default the run's name) with the given test (and train) barriers and
    config fields changed."""
    config = {**run.config._asdict(), "seed": 0, **changed}
    record = dict.fromkeys(permutation.RESULT_KEYS)
    record.update(schema=permutation.SCHEMA, preset=run.preset, config=config, device="cpu", replica_devices=1,
                  seconds={"wall": 90.0}, barriers={"naive": {"train": naive, "test": naive},
                                                    "aligned": {"train": aligned, "test": aligned}})
    (root / (folder or run.name)).mkdir(parents=True)
    (root / (folder or run.name) / "result.json").write_text(json.dumps(record))


def test_status_full_reduced_missing(tmp_path):
    mlp, cifar, resnet = FIGURES[4].runs
    write(tmp_path, mlp, 1.0, 0.01)
    write(tmp_path, cifar, 1.0, 0.01, steps=1000, num_samples=8)
    statuses = results.figure_status(tmp_path, 4)
    assert [s.scale for s in statuses] == ["full", "reduced", "missing"]
    assert statuses[1].differences == {"steps": (1000, 100_000), "num_samples": (8, 128)}
    assert results.describe(statuses[0]) == "full scale (cpu × 1, 1.5 min)"
    assert results.describe(statuses[1]).startswith("reduced: steps 1000 (full: 100000), num_samples 8 (full: 128)")
    assert results.describe(statuses[2]) == "not yet run"
    assert results.command(4) == "python -m wvi.experiments.permutation --figure 4 --out results/permutation"
    (tmp_path / resnet.name).mkdir()
    (tmp_path / resnet.name / "result.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(ValueError, match="not a result of schema"):
        results.figure_status(tmp_path, 4)


@pytest.mark.parametrize("good", [True, False])
def test_each_figure_claim(tmp_path, good):
    fig = {n: tmp_path / str(n) for n in FIGURES}
    # Fig. 4: aligned below a quarter of naive
    for r in FIGURES[4].runs:
        write(fig[4], r, 1.0, 0.1 if good else 0.3)
    # Fig. 5: aligned falls with width (MLP runs only: the ResNet runs are missing)
    for i, r in enumerate(FIGURES[5].runs[:5]):
        write(fig[5], r, 1.0, 0.5 - 0.1 * i if good else 0.1 * i)
    # Fig. 7: naive falls with the prior variance, aligned flat
    for i, r in enumerate(FIGURES[7].runs[:3]):
        write(fig[7], r, 1.0 - 0.3 * i, 0.05 if good else 0.05 + 0.4 * i)
    # Fig. 8: coldest aligned at most T = 1's
    for r in FIGURES[8].runs:
        t = r.config.temperature
        write(fig[8], r, 1.0, 0.02 * t if good else 0.1 / t)
    # Fig. 9: MAP at most VI at the widest width both ran (x4 here)
    for r in FIGURES[9].runs:
        if r.config.width <= 4:
            write(fig[9], r, 1.0, (0.1 if r.config.method == "vi" else 0.05) if good else (0.05 if r.config.method == "vi" else 0.1))
    # Fig. 11: LayerNorm below FRN
    for r in FIGURES[11].runs:
        write(fig[11], r, 1.0, (0.05 if r.config.norm == "layernorm" else 0.1) if good else 0.1)
    for n in FIGURES:
        measured, holds = results.figure_check(n, results.figure_status(fig[n], n))
        assert holds is good, (n, measured)
    assert "width ×4" in results.figure_check(9, results.figure_status(fig[9], 9))[0]


def test_figure_claims_say_when_nothing_can_be_compared(tmp_path):
    assert results.figure_check(5, results.figure_status(tmp_path, 5)) == ("no results", None)
    write(tmp_path, FIGURES[11].runs[0], 1.0, 0.1)
    assert results.figure_check(11, results.figure_status(tmp_path, 11))[1] is None
    write(tmp_path, FIGURES[9].runs[0], 1.0, 0.1)
    assert results.figure_check(9, results.figure_status(tmp_path, 9)) == ("no width with both VI and MAP runs", None)


def test_default_root_and_curves(tmp_path):
    (tmp_path / "_toc.yml").write_text("")
    (tmp_path / "book" / "part5").mkdir(parents=True)
    assert results.default_root(tmp_path / "book" / "part5") == tmp_path / "results" / "permutation"
    run = FIGURES[4].runs[0]
    write(tmp_path, run, 1.0, 0.1)
    record_path = tmp_path / run.name / "result.json"
    record = json.loads(record_path.read_text())
    record["curves"] = {"naive": {"test": {"taus": [0.0, 0.5, 1.0], "losses": [0.2, 0.9, 0.4]}}}
    record_path.write_text(json.dumps(record))
    c = results.curve(results.run_status(tmp_path, run), "naive")
    assert c.barrier == pytest.approx(0.6) and c.tau_max == 0.5


def test_seed_statuses_read_every_committed_seed(tmp_path):
    run = FIGURES[4].runs[0]
    write(tmp_path, run, 1.0, 0.01)
    for k in (2, 10):
        write(tmp_path, run, 1.0 + k, 0.02, folder=f"{run.name}-seed{k}", seed=k, steps=1000)
    write(tmp_path, run, 1.0, 0.02, folder=f"{run.name}-seedling", seed=3)  # not a seed folder: ignored
    statuses = results.seed_statuses(tmp_path, run)
    assert [s.record["config"]["seed"] for s in statuses] == [0, 2, 10]
    assert [s.scale for s in statuses] == ["full", "reduced", "reduced"] and statuses[1].differences == {
        "steps": (1000, run.config.steps)}
    assert results.seed_statuses(tmp_path / "empty", run)[0].scale == "missing"
    assert list(results.committed_runs(tmp_path)) == ["mlp-mnist", "mlp-mnist-seed10", "mlp-mnist-seed2"]
    write(tmp_path, run, 1.0, 0.02, folder=f"{run.name}-seed4", seed=5)  # a file in another seed's folder
    with pytest.raises(ValueError, match="config differs from run mlp-mnist in seed"):
        results.seed_statuses(tmp_path, run)


def test_plot_figure_draws_what_is_there(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert results.plot_figure(8, results.figure_status(tmp_path, 8)) is None
    for r in FIGURES[8].runs[:3]:
        write(tmp_path, r, 1.0, 0.1, steps=100)
    fig = results.plot_figure(8, results.figure_status(tmp_path, 8))
    (ax,) = fig.axes
    assert ax.get_title() == "mlp-mnist (reduced)" and len(ax.lines[0].get_xdata()) == 3
    plt.close(fig)
    write(tmp_path, FIGURES[11].runs[0], 1.0, 0.1)
    fig = results.plot_figure(11, results.figure_status(tmp_path, 11))
    assert [a.get_title() for a in fig.axes] == ["train", "test"]
    assert [t.get_text() for t in fig.axes[1].texts] == ["not run", "not run"]
    plt.close(fig)


def test_mixed_budgets_foreign_configs_and_temperature_ends(tmp_path):
    t01, t03, t1, t3 = FIGURES[8].runs
    write(tmp_path, t1, 1.0, 0.01)
    write(tmp_path, t3, 1.0, 0.02)
    # T = 1 and T = 3 only: no cold run, nothing to compare (not T = 1 against itself)
    assert results.figure_check(8, results.figure_status(tmp_path, 8)) == (
        "needs a cold (T < 1) and a warm (T > 1) run of one model", None)
    write(tmp_path, t01, 1.0, 0.005, steps=1000)
    measured, holds = results.figure_check(8, results.figure_status(tmp_path, 8))
    assert holds is None and measured == "runs of 2 different budgets; not compared"
    write(tmp_path / "b", t01, 1.0, 0.005)
    write(tmp_path / "b", t3, 1.0, 0.02)
    assert results.figure_check(8, results.figure_status(tmp_path / "b", 8)) == (
        "mlp-mnist: aligned 0.005 at T = 0.1 vs 0.020 at T = 3", True)
    # a file of another experiment in a run's folder is an error, not a "reduced" run
    write(tmp_path / "c", t03, 1.0, 0.01, data="digits", steps=10)
    with pytest.raises(ValueError, match="differs from run mlp-mnist-temperature0.3 in data, not only in its budget"):
        results.figure_status(tmp_path / "c", 8)


def test_fig5_needs_the_mlp_naive_barrier_to_fall_too(tmp_path):
    narrow, *_, wide = FIGURES[5].runs[:5]
    write(tmp_path, narrow, 1.0, 0.2)
    write(tmp_path, wide, 1.5, 0.1)  # aligned falls, naive rises
    measured, holds = results.figure_check(5, results.figure_status(tmp_path, 5))
    assert holds is False and "naive 1.000 → 1.500" in measured


def test_fig9_overlays_vi_and_map(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for r in FIGURES[9].runs:
        if r.config.width <= 2:
            write(tmp_path, r, 1.0, 0.1)
    fig = results.plot_figure(9, results.figure_status(tmp_path, 9))
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["VI, aligned", "MAP, weight matching"]
    plt.close(fig)


def test_committed_result_files_are_well_formed():
    """Every committed result file (results/permutation/*/result.json) has the schema's keys, finite barriers and
    an alignment objective that never decreases from one sweep to the next (plumbing, formerly a ledger row of
    the results chapter)."""
    import math
    from pathlib import Path

    import numpy as np

    root = Path(__file__).resolve().parents[1] / "results" / "permutation"
    paths = sorted(root.glob("*/result.json"))
    assert paths, f"no committed result files under {root}"
    for path in paths:
        record = results.load_result(path)
        assert all(math.isfinite(b) for by_split in record["barriers"].values() for b in by_split.values()), path
        objectives = np.asarray(record["alignment"]["objectives"])
        assert np.all(np.diff(objectives) >= -1e-9 * abs(objectives[-1])), path


def timing_file(path, vi=(0.5, 0.6), wm=(0.1, 0.12), widths=(64, 256), pairs=3, slow=()):
    """A Fig. A14 timing file: every pair's VI and MAP repeat times `vi` and `wm` (seconds), the VI times of the
    pairs listed in `slow` at the widest width replaced by `wm` (as fast as weight matching)."""
    points = {}
    for arch in ("mlp", "resnet"):
        for w in widths:
            rows = [{"vi": {"seconds": list(wm if (w == widths[-1] and k in slow) else vi), "sweeps": 5},
                     "map": {"seconds": list(wm), "sweeps": 4}, "map_git_rebasin": {"seconds": [1.0], "sweeps": 4}}
                    for k in range(pairs)]
            points[f"{arch}-{w}"] = {"arch": arch, "width": w, "parameters": 10 * w, "pairs": rows}
    path.write_text(json.dumps({"figure": "A14", "points": points}))
    return results.load_alignment_times(path)


def test_alignment_time_check_holds_on_slower_vi_and_tabulates(tmp_path):
    doc = timing_file(tmp_path / "a.json")
    holds, measured = results.alignment_time_check(doc)
    assert holds and measured.startswith("mlp x256: VI / MAP time 5.0–5.0 (3 of 3 pairs slower beyond the repeats' "
                                         "spread); resnet x256")
    assert measured.endswith("longest of 24 VI alignments 0.60 s")
    widths, times = results.alignment_times(doc)["resnet"]
    assert widths == [64, 256] and times["vi"].shape == (2, 3) and times["map"][0, 0] == 0.1
    row = results.alignment_table(doc)[0]
    assert row["network"] == "MLP 3×64" and row["pairs"] == 3 and row["VI / MAP"] == pytest.approx(5.0)
    assert row["VI / MAP per sweep"] == pytest.approx(5.0 * 4 / 5) and row["sweeps VI"] == 5


def test_alignment_time_check_fails_where_the_paper_would(tmp_path):
    # planted: one pair's VI alignment at the widest width as fast as weight matching -> fails
    assert not results.alignment_time_check(timing_file(tmp_path / "a.json", slow=(1,)))[0]
    # planted: VI and MAP timings overlap within the repeats' spread -> not "slower"
    assert not results.alignment_time_check(timing_file(tmp_path / "b.json", vi=(0.11, 0.5)))[0]


def test_alignment_times_need_three_pairs_and_every_method(tmp_path):
    with pytest.raises(ValueError, match="needs at least 3 pairs at mlp x256; got 2"):
        results.alignment_time_check(timing_file(tmp_path / "a.json", pairs=2))
    doc = json.loads((tmp_path / "a.json").read_text())
    del doc["points"]["mlp-64"]["pairs"][0]["map"]
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="point 'mlp-64' has no 'map' times"):
        results.load_alignment_times(tmp_path / "a.json")
