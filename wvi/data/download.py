"""Downloads into a cache directory, checked against pinned SHA-256s.

`download` writes atomically (a temporary file renamed into place only after its checksum matched), so that a failed
or interrupted download never leaves a half-written cache entry. The cache is `$WVI_DATA`, default `~/.cache/wvi`.

On checksums: a registry (`wvi.data.registry`) pins a SHA-256 for a file only once someone has downloaded it and
recorded the hash. Files without a pinned hash are refused unless the caller passes `allow_unpinned=True`, in which
case the hash of the first download is printed and stored next to the file (trust on first use) and every later
load is checked against it.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Optional


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
