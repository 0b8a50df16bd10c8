"""The settings a run may change while it trains, as the one small frozen value a step is given.

σ, lr and feedback_lr change between steps (engine/control.py applies a "set" command through
`Trainer.set`); the trainer hands the values of each step to the rule as an argument, so no
rule, solver or optimiser keeps a copy of them that could disagree with the step's record.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Live:
    # Each one value, or one per member where a population compares several (a tuple).
    lr: float | tuple[float, ...]            # the forward weights' learning rate
    sigma: float | tuple[float, ...]         # node perturbation's noise std
    feedback_lr: float | tuple[float, ...]   # the feedback regression's step

    @classmethod
    def of(cls, cfg) -> "Live":
        members = cfg.member_values()

        def value(name):
            values = cfg.values_of(name)
            return values[0] if len(values) == 1 else tuple(m[name] for m in members)
        return cls(lr=value("lr"), sigma=value("sigma"), feedback_lr=value("feedback_lr"))
