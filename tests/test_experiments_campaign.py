"""Tests of `wvi.experiments.campaign`: the CPU smoke campaign end to end, and the GPU campaigns' sizing."""
import json

import numpy as np
import pytest

from test_experiments_permutation import check_result
from wvi.experiments import campaign, permutation
from wvi.experiments.permutation import Run

pytestmark = pytest.mark.float32  # the dtype the commands run in (tests/conftest.py)


def test_smoke_campaign_runs_point_by_point_and_a_second_call_resumes(tmp_path, capsys, monkeypatch):
    """The CPU smoke campaign end to end: each point's result.json, the campaign log with predicted and measured
    seconds; a second call skips every point; a program in which one setting diverges loses only that point;
    `--max-seconds 0` starts none."""
    record = permutation.main(["--campaign", "smoke", "--out", str(tmp_path)])
    points = campaign.CAMPAIGNS["smoke"]
    assert [p.folder for p in points] == list(record["points"]) and len(set(record["points"])) == len(points)
    for point in points:
        check_result(json.loads((tmp_path / point.folder / "result.json").read_text()), tmp_path / point.folder)
        entry = record["points"][point.folder]
        assert entry["status"] == "ran" and entry["seconds"] > 0 and entry["predicted_seconds"] > 0
    log = json.loads((tmp_path / "campaign-smoke.json").read_text())
    assert log["points"] == json.loads(json.dumps(record["points"]))
    first, warm, second = (json.loads((tmp_path / p.folder / "result.json").read_text()) for p in points)
    # points 0 and 2 differ only in their seed, and so do their results
    assert first["config"]["seed"] == 0 and second["config"]["seed"] == 1 and first["curves"] != second["curves"]
    # points 0 and 1 differ only in temperature: one program (campaign.groups), each pair as its own run gives it
    assert campaign.groups(points) == [points[:2], points[2:]]
    assert warm["trained_with"] == [points[0].folder] and first["trained_with"] == [points[1].folder]
    assert second["trained_with"] == [] and warm["curves"] != first["curves"]
    assert record["points"][points[1].folder]["trained_with"] == [points[0].folder]
    alone = permutation.run(points[1].config, tmp_path / "alone", "mlp-mnist", points[1].config.steps, seed=0)
    for label in ("naive", "aligned"):
        for split in ("train", "test"):
            np.testing.assert_allclose(warm["curves"][label][split]["losses"],
                                       alone["curves"][label][split]["losses"], rtol=1e-9)
    assert warm["accuracy"] == alone["accuracy"]
    again = permutation.main(["--campaign", "smoke", "--out", str(tmp_path)])
    assert {e["status"] for e in again["points"].values()} == {"already there"}
    # a program in which one setting diverges (prior variance 1e-30: in float32 the second step overflows) loses
    # only that point: its other points without a result run again alone, and a later call does not retry it
    diverging = (points[2], campaign.Point(Run("mlp-mnist", (("temperature", 0.5),)), campaign._TINY_MLP, 1, "fine"),
                 campaign.Point(Run("mlp-mnist", (("prior_variance", 1e-30),)), campaign._TINY_MLP, 1, "diverges"))
    monkeypatch.setitem(campaign.CAMPAIGNS, "diverging", diverging)
    monkeypatch.setitem(campaign.DEFAULT_DEVICE, "diverging", "cpu")
    assert campaign.groups(diverging) == [diverging]
    capsys.readouterr()
    record = campaign.run_campaign("diverging", tmp_path, checkpoint_every=1)  # a checkpoint after step 1
    kept, fine, bad = (record["points"][p.folder] for p in diverging)
    assert kept["status"] == "already there" and fine["status"] == "ran" and fine["trained_with"] == []
    # a point run again alone is logged with its prediction alone (not its share of the program's)
    alone = campaign.predict(diverging[1], campaign.cost(diverging[1]), campaign.DEVICES["cpu"])
    assert fine["predicted_seconds"] == alone > kept["predicted_seconds"] and fine["diverged_program_seconds"] > 0
    assert bad["status"] == "diverged" and bad["step"] == 2 and bad["field"].startswith("state."), bad
    assert bad["error"].startswith(diverging[2].folder + ", segment 2/20 diverged at step 2 of 20"), bad["error"]
    assert not (tmp_path / diverging[2].folder / "result.json").exists()
    check_result(json.loads((tmp_path / diverging[1].folder / "result.json").read_text()), tmp_path / diverging[1].folder)
    # the diverged runs' checkpoints are removed: they would only diverge again
    assert not list(tmp_path.glob(points[2].folder + "/checkpoint-program.npz")) and not list(
        tmp_path.glob(diverging[2].folder + "/checkpoint*.npz"))
    assert "the program diverged" in capsys.readouterr().out
    again = campaign.run_campaign("diverging", tmp_path, checkpoint_every=1)
    assert [e["status"] for e in again["points"].values()] == ["already there", "already there", "diverged"]
    out = capsys.readouterr().out
    assert "diverged in an earlier call, not run again" in out and "running" not in out, out
    none = campaign.run_campaign("smoke", tmp_path / "other", max_seconds=0.0)
    assert {e["status"] for e in none["points"].values()} == {"not started: predicted past --max-seconds"}
    # predictions far below the truth (a device slower than assumed): once the first program has run, the rest
    # are scaled by its measured / predicted time, and the second program (predicted 10 s, so at least 10 s
    # × several hundred) is not started within 1,000 s, although its prediction alone would fit
    low = {points[0]: 1e-3, points[1]: 1e-3, points[2]: 10.0}
    monkeypatch.setattr(campaign, "plan", lambda name, device=None: [(p, None, low[p]) for p in points])
    capsys.readouterr()
    slow = campaign.run_campaign("smoke", tmp_path / "slow", max_seconds=1_000.0)
    statuses = [e["status"] for e in slow["points"].values()]
    assert statuses == ["ran", "ran", "not started: predicted past --max-seconds"], statuses
    assert slow["prediction_scale"] > 100 and slow["wall_seconds"] < 1_000
    assert "as measured so far" in capsys.readouterr().out
    monkeypatch.undo()
    assert permutation.main(["--campaign", "smoke", "--list"]) is None
    out = capsys.readouterr().out
    assert "CPU s/step" in out and "predicted total" in out and points[1].folder in out
    with pytest.raises(SystemExit):
        permutation.main(["--campaign", "tpu", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        permutation.main(["--campaign", "smoke"])  # neither --out nor --list
    with pytest.raises(SystemExit):
        permutation.main(["--campaign", "smoke", "--out", str(tmp_path), "--steps", "5"])  # no overrides


def test_gpu_campaign_is_sized_to_its_budget_before_any_gpu_is_seen():
    """The GPU campaigns' predicted times (counted from their compiled steps, on the device figures stated in
    `campaign.DEVICES`) sum to at most five minutes each, and the counts are those of the networks: an MLP step's
    FLOPs are about 6 · batch · weights for each of the two replicas (forward, and backward twice that), plus the
    sampling, prior and optimiser arithmetic (in float32, the dtype the commands run in); a program
    of five settings counts those of its ten replicas."""
    for name in ("gpu", "gpu-2"):
        total = sum(seconds for *_, seconds in campaign.plan(name))
        assert 0 < total <= campaign.BUDGET_SECONDS, (name, total)
    rows = campaign.plan("gpu")
    main_point, main_cost, _ = rows[0]
    assert main_point.run.name == "mlp-mnist" and main_cost.steps == permutation.PRESETS["mlp-mnist"].steps // 10
    weights = 784 * 512 + 2 * 512 * 512 + 512 * 10
    alone = campaign.cost(main_point)  # the main point's step trained on its own
    assert 0.9 < alone.step_flops / (2 * 6 * 500 * weights) < 2.0, alone.step_flops
    assert alone.step_kernels > 10
    # every point on three pairs; a seed's main, prior and temperature points in one program of five settings
    assert all(sorted(p.seed for p, *_ in rows if p.run == run) == [0, 1, 2] for run in {p.run for p, *_ in rows})
    programs = campaign.groups(campaign.CAMPAIGNS["gpu"])
    assert sorted(len(g) for g in programs) == [1] * 3 + [5] * 3 and main_point in programs[0]
    mlp_runs = {p.run for p, *_ in campaign.plan("gpu-2") if p.config.arch == "mlp"}
    assert mlp_runs and all(sorted(p.seed for p, *_ in campaign.plan("gpu-2") if p.run == run) == [0, 1, 2]
                            for run in mlp_runs)
    assert main_cost.num_settings == 5 and 0.9 < main_cost.step_flops / (5 * 2 * 6 * 500 * weights) < 2.0
    assert all(p.config.data in ("mnist", "mnist32") for name in ("gpu", "gpu-2") for p, *_ in campaign.plan(name))
    # a sweep's points share the main point's budget, so that only the swept setting differs
    assert len({p.config.steps for p, *_ in rows}) == 1 and len({p.config.num_samples for p, *_ in rows}) == 1
