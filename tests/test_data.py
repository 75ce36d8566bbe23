"""Tests of wvi.data, offline: the downloader and parsers on fixture files served through file:// URLs."""
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from wvi import data

FIXTURES = Path(__file__).parent / "fixtures" / "uci"


def url(name):
    return (FIXTURES / name).resolve().as_uri()


def test_download_checks_and_caches(tmp_path):
    sha = data.sha256_of(FIXTURES / "housing.data")
    path = data.download(url("housing.data"), "housing.data", sha, tmp_path)
    assert path.read_bytes() == (FIXTURES / "housing.data").read_bytes()
    # A second call reads the cache (the source may be gone).
    assert data.download("file:///nonexistent", "housing.data", sha, tmp_path) == path


def test_checksum_mismatch_leaves_no_cache_entry(tmp_path):
    with pytest.raises(ValueError, match="has SHA-256 [0-9a-f]{64}, expected 0{64}; nothing was cached"):
        data.download(url("housing.data"), "housing.data", "0" * 64, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial download


def test_corrupted_cache_entry_is_reported(tmp_path):
    sha = data.sha256_of(FIXTURES / "housing.data")
    shutil.copy(FIXTURES / "housing_malformed.data", tmp_path / "housing.data")
    with pytest.raises(ValueError, match="cached file .* expected"):
        data.download(url("housing.data"), "housing.data", sha, tmp_path)


def test_unpinned_files_are_refused_unless_trusted_on_first_use(tmp_path):
    with pytest.raises(ValueError, match="no SHA-256 is pinned"):
        data.download(url("housing.data"), "housing.data", None, tmp_path)
    path = data.download(url("housing.data"), "housing.data", None, tmp_path, allow_unpinned=True)
    record = tmp_path / "housing.data.sha256"
    assert record.read_text().strip() == data.sha256_of(path)
    path.write_bytes(b"tampered")
    with pytest.raises(ValueError, match="cached file"):
        data.download(url("housing.data"), "housing.data", None, tmp_path, allow_unpinned=True)


def test_uci_parsers_on_fixtures(tmp_path, monkeypatch):
    for name, fixture in (("boston", "housing.data"), ("wine", "winequality-red.csv"), ("naval", "UCI_CBM_Dataset.zip"),
                          ("kin8nm", "kin8nm.arff")):
        spec = data.UCI_REGRESSION[name]
        monkeypatch.setitem(data.UCI_REGRESSION, name, spec._replace(url=url(fixture), sha256=data.sha256_of(FIXTURES / fixture)))
        x, y = data.uci_regression(name, tmp_path)
        assert x.shape[0] == y.shape[0] >= 3 and np.all(np.isfinite(x))
    x, y = data.uci_regression("boston", tmp_path)
    assert x.shape == (3, 13) and list(y) == [24.0, 21.6, 34.7]
    x, y = data.uci_regression("wine", tmp_path)
    assert x.shape == (3, 11) and list(y) == [5.0, 5.0, 6.0]
    x, y = data.uci_regression("kin8nm", tmp_path)
    assert x.shape == (3, 8) and abs(y[0] - 0.536322) < 1e-12


def test_malformed_files_raise_naming_the_line():
    with pytest.raises(ValueError, match="housing.data: line 2 has 7 fields, expected 14"):
        data.parse_table((FIXTURES / "housing_malformed.data").read_bytes(), "housing.data", 14)
    with pytest.raises(ValueError, match="line 1 holds a field that is not a number"):
        data.parse_table(b"1 2 x\n", "t", 3)
    with pytest.raises(ValueError, match="no @data line"):
        data.parse_arff(b"@relation x\n1,2\n", "x.arff", 2)
    with pytest.raises(ValueError, match="not a zip archive"):
        data.UCI_REGRESSION["naval"].parse(b"not a zip")
    with pytest.raises(ValueError, match="unknown UCI regression set 'mnist'"):
        data.uci_regression("mnist")


def test_standardised_split_uses_training_statistics_only():
    x, y = data.diabetes()
    assert x.shape == (442, 10)
    split = data.standardised_split(x, y, 0.2, seed=0)
    assert split.x_test.shape[0] == 88 and split.x_train.shape[0] == 354
    np.testing.assert_allclose(split.x_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(split.y_train.std(), 1, rtol=1e-12)
    assert abs(split.y_test.mean()) > 1e-6  # test data are not re-centred
    again = data.standardised_split(x, y, 0.2, seed=0)
    np.testing.assert_array_equal(split.x_test, again.x_test)
    with pytest.raises(ValueError, match="test_fraction"):
        data.standardised_split(x, y, 1.5, 0)


def test_toy_regression_leaves_the_gaps_empty():
    x, y = data.toy_regression(0)
    assert x.shape == (90, 1) and y.shape == (90,)
    assert not np.any(((x > 1.5) & (x < 3.0)) | ((x > 4.5) & (x < 6.0)))
    # residuals from x sin x have the stated noise std (90 draws: standard error 0.25/sqrt(180))
    assert abs(np.std(y - x[:, 0] * np.sin(x[:, 0])) - 0.25) < 5 * 0.25 / np.sqrt(180)


def test_digits_split_is_seeded_stratified_and_offline():
    d = data.digits(test_fraction=0.25, seed=0)
    assert d.x_train.shape == (1347, 64) and d.x_test.shape == (450, 64) and d.num_classes == 10
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1
    # stratified: each class's share of the test set is its share of the data, up to one image
    shares = np.bincount(np.concatenate([d.y_train, d.y_test])) / 1797
    assert np.all(np.abs(np.bincount(d.y_test) - 450 * shares) <= 1)
    again = data.digits(test_fraction=0.25, seed=0, images=True)
    np.testing.assert_array_equal(again.x_train.reshape(-1, 64), d.x_train)
    assert again.x_train.shape[1:] == (8, 8, 1)
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        data.digits(test_fraction=1.5)


# ------------------------------------------------------------------ Part III: classification sets
def test_uci_classification_parsers_on_fixtures(tmp_path, monkeypatch):
    fixtures = {"heart": "processed.cleveland.data", "ionosphere": "ionosphere.data",
                "pima": "pima-indians-diabetes.data.csv", "red_wine": "winequality-red.csv"}
    for name, fixture in fixtures.items():
        spec = data.UCI_CLASSIFICATION[name]
        monkeypatch.setitem(data.UCI_CLASSIFICATION, name, spec._replace(url=url(fixture), sha256=data.sha256_of(FIXTURES / fixture)))
    x, y = data.uci_classification("heart", tmp_path)
    assert x.shape == (4, 13) and list(y) == [0, 1, 1, 0]  # the row with "?" is dropped; label: num > 0
    x, y = data.uci_classification("ionosphere", tmp_path)
    assert x.shape == (3, 34) and list(y) == [1, 0, 1]
    x, y = data.uci_classification("pima", tmp_path)
    assert x.shape == (3, 8) and list(y) == [1, 0, 1]
    x, y = data.uci_classification("red_wine", tmp_path)
    assert x.shape == (3, 11) and list(y) == [0, 0, 1]  # quality ≥ 6


def test_uci_classification_broken_files_raise_and_cache_nothing(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="ionosphere.data: line 2 has label 'x', expected one of"):
        data.UCI_CLASSIFICATION["ionosphere"].parse((FIXTURES / "ionosphere_malformed.data").read_bytes())
    with pytest.raises(ValueError, match="line 2 has 7 fields, expected 9"):
        data.UCI_CLASSIFICATION["pima"].parse((FIXTURES / "pima_truncated.csv").read_bytes())
    spec = data.UCI_CLASSIFICATION["pima"]
    monkeypatch.setitem(data.UCI_CLASSIFICATION, "pima", spec._replace(url=url("pima_truncated.csv"), sha256="1" * 64))
    with pytest.raises(ValueError, match="expected 1{64}; nothing was cached"):
        data.uci_classification("pima", tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no SHA-256 is pinned"):
        data.uci_classification("heart", tmp_path)
    with pytest.raises(ValueError, match="unknown UCI classification set 'iris'"):
        data.uci_classification("iris", tmp_path)
    with pytest.raises(ValueError, match="unknown classification set 'iris'"):
        data.binary_classification("iris")


def test_offline_binary_sets_split_standardise_and_add_an_intercept():
    s = data.binary_classification("breast_cancer", test_fraction=0.2, seed=0)
    assert s.x_train.shape == (455, 31) and s.x_test.shape == (114, 31)
    np.testing.assert_allclose(s.x_train[:, :-1].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(s.x_train[:, :-1].std(0), 1, rtol=1e-12)
    assert np.all(s.x_train[:, -1] == 1) and np.all(s.x_test[:, -1] == 1)
    assert abs(s.y_train.mean() - s.y_test.mean()) < 0.01  # stratified
    again = data.binary_classification("breast_cancer", test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(s.x_test, again.x_test)
    x, y = data.diabetes_binary()
    assert x.shape == (442, 10) and set(np.unique(y)) == {0, 1} and y.sum() == 221  # the median splits it in half
    with pytest.raises(ValueError, match="y must hold labels 0 or 1"):
        data.binary_split(np.ones((4, 2)), np.array([0, 1, 2, 1]))


def test_parse_labelled_names_the_line_of_the_file():
    """Dropped lines (a header, missing values) do not shift the line numbers in the errors."""
    raw = b"a,b,label\n1,?,g\n1,2,b\n1,2,3,g\n"
    with pytest.raises(ValueError, match="t.csv: line 4 has 4 fields, expected 3"):
        data.parse_labelled(raw, "t.csv", 3, delimiter=",", skip_header=True, labels={"g": 1, "b": 0}, missing="?")
    table = data.parse_labelled(raw[:-9], "t.csv", 3, delimiter=",", skip_header=True, labels={"g": 1, "b": 0}, missing="?")
    np.testing.assert_array_equal(table, [[1.0, 2.0, 0.0]])


# ------------------------------------------------------------------ Part V at full scale: image sets
IMAGES = Path(__file__).parent / "fixtures" / "images"
REPOSITORY_DATA = Path(data.registry.__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True)
def _no_shipped_data(tmp_path_factory, monkeypatch):
    """The tests of the download path see no shipped copy (the repository's data/mnist would be read first)."""
    monkeypatch.setattr(data.registry, "SHIPPED", tmp_path_factory.mktemp("no-shipped-data"))


def _local_image_source(monkeypatch, name):
    """Point an image set at the fixture folder, with the fixtures' hashes pinned."""
    source = data.IMAGE_SETS[name]
    pinned = {remote: data.sha256_of(IMAGES / remote) for remote in source.sha256}
    monkeypatch.setitem(data.IMAGE_SETS, name, source._replace(url=IMAGES.resolve().as_uri() + "/", sha256=pinned))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_sets_parse_the_original_format(tmp_path, monkeypatch, name):
    _local_image_source(monkeypatch, name)
    split = data.image_classification(name, tmp_path)
    assert split.x_train.shape == (3, 28, 28, 1) and split.x_test.shape == (2, 28, 28, 1)
    assert list(split.y_train) == [5, 0, 4] and list(split.y_test) == [7, 2]
    # pixel (0, 0) holds the label: images and labels stay paired
    np.testing.assert_allclose(split.x_train[:, 0, 0, 0] * 255, split.y_train, atol=1e-4)
    assert split.x_train.dtype == np.float32 and 0 <= split.x_train.min() and split.x_train.max() <= 1
    assert data.image_classification(name, tmp_path, flat=True).x_test.shape == (2, 784)
    assert (tmp_path / (data.IMAGE_SETS[name].prefix + "t10k-labels-idx1-ubyte.gz")).exists()


def test_cifar10_parses_the_binary_tarball(tmp_path, monkeypatch):
    _local_image_source(monkeypatch, "cifar10")
    split = data.image_classification("cifar10", tmp_path)
    assert split.x_train.shape == (10, 32, 32, 3) and split.x_test.shape == (2, 32, 32, 3)
    assert list(split.y_train) == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4] and list(split.y_test) == [3, 8]
    np.testing.assert_allclose(split.x_train[:, 0, 0, 0] * 255, split.y_train, atol=1e-4)  # red plane, first pixel


def test_broken_image_files_raise_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not a complete gzip file"):
        data.parse_idx((IMAGES / "truncated-images-idx3-ubyte.gz").read_bytes(), "x.gz")
    with pytest.raises(ValueError, match=r"needs 1568 bytes, found 1000; the file is truncated"):
        data.parse_idx(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 28, 28)) + bytes(1000), "x")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.parse_idx(b"hello world", "x")
    with pytest.raises(ValueError, match="not a whole number of 3073-byte CIFAR-10 records"):
        data.parse_cifar_batch((IMAGES / "cifar_truncated_batch.bin").read_bytes(), "b.bin")
    with pytest.raises(ValueError, match="not a complete CIFAR-10 binary tarball"):
        data.read_cifar10(IMAGES / "truncated-images-idx3-ubyte.gz")
    # a checksum mismatch caches nothing
    source = data.IMAGE_SETS["mnist"]
    monkeypatch.setitem(data.IMAGE_SETS, "mnist", source._replace(url=IMAGES.resolve().as_uri() + "/",
                                                                  sha256=dict.fromkeys(source.sha256, "2" * 64)))
    with pytest.raises(ValueError, match="expected 2{64}; nothing was cached"):
        data.image_classification("mnist", tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown image set 'svhn'"):
        data.image_classification("svhn", tmp_path)


def test_every_image_file_has_a_pinned_hash():
    for name, source in data.IMAGE_SETS.items():
        for remote, sha in {**source.sha256, **source.raw_sha256}.items():
            assert isinstance(sha, str) and len(sha) == 64 and int(sha, 16) >= 0, (name, remote)
        assert set(source.raw_sha256) <= set(source.sha256), name


def test_a_decompressed_copy_with_the_pinned_hash_is_read_instead_of_downloading(tmp_path, monkeypatch):
    import gzip

    source = data.IMAGE_SETS["mnist"]
    raw = {remote: gzip.decompress((IMAGES / remote).read_bytes()) for remote in source.sha256}
    for remote, content in raw.items():
        (tmp_path / ("mnist-" + remote.removesuffix(".gz"))).write_bytes(content)
    pinned = {remote: hashlib.sha256(content).hexdigest() for remote, content in raw.items()}
    # an unreachable URL: any download attempt would fail
    monkeypatch.setitem(data.IMAGE_SETS, "mnist", source._replace(url="http://127.0.0.1:9/", raw_sha256=pinned))
    split = data.image_classification("mnist", tmp_path)
    assert list(split.y_train) == [5, 0, 4] and list(split.y_test) == [7, 2]
    assert not any(p.suffix == ".gz" for p in tmp_path.iterdir())
    (tmp_path / "mnist-t10k-labels-idx1-ubyte").write_bytes(raw["t10k-labels-idx1-ubyte.gz"][:-1])
    with pytest.raises(ValueError, match=r"decompressed copy .*mnist-t10k-labels-idx1-ubyte has SHA-256 [0-9a-f]{64}, "
                                         r"expected"):
        data.image_classification("mnist", tmp_path)


def test_random_shifts_move_each_image_by_at_most_max_shift_with_zero_fill():
    import jax

    images = np.arange(6 * 4 * 5 * 2, dtype=np.float32).reshape(6, 4, 5, 2) + 1.0  # no zeros of its own
    out = np.asarray(data.random_shifts(jax.random.key(0), images, max_shift=1))
    assert out.shape == images.shape

    def shifted(image, dy, dx):
        padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
        return padded[1 - dy:1 - dy + 4, 1 - dx:1 - dx + 5]

    seen = set()
    for image, result in zip(images, out):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if np.array_equal(shifted(image, dy, dx), result)]
        assert len(matches) == 1, "each output is the image moved by one offset in {-1, 0, 1}², zeros shifted in"
        seen.add(matches[0])
    many = np.asarray(data.random_shifts(jax.random.key(1), np.ones((500, 3, 3, 1), np.float32), max_shift=1))
    # the centre pixel survives every shift; the 4 corners are zeroed by 5 of the 9 offsets each
    assert np.all(many[:, 1, 1] == 1) and 0.4 < np.mean(many[:, 0, 0] == 0) < 0.7
    flat = images.reshape(6, -1)
    np.testing.assert_array_equal(data.random_shifts(jax.random.key(0), flat, 1, image_shape=(4, 5, 2)),
                                  out.reshape(6, -1))
    np.testing.assert_array_equal(data.random_shifts(jax.random.key(0), images, max_shift=0), images)
    jitted = jax.jit(lambda k, x: data.random_shifts(k, x, 1))
    np.testing.assert_array_equal(jitted(jax.random.key(0), images), out)
    with pytest.raises(ValueError, match=r"x must be images \(N, H, W, C\)"):
        data.random_shifts(jax.random.key(0), flat)
    with pytest.raises(ValueError, match="matching image_shape"):
        data.random_shifts(jax.random.key(0), flat, image_shape=(4, 4, 2))
    with pytest.raises(ValueError, match="max_shift must be an integer >= 0"):
        data.random_shifts(jax.random.key(0), images, max_shift=-1)


def test_a_shipped_copy_is_read_before_the_cache_or_a_download(tmp_path, monkeypatch):
    import gzip

    from wvi.data import registry

    source = data.IMAGE_SETS["mnist"]
    shipped = tmp_path / "shipped"
    (shipped / "mnist").mkdir(parents=True)
    raw = {remote: gzip.decompress((IMAGES / remote).read_bytes()) for remote in source.sha256}
    for remote, content in raw.items():
        (shipped / "mnist" / remote).write_bytes(gzip.compress(content, mtime=0))
    pinned = {remote: hashlib.sha256(content).hexdigest() for remote, content in raw.items()}
    monkeypatch.setattr(registry, "SHIPPED", shipped)
    # an unreachable URL: any download attempt would fail
    monkeypatch.setitem(data.IMAGE_SETS, "mnist", source._replace(url="http://127.0.0.1:9/", raw_sha256=pinned))
    cache = tmp_path / "cache"
    split = data.image_classification("mnist", cache)
    assert list(split.y_train) == [5, 0, 4] and list(split.y_test) == [7, 2]
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached, nothing downloaded
    (shipped / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw["t10k-labels-idx1-ubyte.gz"][:-1]))
    with pytest.raises(ValueError, match=r"shipped file .*t10k-labels-idx1-ubyte.gz decompresses to SHA-256 "
                                         r"[0-9a-f]{64}, expected"):
        data.image_classification("mnist", cache)
    (shipped / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(ValueError, match="is not a complete gzip file"):
        data.image_classification("mnist", cache)


def test_the_shipped_mnist_matches_its_pinned_hashes(monkeypatch):
    """The repository's data/mnist files (if this is a checkout that has them) decompress to the pinned IDX files."""
    from wvi.data import registry

    monkeypatch.setattr(registry, "SHIPPED", REPOSITORY_DATA)  # the autouse fixture points it elsewhere
    folder = registry.SHIPPED / "mnist"
    if not folder.exists():
        pytest.skip("no data/ folder next to the package (an installed copy)")
    source = data.IMAGE_SETS["mnist"]
    for remote in source.sha256:
        raw = registry._shipped_bytes("mnist", source, remote)
        assert raw is not None and hashlib.sha256(raw).hexdigest() == source.raw_sha256[remote]
