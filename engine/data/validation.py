"""Validation splits: a dataset whose training set is its parent's minus a fixed, stratified
held-out part, and whose "test" set is that held-out part. Hyper-parameter searches train and
score on these (`fashion-mnist-val`, `mnist-val` in engine.data.registry), so the parent's test
set is never looked at while a setting is chosen.

The held-out part is the same for every run (it does not depend on the run's seed): within each
class, a fixed permutation (numpy's generator seeded with SPLIT_SEED) puts the first
round(n_class · FRACTION) examples aside.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.data.dataset import Dataset

FRACTION = 1 / 6              # 10,000 of Fashion-MNIST's / MNIST's 60,000; 667 of the 4,000-image subset
SPLIT_SEED = 0
SUFFIX = "-val"


def held_out(labels: np.ndarray, fraction: float = FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
    """Sorted indices of the held-out examples: round(n_c · fraction) of each class c."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picked.append(rng.permutation(idx)[:int(round(len(idx) * fraction))])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def carve(parent: Dataset, fraction: float = FRACTION, seed: int = SPLIT_SEED) -> Dataset:
    """`parent`'s training set split into (train minus held-out, held-out); its test set dropped."""
    if parent.task != "classification":
        raise ValueError(f"{parent.name}: a validation split is carved from labelled classification data")
    val = held_out(parent.y_train.cpu().numpy(), fraction, seed)
    keep = np.ones(len(parent.y_train), dtype=bool)
    keep[val] = False
    train, val_t = torch.from_numpy(np.flatnonzero(keep)), torch.from_numpy(val)
    meta = {**parent.meta, "n_train": int(keep.sum()), "n_test": int(len(val)),
            "split": f"{parent.meta.get('split', 'train/test')}; validation: a stratified {fraction:.3g} "
                     f"of the training set (seed {seed}) is the test set, the parent's test set is unused",
            "validation_of": parent.name}
    return Dataset(parent.name + SUFFIX, parent.x_train[train], parent.y_train[train],
                   parent.x_train[val_t], parent.y_train[val_t], n_in=parent.n_in, n_out=parent.n_out,
                   task=parent.task, meta=meta, image_shape=parent.image_shape)


def parent_name(dataset: str) -> str:
    """The dataset a validation split was carved from (the name itself for any other)."""
    return dataset[:-len(SUFFIX)] if dataset.endswith(SUFFIX) else dataset
