"""Smoke tests of the full-scale experiment commands on CPU with tiny budgets and offline data (`--data digits`)."""
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wvi import algorithm
from wvi.experiments import permutation

pytestmark = pytest.mark.float32  # the dtype the commands run in (tests/conftest.py)

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
    assert on_disk["alignment"]["seconds"] > 0
    assert set(on_disk["versions"]) >= {"jax", "numpy", "wvi"} and on_disk["device"] and on_disk["seconds"]["wall"] > 0
    assert record["barriers"] == on_disk["barriers"]


TINY_RESNET = ["--data", "digits", "--steps", "2", "--batch-size", "16", "--num-samples", "2", "--num-taus", "3",
               "--checkpoint-every", "2"]


def _one_preset_per_network_and_method():
    """The first preset of each (arch, method, norm): with --data digits replacing the data and the tiny budget
    replacing steps and width, the others (mlp-fashion-mnist, mlp-cifar10, the mnist32 ResNets) would repeat its run
    with another learning rate at most."""
    seen = {}
    for name, preset in permutation.PRESETS.items():
        seen.setdefault((preset.arch, preset.method, preset.norm), name)
    return sorted(seen.values())


@pytest.mark.parametrize("preset", _one_preset_per_network_and_method())
def test_each_network_and_method_writes_a_result(tmp_path, preset):
    """A preset of each network and method end to end at a tiny budget on the offline digits (its own data needs a
    download)."""
    config = permutation.PRESETS[preset]
    tiny = TINY_MLP if config.arch == "mlp" else TINY_RESNET
    record = permutation.main(["--preset", preset, "--out", str(tmp_path)] + tiny)
    check_result(record, tmp_path)
    assert record["alignment"]["cost"] == ("wasserstein" if config.method == "vi" else "mean")
    assert {k: record["config"][k] for k in ("arch", "method", "norm")} == {k: getattr(config, k) for k in ("arch", "method", "norm")}
    if config.arch == "mlp":
        assert record["config"]["width"] == 16


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    uninterrupted = permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path / "a")] + TINY_MLP)
    calls = {"n": 0}
    real_run = algorithm.run

    def interrupted_train(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("the Colab session ended")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(algorithm, "run", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        permutation.main(["--preset", "mlp-mnist", "--out", str(tmp_path / "b")] + TINY_MLP)
    assert (tmp_path / "b" / "checkpoint.npz").exists() and not (tmp_path / "b" / "result.json").exists()
    monkeypatch.setattr(algorithm, "run", real_run)
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
    with pytest.raises(SystemExit):
        permutation.main(["--preset", "mlp-mnist", "--figure", "4", "--out", "x"])  # one or the other
    with pytest.raises(SystemExit):
        permutation.main(["--figure", "6", "--out", "x"])  # Fig. 6 is not one of the command's figures
    with pytest.raises(ValueError, match="unknown figure 6"):
        permutation.run_figure(6, Path("x"))
    with pytest.raises(ValueError, match="width is the setting Fig. 5 sweeps"):
        permutation.run_figure(5, Path("x"), {"width": 64})


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
    assert results[2]["devices"] == ["cpu:0", "cpu:1"]
    for label in ("naive", "aligned"):
        for split in ("train", "test"):
            assert results[2]["barriers"][label][split] == pytest.approx(results[1]["barriers"][label][split], rel=1e-4, abs=1e-6)


def test_figures_name_their_runs_consistently():
    by_name = {}
    for figure in permutation.FIGURES.values():
        assert figure.runs and figure.title and figure.claim and figure.budget
        for r in figure.runs:
            assert r.preset in permutation.PRESETS and all(f in permutation.Preset._fields for f, _ in r.overrides)
            assert by_name.setdefault(r.name, r.config) == r.config  # one name, one configuration
            if figure.x is not None:
                assert dict(r.overrides).get(figure.x, getattr(r.config, figure.x)) == getattr(r.config, figure.x)
    # the preset's own point of a sweep is the plain preset's run, shared with Fig. 4
    assert "mlp-mnist" in [r.name for r in permutation.FIGURES[5].runs]
    assert permutation.run_name("resnet20-cifar10", {"steps": 10, "width": 8}) == "resnet20-cifar10-width8-steps10"
    assert permutation.run_name("mlp-mnist", {"prior_variance": 0.01}) == "mlp-mnist-priorvariance0.01"


def test_device_groups():
    d = ["d0", "d1", "d2", "d3"]
    assert permutation.device_groups(2, d) == [["d0", "d1"], ["d2", "d3"]]  # two per point: replicas sharded
    assert permutation.device_groups(3, d) == [["d0"], ["d1"], ["d2"]]
    assert permutation.device_groups(5, d[:2]) == [["d0"], ["d1"], ["d0"], ["d1"], ["d0"]]  # round robin
    assert permutation.device_groups(4, d[:1]) == [["d0"]] * 4


def test_wide_resnets_evaluate_fewer_samples_at_once():
    resnet = permutation.PRESETS["resnet20-cifar10"]
    assert [permutation.eval_batch(resnet._replace(width=w)) for w in (1, 2, 4, 8, 16)] == [16, 8, 4, 2, 1]
    assert permutation.eval_batch(permutation.PRESETS["mlp-mnist"]._replace(width=2048)) == 16


def test_a_figure_spreads_its_points_over_two_devices_with_the_same_results(tmp_path):
    """Fig. 8's four temperatures on one and on two CPU devices: on two, two threads, two points on each device,
    and the numbers of one device (the points sharing a device train as one program, each pair with its own keys,
    so only rounding differs); a second call finds every result and trains nothing."""
    import os
    import subprocess
    import sys

    results = {}
    for devices in (1, 2):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        command = [sys.executable, "-m", "wvi.experiments.permutation", "--figure", "8", "--out", str(tmp_path / f"d{devices}")]
        subprocess.run(command + TINY_MLP, env=env, check=True, capture_output=True)
        results[devices] = {r.name: json.loads((tmp_path / f"d{devices}" / r.name / "result.json").read_text())
                            for r in permutation.FIGURES[8].runs}
        if devices == 1:
            again = subprocess.run(command + TINY_MLP, env=env, check=True, capture_output=True, text=True)
            assert again.stdout.count("result already there, skipped") == 4
    assert sorted(r["devices"][0] for r in results[2].values()) == ["cpu:0", "cpu:0", "cpu:1", "cpu:1"]
    # the runs sharing a device train as one program: all four on one device, two and two on two
    assert all(len(r["trained_with"]) == 3 for r in results[1].values())
    assert all(len(r["trained_with"]) == 1 and results[2][r["trained_with"][0]]["devices"] == r["devices"]
               for r in results[2].values())
    assert {r["config"]["temperature"] for r in results[1].values()} == {0.1, 0.3, 1.0, 3.0}
    for name, one in results[1].items():
        for label in ("naive", "aligned"):
            for split in ("train", "test"):
                assert results[2][name]["barriers"][label][split] == pytest.approx(one["barriers"][label][split], rel=1e-4, abs=1e-6)


def test_a_figure_program_that_diverges_trains_each_run_again_alone(tmp_path, monkeypatch):
    """Fig. 8's four temperatures on one device form one program; when it diverges, each run trains alone (so
    that the run that diverges is the one named), and a run that diverges alone stops the figure. Another seed's
    runs go into their -seed<k> folders."""
    calls, folders = [], []

    def fake_run_group(presets, outs, names, *args):
        calls.append([p.temperature for p in presets])
        folders.extend(out.name for out in outs)
        if len(presets) > 1 or presets[0].temperature == 0.1 and fail_alone:
            raise algorithm.DivergenceError("segment 1/1 diverged at step 3 of 20", step=3, field="state.mean")
        return [{"preset": names[0]}]

    monkeypatch.setattr(permutation, "run_group", fake_run_group)
    fail_alone = False
    done = permutation.run_figure(8, tmp_path, devices=jax.devices()[:1])
    assert calls == [[0.1, 0.3, 1.0, 3.0], [0.1], [0.3], [1.0], [3.0]] and len(done) == 4
    calls.clear()
    fail_alone = True
    with pytest.raises(algorithm.DivergenceError, match="step 3 of 20"):
        permutation.run_figure(8, tmp_path, devices=jax.devices()[:1])
    assert calls == [[0.1, 0.3, 1.0, 3.0], [0.1]]
    folders.clear()  # another seed's pairs go into the -seed<k> folders the results chapter reads
    fail_alone = False
    permutation.run_figure(8, tmp_path, seed=2, devices=jax.devices()[:1])
    assert folders[:4] == [r.folder(2) for r in permutation.FIGURES[8].runs] and folders[0] == (
        "mlp-mnist-temperature0.1-seed2")


def test_mnist32_is_mnist_with_a_border_of_zeros():
    from wvi.data import registry

    if not (registry.SHIPPED / "mnist").exists():
        pytest.skip("no shipped MNIST in this copy")
    x_train, y_train, x_test, y_test = permutation.load_data("mnist32", "resnet20")
    assert x_train.shape == (60_000, 32, 32, 1) and x_test.shape == (10_000, 32, 32, 1)
    assert float(jnp.abs(x_train[:, :2]).max()) == 0.0 and float(jnp.abs(x_test[:, :, -2:]).max()) == 0.0
    assert float(x_train[:, 2:30, 2:30].max()) == 1.0 and y_train.shape == (60_000,)


def test_run_group_refuses_presets_that_cannot_train_together(tmp_path):
    """Only VI presets that differ in prior variance or temperature share a program; anything else is refused
    before any data is loaded, naming what may differ."""
    vi = permutation.PRESETS["mlp-mnist"]._replace(data="digits", width=8, steps=2)
    outs, names = [tmp_path / "a", tmp_path / "b"], ["a", "b"]
    with pytest.raises(ValueError, match="non-empty list of VI presets"):
        permutation.run_group([vi, vi._replace(method="map")], outs, names)
    with pytest.raises(ValueError, match="may differ only in prior_variance, temperature"):
        permutation.run_group([vi, vi._replace(width=16)], outs, names)
    with pytest.raises(ValueError, match="as many outs and names as presets"):
        permutation.run_group([vi, vi._replace(temperature=0.5)], outs[:1], names)
    assert not (tmp_path / "a").exists()


def test_a_result_of_another_schema_is_not_taken_as_finished(tmp_path):
    """`finished` (what --figure and the campaign skip) accepts only a result of the current schema, which
    `results.py` can read; an older one with the same config is run again."""
    preset = permutation.PRESETS["mlp-mnist"]
    record = {"schema": permutation.SCHEMA, "config": {**preset._asdict(), "seed": 0}}
    (tmp_path / "result.json").write_text(json.dumps(record))
    assert permutation.finished(tmp_path, preset, 0) == record
    assert permutation.finished(tmp_path, preset, 1) is None
    (tmp_path / "result.json").write_text(json.dumps({**record, "schema": 2}))
    assert permutation.finished(tmp_path, preset, 0) is None
    # schema 3 differs from 4 only in the keys of seeds above 0: its seed-0 results stand, its others are rerun
    (tmp_path / "result.json").write_text(json.dumps({**record, "schema": 3}))
    assert permutation.finished(tmp_path, preset, 0) == {**record, "schema": 3}
    seed1 = {"schema": 3, "config": {**preset._asdict(), "seed": 1}}
    (tmp_path / "result.json").write_text(json.dumps(seed1))
    assert permutation.finished(tmp_path, preset, 1) is None


def _drawn_keys(keys_of, seeds, num_segments: int = 6) -> list:
    """Every key a run draws for each seed (`keys_of(seed)` -> its init, train, barrier and accuracy root keys), as
    raw key data: the replicas' two initial keys, the training segments' keys and the two evaluation keys."""
    drawn = []
    for seed in seeds:
        init, train, *evaluation = keys_of(seed)
        drawn += [*jax.random.split(init, 2), *jax.random.split(train, num_segments), *evaluation]
    return [tuple(np.asarray(jax.random.key_data(k)).tolist()) for k in drawn]


def test_seeds_draw_disjoint_keys():
    """No key is drawn by two seeds, or for two uses of one seed (`seed_keys`), so the replica pairs of seeds 0, 1,
    2... are independent by construction; the keys of seed 0 are schema 3's (whose seed-0 results stand). Schema 3's
    derivation, key(seed + j), fails the check (a planted defect: seed 1's initial weights came from seed 0's first
    training keys)."""
    drawn = _drawn_keys(permutation.seed_keys, range(5))
    assert len(set(drawn)) == len(drawn)
    schema3 = lambda seed: [jax.random.key(seed + j) for j in range(4)]  # noqa: E731
    old = _drawn_keys(schema3, range(5))
    assert len(set(old)) < len(old)
    assert _drawn_keys(permutation.seed_keys, [0]) == _drawn_keys(schema3, [0])
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            permutation.seed_keys(bad)
