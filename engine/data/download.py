"""Where datasets live on disk, and how a missing file gets there.

Every file creditlab downloads goes to one user cache directory:

    set_data_dir(path)  >  $CREDITLAB_DATA  >  $XDG_CACHE_HOME/creditlab  >  ~/.cache/creditlab
    (on Windows without XDG_CACHE_HOME: %LOCALAPPDATA%\\creditlab)

A download streams to ``<file>.part``, resumes a ``.part`` left by an earlier try with an HTTP
Range request (starting afresh when the server ignores the range), is retried with backoff on
transient errors, is checked against its published checksum, and only then is renamed into place
with ``os.replace``. A file under its final name has therefore always passed its checksum; a broken
download never leaves anything that later loads as data. ``CREDITLAB_OFFLINE=1`` forbids downloads.
Files that were already there (copied in by hand, left by an older version, installed by a system
package) are checked by the loaders in engine.data.registry, with `cached_digest` so that each is hashed
once per process.

Nothing here touches the network at import time. Errors are `DataError`, with a one-line message.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from engine import files
from engine.errors import one_line

ENV_DATA_DIR = "CREDITLAB_DATA"
ENV_OFFLINE = "CREDITLAB_OFFLINE"
CHUNK = 1 << 16


class DataError(RuntimeError):
    """A dataset is missing, broken or cannot be downloaded. The message is one line."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(one_line(message))
        self.reason = one_line(reason) if reason else str(self)   # the cause, without context


class ChecksumError(DataError):
    """A downloaded file does not match its published checksum (the download was deleted)."""


# ------------------------------------------------------------------ where data lives
_data_dir_override: Path | None = None


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "creditlab"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "creditlab"
    return Path.home() / ".cache" / "creditlab"


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Use `path` as the data directory for this process (None: back to $CREDITLAB_DATA/default)."""
    global _data_dir_override
    _data_dir_override = None if path is None else Path(path).expanduser()


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: `path` if given, else set_data_dir's, $CREDITLAB_DATA, or the cache."""
    if path is not None:
        return Path(path).expanduser()
    if _data_dir_override is not None:
        return _data_dir_override
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return default_cache_dir()


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


# ------------------------------------------------------------------ downloading
@dataclass(frozen=True)
class Remote:
    """One file and where to get it: mirrors are tried in order; md5 and/or sha256 must match."""
    filename: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None


class _Transient(Exception):
    """A failure worth another try (connection dropped, truncated body, 5xx, timeout)."""


class _Fatal(Exception):
    """A failure another try of the same URL will not fix (404, no DNS)."""


def _special(path, kind: str) -> DataError:
    return DataError(f"{path}: {kind}, not a regular file, where a dataset file is expected; "
                     "remove it or put the file there")


def refuse_special(path: str | os.PathLike) -> None:
    """DataError when `path` (links followed) is a FIFO, a device or a socket: opening a FIFO
    waits for a writer forever, a device never ends. Absent, a file or a folder: nothing."""
    try:
        kind = files.kind_of(os.stat(path).st_mode)
    except (OSError, ValueError):
        return
    if kind and kind != "a directory":
        raise _special(path, kind)


def open_regular(path: str | os.PathLike):
    """`path` opened for binary reading, or DataError when it is a FIFO, a device or a socket.
    OSError as open() raises it (absent, no permission, a folder: a folder is skipped like an
    absent file)."""
    try:
        return files.open_regular(path)
    except files.NotReadable as exc:
        if exc.kind == "a directory":
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path)) from None
        raise _special(path, exc.kind) from None


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open_regular(path) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# (path, size, mtime_ns, algorithm, of the decompressed content?) -> hex digest
_DIGESTS: dict[tuple[str, int, int, str, bool], str] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


def cached_digest(path: Path, algorithm: str = "md5", content: bytes | None = None) -> str:
    """file_digest(path, algorithm), or with `content` (the file's bytes once decompressed) the
    digest of those, computed once per process for the file as it is now.

    The cache is keyed by path, size and modification time, so a replaced or touched file is
    hashed afresh, while repeated loads of the same 30 MB dataset (tests, sweeps) cost a stat
    instead of ~50 ms of hashing. Raises OSError when the file cannot be read.
    """
    key = (*_file_key(path), algorithm, content is not None)
    if key not in _DIGESTS:
        _DIGESTS[key] = (file_digest(path, algorithm) if content is None
                         else hashlib.new(algorithm, content).hexdigest())
    return _DIGESTS[key]


def _remember(path: Path, remote: Remote) -> None:
    # `path` was just checked (as its .part; os.replace keeps size and mtime): a loader that
    # checks it again finds the digests cached instead of hashing 160 MB a second time.
    key = _file_key(path)
    for algorithm in ("sha256", "md5"):
        expected = getattr(remote, algorithm)
        if expected:
            _DIGESTS[(*key, algorithm, False)] = expected.lower()


def _check(path: Path, remote: Remote) -> tuple[str, str, str] | None:
    """None when `path` matches every checksum given, else (algorithm, expected, got)."""
    for algorithm in ("sha256", "md5"):
        expected = getattr(remote, algorithm)
        if expected:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                return algorithm, expected.lower(), got
    return None


def fetch(remote: Remote, directory: str | os.PathLike, *, retries: int = 2, backoff: float = 1.0,
          timeout: float = 30.0, progress: bool = True) -> Path:
    """`directory/remote.filename`, downloading it first when it is not there yet.

    Tries each mirror with `retries` further tries on transient errors (waiting backoff·2^k
    seconds). Raises `ChecksumError` on a checksum mismatch and `DataError` otherwise.
    """
    directory = Path(directory)
    dest = directory / remote.filename
    refuse_special(dest)
    if dest.is_file():
        return dest
    if offline():
        raise DataError(f"{remote.filename}: not in {directory} and downloads are off "
                        f"({ENV_OFFLINE} is set)", reason=f"{ENV_OFFLINE} is set, downloads are off")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{remote.filename}: cannot create {directory} ({e.strerror or e})") from None
    failures: list[str] = []
    checksum_failure: ChecksumError | None = None
    for url in remote.urls:
        try:
            _fetch_url(url, dest, remote, retries=retries, backoff=backoff, timeout=timeout,
                       progress=progress)
            return dest
        except ChecksumError as e:
            checksum_failure = e
            failures.append(f"{url}: checksum mismatch")
        except DataError as e:
            failures.append(str(e))
    if checksum_failure is not None:
        raise checksum_failure
    reason = "; ".join(failures)
    raise DataError(f"{remote.filename}: download failed ({reason})", reason=reason)


def _fetch_url(url: str, dest: Path, remote: Remote, *, retries: int, backoff: float,
               timeout: float, progress: bool) -> None:
    part = dest.with_name(dest.name + ".part")
    tries = retries + 1
    last = ""
    fresh_retry_used = False
    attempt = 0
    while attempt < tries:
        attempt += 1
        try:
            resumed = _download_once(url, part, timeout=timeout, progress=progress,
                                     desc=remote.filename)
        except _Fatal as e:
            raise DataError(f"{url}: {e}") from None
        except _Transient as e:
            last = str(e)
            if attempt < tries:
                time.sleep(backoff * 2 ** (attempt - 1))
            continue
        bad = _check(part, remote)
        if bad is None:
            os.replace(part, dest)
            _fsync_dir(dest.parent)
            _remember(dest, remote)
            return
        part.unlink(missing_ok=True)
        if resumed and not fresh_retry_used:
            # The kept prefix may be what was wrong: one more try from scratch.
            fresh_retry_used = True
            attempt -= 1
            continue
        algorithm, expected, got = bad
        raise ChecksumError(f"{remote.filename}: {algorithm} checksum mismatch (expected {expected}, "
                            f"got {got}) for {url}; the download was deleted")
    raise DataError(f"{url}: failed after {tries} tries ({last}); a partial download is kept in "
                    f"{part} and the next try resumes it")


def _download_once(url: str, part: Path, *, timeout: float, progress: bool, desc: str) -> bool:
    """Download `url` into `part`, resuming what is there. Returns whether it resumed."""
    try:
        refuse_special(part)                  # writing to a FIFO would wait for a reader
    except DataError as e:
        raise _Fatal(str(e)) from None
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "creditlab (python urllib)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # Our .part is at least as long as the file: check it as it is.
            e.close()
            return True
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise _Fatal(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, socket.gaierror):
            host = urllib.parse.urlsplit(url).hostname
            raise _Fatal(f"cannot resolve {host} (no network?)") from None
        raise _Transient(one_line(e.reason)) from None
    except (OSError, http.client.HTTPException) as e:
        raise _Transient(one_line(e)) from None

    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        resumed = False
        if offset and status == 206:
            content_range = response.headers.get("Content-Range", "")
            start = _range_start(content_range)
            if start != offset:
                raise _Transient(f"server answered range {content_range!r} to a request from "
                                 f"byte {offset}")
            resumed = True
        else:
            offset = 0              # the server ignored the Range header (or there was none)
        total = None if length is None else offset + length
        received = 0
        bar = _progress_bar(total, offset, desc, progress)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as e:
                        raise _Transient(f"connection broke after {offset + received} bytes "
                                         f"({one_line(e)})") from None
                    if not chunk:
                        break
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        finally:
            bar.close()
        if length is not None and received < length:
            raise _Transient(f"truncated: connection closed after {offset + received} of "
                             f"{total} bytes")
        return resumed


def _range_start(content_range: str) -> int | None:
    # "bytes 100-199/200"
    try:
        unit, spec = content_range.split(" ", 1)
        return int(spec.split("-", 1)[0]) if unit.strip() == "bytes" else None
    except ValueError:
        return None


def _progress_bar(total, initial, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, disable=not enabled, leave=False,
                dynamic_ncols=True)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
