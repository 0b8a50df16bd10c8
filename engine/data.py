"""Datasets by name, as tensors that live on the training device.

Data moves to the device once; the trainer slices batches from these tensors. Every dataset
has a fixed train/test split that does not depend on the run's seed, so runs with different
seeds are compared on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


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

    def to(self, device: torch.device) -> "Dataset":
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return Dataset(self.name, n_in=self.n_in, n_out=self.n_out, task=self.task,
                       meta=self.meta, **moved)


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[..., Dataset]
    task: str
    description: str


def load_digits() -> Dataset:
    """scikit-learn's embedded 8×8 digits (1,797 images), pixels scaled to [0, 1].

    A fixed stratified 80/20 split (random_state=0) so every run sees the same test set.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return Dataset("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                   torch.from_numpy(x_te), torch.from_numpy(y_te), n_in=64, n_out=10,
                   task="classification",
                   meta={"source": "sklearn.datasets.load_digits", "split": "stratified 80/20, random_state=0"})


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


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(lambda cfg=None: load_digits(), "classification",
                          "8×8 handwritten digits embedded in scikit-learn (1,437 train / 360 test)"),
    "teacher": DatasetSpec(lambda cfg=None: load_teacher(cfg.teacher if cfg else "linear"), "regression",
                           "synthetic teacher–student regression, 30 inputs → 10 outputs"),
}


def load_dataset(name: str, cfg=None) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not allowed; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name].load(cfg)
