"""Reading a file that anyone may have put there (a run folder, a sweep file, a dataset): only a
regular file, and no more of it than a limit.

A FIFO would block its open forever and a device (/dev/zero) never ends: the file is opened
with O_NONBLOCK, which changes nothing for a regular file, and what it is is checked on the open
descriptor, so nothing can be swapped in between. The size is checked before reading, and the
read stops after limit + 1 bytes should the file grow meanwhile.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class NotReadable(ValueError):
    """Not a regular file, or larger than allowed; the message says which ("it is a FIFO, not a
    regular file"), `kind` what it is instead (None when it is too large)."""

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.kind = kind


def kind_of(mode: int) -> str | None:
    """What a file of `mode` is when it is not a regular file ("a FIFO", …); None when it is."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """`path` opened for binary reading; NotReadable when it is not a regular file, OSError when
    it cannot be opened (absent, no permission)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind:
            raise NotReadable(f"it is {kind}, not a regular file", kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int | None) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (None: any number);
    NotReadable for anything else, OSError when it cannot be opened."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise NotReadable(f"it has {size:,} bytes, more than the {limit:,} allowed")
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise NotReadable(f"it has more than the {limit:,} bytes allowed")
    return data
