"""CIFAR-10 and CIFAR-100 from their python-pickle release: the extracted folder or the tar.gz.

The batches are unpickled by an unpickler that builds only dicts, lists, bytes and numpy arrays,
so a tampered file cannot run code; each file or the archive is held to its published md5 first.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from engine.data.files import DELETE, DOWNLOAD_OPTIONS, is_present, require_md5, unpacked_bytes
from engine.data.download import ENV_DATA_DIR, DataError, Remote, fetch, open_regular
from engine.errors import one_line

# Checksums: the md5s on Krizhevsky's CIFAR page (the same as torchvision.datasets uses).
CIFAR = {
    "cifar10": {"archive": "cifar-10-python.tar.gz", "folder": "cifar-10-batches-py",
                "urls": ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"],
                "md5": "c58f30108f718f92721af3b95e74349a", "release": "CIFAR-10",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "label_key": b"labels", "names_key": b"label_names",
                "n_out": 10, "n_train": 50000, "n_test": 10000,
                # each file of the extracted folder (the same list as torchvision's)
                "files_md5": {"data_batch_1": "c99cafc152244af753f735de768cd75f",
                              "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                              "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                              "data_batch_4": "634d18415352ddfa80567beed471001a",
                              "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                              "test_batch": "40351d587109b95175f43aff81a1287e",
                              "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}},
    "cifar100": {"archive": "cifar-100-python.tar.gz", "folder": "cifar-100-python",
                 "urls": ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"],
                 "md5": "eb9058c3a382ffc7106e4002c42a8d85", "release": "CIFAR-100",
                 "train": ["train"], "test": ["test"],
                 "meta": "meta", "label_key": b"fine_labels", "names_key": b"fine_label_names",
                 "n_out": 100, "n_train": 50000, "n_test": 10000,
                 "files_md5": {"train": "16019d7e3df5f24257cddd939b257f8d",
                               "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                               "meta": "7973b15100ade9c7d40fb424638fde48"}},
}


# The real archives hold 9 (CIFAR-10) and 5 entries; a tar of millions of empty ones would keep a
# TarInfo each.
MAX_ENTRIES = 1000


def _max_bytes(info: dict) -> int:
    """The most the release's files can hold together, unpacked: 3,072 bytes of pixels an image
    and, generously, 256 of label, file name and pickle framing (the real files have ~32), plus
    1 MiB for the rest. Bounds each file, the archive and what it may inflate to (~200 MB)."""
    return (info["n_train"] + info["n_test"]) * (3072 + 256) + (1 << 20)


class _Bounded:
    """Reads from `f` (all tarfile's stream mode asks of it) but refuses, with a one-line
    DataError, to go past `limit` bytes: a tar.gz's members (or a long-name entry) may say they
    are many GB, and tarfile reads a long name whole."""

    def __init__(self, f, limit: int, archive: Path):
        self.f, self.left, self.limit, self.archive = f, limit, limit, archive

    def read(self, n: int = -1) -> bytes:
        n = self.left + 1 if n is None or n < 0 else min(n, self.left + 1)
        data = self.f.read(n)
        self.left -= len(data)
        if self.left < 0:
            raise DataError(f"{self.archive}: the archive unpacks to more than {self.limit:,} "
                            f"bytes, more than the official release holds; it is not the official "
                            f"one: {DELETE}")
        return data


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts, lists, bytes and numpy arrays only, no other code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("copy_reg", "_reconstructor"),
                ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
                ("_codecs", "encode")}       # how Python 3 writes bytes at protocol 2

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")
        if module.startswith("numpy") and module.endswith("multiarray"):
            try:
                import numpy._core.multiarray as multiarray
            except ImportError:                                   # numpy < 2
                import numpy.core.multiarray as multiarray
            return getattr(multiarray, name)
        if module == "numpy":
            return getattr(np, name)
        return super().find_class({"copy_reg": "copyreg", "__builtin__": "builtins"}.get(module, module), name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        out = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure here means a broken file
        raise DataError(f"{where}: not a readable CIFAR pickle ({one_line(e)})") from None
    if not isinstance(out, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(out).__name__}, not a dict)")
    return out


def _cifar_members_from_dir(folder: Path, names: list[str], info: dict) -> dict[str, bytes] | None:
    if not all([is_present(folder / n) for n in names]):     # all checked: a FIFO is refused
        return None
    limit = _max_bytes(info)
    for n in names:
        require_md5(folder / n, info["files_md5"][n], f"official {info['release']} release", DELETE,
                     limit)
    return {n: unpacked_bytes(folder / n, DELETE, limit) for n in names}


def _cifar_members_from_tar(archive: Path, folder: str, names: list[str], limit: int) -> dict[str, bytes]:
    """The members `names` of `folder` in the tar.gz, reading no more than `limit` bytes of it
    unpacked, nor more than MAX_ENTRIES entries."""
    wanted = {f"{folder}/{n}": n for n in names}
    out: dict[str, bytes] = {}
    try:
        with open_regular(archive) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz, \
                tarfile.open(fileobj=_Bounded(gz, limit, archive), mode="r|") as tar:
            for i, member in enumerate(tar):
                if i >= MAX_ENTRIES:
                    raise DataError(f"{archive}: the archive has more than {MAX_ENTRIES:,} entries, "
                                    f"the official ones fewer than 10; it is not the official one: "
                                    f"{DELETE}")
                key = wanted.get(member.name.lstrip("./"))
                if key is not None and member.isfile():
                    f = tar.extractfile(member)
                    out[key] = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: cannot read the archive ({one_line(e)}); "
                        "it is truncated or corrupt — delete it and retry") from None
    missing = sorted(set(names) - set(out))
    if missing:
        raise DataError(f"{archive}: the archive lacks {folder}/{missing[0]}")
    return out


def cifar_arrays(name: str, root: Path):
    info = CIFAR[name]
    names = info["train"] + info["test"] + [info["meta"]]
    members = None
    where = ""
    for base in (root / name, root):
        members = _cifar_members_from_dir(base / info["folder"], names, info)
        if members is not None:
            where, source = str(base / info["folder"]), "local files"
            break
    if members is None:
        archive = next((b / info["archive"] for b in (root / name, root) if is_present(b / info["archive"])),
                       None)
        source = "local files"
        if archive is None:
            target = root / name
            remote = Remote(info["archive"], tuple(info["urls"]), md5=info["md5"])
            try:
                archive = fetch(remote, target, **DOWNLOAD_OPTIONS)
            except DataError as e:
                raise DataError(
                    f"{name}: not found in {target} and the download failed ({e.reason}); download "
                    f"{info['archive']} from {info['urls'][0]} into {target} (or its extracted "
                    f"{info['folder']}/), or set {ENV_DATA_DIR}") from None
            source = "downloaded"
        # Found or just downloaded: either way its digest is checked (cached after a download).
        require_md5(archive, info["md5"], f"official {info['release']} release", DELETE,
                     _max_bytes(info))
        members = _cifar_members_from_tar(archive, info["folder"], names, _max_bytes(info))
        where = str(archive)

    def split(batch_names):
        xs, ys = [], []
        for n in batch_names:
            batch = _unpickle(members[n], f"{where}:{n}")
            x, y = batch.get(b"data"), batch.get(info["label_key"])
            if x is None or y is None:
                raise DataError(f"{where}:{n}: no b'data' or {info['label_key']!r} in the batch")
            x = np.asarray(x)
            y = np.asarray(y, dtype=np.int64)
            if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
                raise DataError(f"{where}:{n}: data {x.shape} {x.dtype} with {len(y)} labels, "
                                "expected (n, 3072) uint8 and n labels")
            if len(y) and (y.min() < 0 or y.max() >= info["n_out"]):
                raise DataError(f"{where}:{n}: labels outside 0–{info['n_out'] - 1}")
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = split(info["train"])
    x_te, y_te = split(info["test"])
    for x, n, part in ((x_tr, info["n_train"], "train"), (x_te, info["n_test"], "test")):
        if len(x) != n:                   # a second line of defence, as for the IDX files
            raise DataError(f"{where}: {len(x)} {part} images, the official {info['release']} "
                            f"release has {n}: {DELETE}")
    meta_batch = _unpickle(members[info["meta"]], f"{where}:{info['meta']}")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta_batch.get(info["names_key"], [])]
    return x_tr, y_tr, x_te, y_te, {"source": source, "path": where, "variant": "full",
                                     "split": "official train/test", "classes": classes}
