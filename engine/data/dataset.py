"""What a loaded dataset is (`Dataset`), and what the registry knows of one before loading it
(`DatasetSpec`). The datasets themselves, by name, are in engine.data.registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from engine.errors import ConfigError


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

    def __post_init__(self):
        # Once here, so that a step's one-hot codes need not check (nor sync) every batch.
        if self.task != "classification":
            return
        for split, y in (("train", self.y_train), ("test", self.y_test)):
            if not y.numel():
                continue
            lo, hi = (v.item() for v in torch.aminmax(y))
            if not (y.dtype == torch.int64 and 0 <= lo and hi < self.n_out):
                raise ConfigError(f"dataset {self.name!r}: the {split} labels must be int64 class "
                                  f"indices in [0, {self.n_out}), got dtype {y.dtype} "
                                  f"with values {lo}..{hi}")

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
    # A validation split, for hyper-parameter searches (the CLI, sweeps): not a lesson's data,
    # so the dashboard's menu leaves it out.
    search_only: bool = False
