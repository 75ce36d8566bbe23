"""Tests of `wvi.experiments.campaign`: the CPU smoke campaign end to end, and the GPU campaigns' sizing."""
import json

import pytest

from test_experiments_permutation import check_result
from wvi.experiments import campaign, permutation


def test_smoke_campaign_runs_point_by_point_and_a_second_call_resumes(tmp_path, capsys):
    """The CPU smoke campaign end to end: each point's result.json, the campaign log with predicted and measured
    seconds; a second call skips every point; `--max-seconds 0` starts none."""
    record = permutation.main(["--campaign", "smoke", "--out", str(tmp_path)])
    points = campaign.CAMPAIGNS["smoke"]
    assert [p.folder for p in points] == list(record["points"]) and len(set(record["points"])) == len(points)
    for point in points:
        check_result(json.loads((tmp_path / point.folder / "result.json").read_text()), tmp_path / point.folder)
        entry = record["points"][point.folder]
        assert entry["status"] == "ran" and entry["seconds"] > 0 and entry["predicted_seconds"] > 0
    log = json.loads((tmp_path / "campaign-smoke.json").read_text())
    assert log["points"] == json.loads(json.dumps(record["points"]))
    # the two MLP points differ only in their seed, and so do their results
    first, second = (json.loads((tmp_path / p.folder / "result.json").read_text()) for p in points[:2])
    assert first["config"]["seed"] == 0 and second["config"]["seed"] == 1 and first["curves"] != second["curves"]
    again = permutation.main(["--campaign", "smoke", "--out", str(tmp_path)])
    assert {e["status"] for e in again["points"].values()} == {"already there"}
    none = campaign.run_campaign("smoke", tmp_path / "other", max_seconds=0.0)
    assert {e["status"] for e in none["points"].values()} == {"not started: predicted past --max-seconds"}
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
    sampling, prior and optimiser arithmetic (more of it counted with float64 enabled, as in the tests)."""
    for name in ("gpu", "gpu-2"):
        total = sum(seconds for *_, seconds in campaign.plan(name))
        assert 0 < total <= campaign.BUDGET_SECONDS, (name, total)
    rows = campaign.plan("gpu")
    main_point, main_cost, _ = rows[0]
    assert main_point.run.name == "mlp-mnist" and main_cost.steps == permutation.PRESETS["mlp-mnist"].steps // 10
    weights = 784 * 512 + 2 * 512 * 512 + 512 * 10
    assert 0.9 < main_cost.step_flops / (2 * 6 * 500 * weights) < 2.0, main_cost.step_flops
    assert main_cost.step_kernels > 10
    seeds = [p.seed for p, *_ in rows if p.run.name == "mlp-mnist"]
    assert sorted(seeds) == [0, 1, 2]  # the main point on three pairs
    assert all(p.config.data in ("mnist", "mnist32") for name in ("gpu", "gpu-2") for p, *_ in campaign.plan(name))
    # a sweep's points share the main point's budget, so that only the swept setting differs
    assert len({p.config.steps for p, *_ in rows}) == 1 and len({p.config.num_samples for p, *_ in rows}) == 1
