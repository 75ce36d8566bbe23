"""Data for the book, by concern: `download` (a cache with SHA-256 checks), `formats` (parsers of the original file
formats), `registry` (the data sets by name: offline sets shipped inside a dependency, UCI tables, image sets) and
`splits` (one `Split` type, seeded and standardised), `augment` (random shifts of images). The names below are the package's public interface, so that
`wvi.data.digits()` or `wvi.data.download(...)` need no submodule.

Offline (what the book and CI use): `diabetes()`, `binary_classification(name)` for "breast_cancer" and "diabetes"
(Part III), `digits()` (Part V), `toy_regression(seed)` (Part IV). Online (Colab, GPU): `uci_regression(name)`,
`uci_classification(name)`, `image_classification(name)`.
"""
from wvi.data.augment import random_shifts
from wvi.data.download import cache_dir, download, sha256_of
from wvi.data.formats import (CIFAR10_BATCHES, CIFAR_RECORD, IDX_TYPES, from_zip, parse_arff, parse_cifar_batch,
                              parse_idx, parse_labelled, parse_table, read_cifar10)
from wvi.data.registry import (DIABETES_THRESHOLD, IMAGE_SETS, OFFLINE_BINARY, TOY_GAPS, UCI_CLASSIFICATION,
                               UCI_REGRESSION, ImageSource, TableSource, binary_classification, breast_cancer,
                               diabetes, diabetes_binary, digits, image_classification, label_column, target_column,
                               toy_regression, uci_classification, uci_regression)
from wvi.data.splits import Split, binary_split, standardised_split

__all__ = ["CIFAR10_BATCHES", "CIFAR_RECORD", "DIABETES_THRESHOLD", "IDX_TYPES", "IMAGE_SETS", "OFFLINE_BINARY",
           "TOY_GAPS", "UCI_CLASSIFICATION", "UCI_REGRESSION", "ImageSource", "Split", "TableSource",
           "binary_classification", "binary_split", "breast_cancer", "cache_dir", "diabetes", "diabetes_binary",
           "digits", "download", "from_zip", "image_classification", "label_column", "parse_arff",
           "parse_cifar_batch", "parse_idx", "parse_labelled", "parse_table", "random_shifts", "read_cifar10", "sha256_of",
           "standardised_split", "target_column", "toy_regression", "uci_classification", "uci_regression"]
