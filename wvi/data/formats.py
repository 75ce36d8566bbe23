"""Parsers of the data sets' original file formats: numeric text tables, ARFF, zipped tables, IDX (MNIST and
Fashion-MNIST) and CIFAR-10's binary batches. Every parser raises a `ValueError` naming the file and what is wrong
with it (the line, the magic number, the missing bytes): a truncated or corrupted download never parses silently.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np


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


def from_zip(member: str, inner: Callable[[bytes], np.ndarray]) -> Callable[[bytes], np.ndarray]:
    """A parser of a zip archive that applies `inner` to its member `member`."""
    def parse(raw: bytes) -> np.ndarray:
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                return inner(archive.read(member))
        except (zipfile.BadZipFile, KeyError) as err:
            raise ValueError(f"not a zip archive holding {member!r}: {err}") from None
    return parse


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


CIFAR10_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)


def read_cifar10(path: Path) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) of CIFAR-10 from the binary tarball at `path`."""
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
