"""A synthetic teacher–student regression task (the "teacher" dataset): no files, no download."""

from __future__ import annotations

import torch

from engine.data.dataset import Dataset


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
