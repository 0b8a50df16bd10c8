"""The loss a network is trained on, per sample.

Per-sample losses are needed by node perturbation (L̃ − L is taken sample by sample) and by
the regression of B (per-sample errors δ). Forward-weight gradients use the batch *mean*, so
learning rates do not depend on the batch size. (The paper sums over a batch of 32: its
lr 4e-4 corresponds to lr 0.0128 here.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Objective:
    def __init__(self, kind: str, task: str, n_out: int):
        self.kind, self.task, self.n_out = kind, task, n_out
        self._codes: tuple | None = None      # (labels, their version, dtype, one-hot codes)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Regression targets for ½‖ŷ − y‖²: one-hot codes for class labels.

        A step asks for the same batch's codes several times (clean pass, noisy pass, the
        metrics' reference): the last batch's are kept, while its labels are unchanged."""
        if self.task != "classification":
            return y
        dtype, memo = torch.get_default_dtype(), self._codes
        if memo is not None and memo[0] is y and memo[1] == y._version and memo[2] == dtype:
            return memo[3]
        # scatter_, not F.one_hot: one_hot checks the labels' range with a host sync every step
        # (a stall on a GPU); a Dataset's labels are checked once, when it is built
        codes = torch.zeros(y.shape[0], self.n_out, dtype=dtype, device=y.device)
        codes.scatter_(1, y.unsqueeze(1), 1.0)
        self._codes = (y, y._version, dtype, codes)
        return codes

    def per_sample(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "ce":
            return F.cross_entropy(out, y, reduction="none")
        return 0.5 * (out - self.targets(y)).pow(2).sum(1)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Per-sample 0/1 correctness, or None for regression tasks."""
        if self.task != "classification":
            return None
        return (out.argmax(1) == y).to(out.dtype)
