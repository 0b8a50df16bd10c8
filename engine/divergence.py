"""Which members of a run have diverged, and from which step, found without syncing the device
each step.

Every step's loss, summed per member, goes into a small device buffer (one op, no sync); the
buffer is folded into each member's first non-finite step when it is full and at logged steps,
and only the logged steps read that back. A member's first bad step is then the step its single
run would report, however many steps went by before a logged one.

In a population a diverged member is left behind, not the population: members share no
arithmetic (engine/members.py), so its NaNs stay in its own block, and the others train on as
their single runs would. The trainer reports it as diverged from then on (NaN in its records)
and stops only when no member is left.
"""

from __future__ import annotations

import torch

LOSS_LOG = 64              # steps whose loss sums are held on the device between checks


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; `step` is the first step where it did."""

    def __init__(self, step: int, hint: str = "", where: str = ""):
        super().__init__(f"the run diverged: the training loss became NaN or infinite at step {step}"
                         + (f" {where}" if where else "") + (f"; {hint}" if hint else ""))
        self.step = step


class LossWatch:
    """Each member's first non-finite training loss, kept on the device."""

    def __init__(self, members: int, device):
        self.members = members
        self.first_bad = torch.full((members,), -1, dtype=torch.long, device=device)
        self.at: list[int | None] = [None] * members      # known first bad steps (read at logged steps)
        self._log: torch.Tensor | None = None
        self._n = 0
        self._step = 0                                     # the step of the last logged loss

    def log(self, loss: torch.Tensor, step: int) -> None:
        """Remember step `step`'s per-sample losses (members' rows stacked), summed per member."""
        log = self._log
        if log is None or log.dtype != loss.dtype:
            if log is not None:
                self.fold()
            log = self._log = torch.empty(LOSS_LOG, self.members, dtype=loss.dtype, device=loss.device)
        with torch.no_grad():
            torch.sum(loss.view(self.members, -1), dim=1, out=log[self._n])
        self._n, self._step = self._n + 1, step
        if self._n == LOSS_LOG:
            self.fold()

    def fold(self) -> None:
        """Fold the logged sums into each member's first non-finite step (still on the device)."""
        if (n := self._n) == 0:
            return
        bad = ~torch.isfinite(self._log[:n])                               # (steps, members)
        first = torch.where(bad.any(0), bad.byte().argmax(0) + (self._step - n + 1), -1)
        self.first_bad = torch.where(self.first_bad < 0, first, self.first_bad)
        self._n = 0

    def check(self) -> None:
        """Read each member's first bad step into `at` (one sync)."""
        self.fold()
        for k, first in enumerate(self.first_bad.tolist()):
            if first >= 0 and self.at[k] is None:
                self.at[k] = first

    @property
    def alive(self) -> int:
        return sum(step is None for step in self.at)

    def restart(self, at: list[int | None] | None = None) -> None:
        """Forget the unread log (a restored run starts from its checkpoint's step) and take the
        checkpoint's diverged members."""
        self._n = 0
        self.at = list(at) if at is not None else [None] * self.members
        self.first_bad.copy_(torch.tensor([-1 if s is None else s for s in self.at]))
