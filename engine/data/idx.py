"""The IDX format of MNIST and Fashion-MNIST: finding the four files and reading one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.data.files import DELETE, BadHeader, is_present, unpacked_bytes
from engine.data.download import DataError
from engine.errors import one_line

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# read_idx's bound, for a file of no known dataset: 20 times full MNIST's largest file.
MAX_IDX_BYTES = 1 << 30


def read_idx(path: str | os.PathLike, limit: int = MAX_IDX_BYTES) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of its stated shape; DataError when broken or
    when its header states more than `limit` bytes."""
    path = Path(path)
    return parse_idx(unpacked_bytes(path, DELETE, limit, idx_header), path)


def idx_size(n: int, item_shape: tuple[int, ...] = ()) -> int:
    """The size of an IDX file of n uint8 items of `item_shape`: what a dataset's file can be."""
    return 4 + 4 * (1 + len(item_shape)) + n * int(np.prod(item_shape, dtype=np.int64))


def idx_header(read, path: Path) -> tuple[bytes, int]:
    """The header of an IDX stream, read with `read(n)`, and the size of the file it states: its
    shape times its item size, so that no more is ever read than a header of that size promises."""
    head = read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
        raise BadHeader(f"{path}: not an IDX file (bad magic number)")
    dims = read(4 * head[3])
    if len(dims) < 4 * head[3]:
        raise BadHeader(f"{path}: truncated IDX header")
    items = int(np.prod([int(d) for d in np.frombuffer(dims, ">u4")], dtype=object))   # no overflow
    return head + dims, len(head) + len(dims) + items * np.dtype(_IDX_TYPES[head[2]]).itemsize


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=object)) * dtype.itemsize   # no int64 overflow
    if len(raw) != expected:
        raise DataError(f"{path}: IDX file has {len(raw)} bytes, its header says {expected}; "
                        "the file is truncated or corrupt")
    try:
        return np.frombuffer(raw, dtype, offset=header).reshape(shape)
    except ValueError as e:
        raise DataError(f"{path}: not a readable IDX file ({one_line(e)})") from None


def find_idx(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in `directory` (.gz or uncompressed; '-idx' or '.idx'), or None."""
    found = {}
    for stem in IDX_FILES:
        dotted = stem.replace("-idx", ".idx")
        for candidate in (stem + ".gz", stem, dotted + ".gz", dotted):
            if is_present(directory / candidate):         # a FIFO or a device there: DataError
                found[stem] = directory / candidate
                break
        else:
            return None
    return found
