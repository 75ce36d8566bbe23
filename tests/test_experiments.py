"""Smoke tests of the full-scale experiment commands on CPU with tiny budgets and offline data (`--data digits`)."""
import json
import math

import numpy as np
import pytest

from wvi import nn
from wvi.experiments import permutation

TINY_MLP = ["--data", "digits", "--steps", "20", "--width", "16", "--num-samples", "4", "--num-taus", "5",
            "--checkpoint-every", "10"]


def check_result(record, out):
    on_disk = json.loads((out / "result.json").read_text())
    assert tuple(on_disk) == permutation.RESULT_KEYS and on_disk["schema"] == permutation.SCHEMA
    for label in ("naive", "aligned"):
        for split in ("train", "test"):
            assert math.isfinite(on_disk["barriers"][label][split])
            curve = on_disk["curves"][label][split]
            assert len(curve["taus"]) == len(curve["losses"]) == on_disk["config"]["num_taus"]
    assert on_disk["alignment"]["sweeps"] >= 1 and np.all(np.diff(on_disk["alignment"]["objectives"]) >= 0)
    assert set(on_disk["versions"]) >= {"jax", "numpy", "wvi"} and on_disk["device"] and on_disk["seconds"]["wall"] > 0
    assert record["barriers"] == on_disk["barriers"]


def test_mlp_vi_command_writes_a_result(tmp_path):
    record = permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path)] + TINY_MLP)
    check_result(record, tmp_path)
    assert record["config"]["width"] == 16 and record["alignment"]["cost"] == "wasserstein"


def test_map_command_uses_weight_matching(tmp_path):
    record = permutation.main(["--preset", "mlp-mnist-map", "--out", str(tmp_path)] + TINY_MLP)
    check_result(record, tmp_path)
    assert record["alignment"]["cost"] == "mean"


def test_resnet_command_writes_a_result(tmp_path):
    record = permutation.main(["--preset", "resnet20-layernorm-cifar10", "--out", str(tmp_path), "--data", "digits",
                               "--steps", "2", "--batch-size", "16", "--num-samples", "2", "--num-taus", "3",
                               "--checkpoint-every", "2"])
    check_result(record, tmp_path)
    assert record["config"]["norm"] == "layernorm"


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    uninterrupted = permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path / "a")] + TINY_MLP)
    calls = {"n": 0}
    real_train = nn.train

    def interrupted_train(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("the Colab session ended")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(nn, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path / "b")] + TINY_MLP)
    assert (tmp_path / "b" / "checkpoint.npz").exists() and not (tmp_path / "b" / "result.json").exists()
    monkeypatch.setattr(nn, "train", real_train)
    resumed = permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path / "b")] + TINY_MLP)
    assert resumed["barriers"] == uninterrupted["barriers"]
    # a checkpoint written by another configuration is refused, not silently reused
    with pytest.raises(ValueError, match="written by another configuration"):
        permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path / "b")] + TINY_MLP[:-2] + ["--checkpoint-every", "5"])


def test_list_and_bad_arguments(capsys):
    assert permutation.main(["--list"]) is None
    assert "mlp-mnist" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        permutation.main(["--preset", "mlp-mnist"])  # no --out
    with pytest.raises(SystemExit):
        permutation.main(["--preset", "vgg-imagenet", "--out", "x"])


def test_replicas_are_spread_over_two_devices_with_the_same_result(tmp_path):
    """Two CPU devices (XLA's host-platform device count) hold one replica each; the numbers do not change."""
    import os
    import subprocess
    import sys

    results = {}
    for devices in (1, 2):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        out = tmp_path / f"d{devices}"
        subprocess.run([sys.executable, "-m", "wvi.experiments.permutation", "--preset", "mlp-mnist", "--out", str(out)]
                       + TINY_MLP, env=env, check=True, capture_output=True)
        results[devices] = json.loads((out / "result.json").read_text())
    assert results[1]["replica_devices"] == 1 and results[2]["replica_devices"] == 2 and results[2]["num_devices"] == 2
    for label in ("naive", "aligned"):
        for split in ("train", "test"):
            assert results[2]["barriers"][label][split] == pytest.approx(results[1]["barriers"][label][split], rel=1e-4, abs=1e-6)
