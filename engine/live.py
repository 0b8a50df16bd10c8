"""The settings a run may change while it trains, as the one small frozen value a step is given.

σ, lr and feedback_lr change between steps (engine/control.py applies a "set" command through
`Trainer.set`); the trainer hands the values of each step to the rule as an argument, so no
rule, solver or optimiser keeps a copy of them that could disagree with the step's record.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Live:
    lr: float             # the forward weights' learning rate
    sigma: float | tuple[float, ...]   # node perturbation's noise std; per member where they differ
    feedback_lr: float    # the feedback regression's step

    @classmethod
    def of(cls, cfg) -> "Live":
        sigmas = cfg.sigmas()
        sigma = sigmas[0] if len(sigmas) == 1 else tuple(s for _, s in cfg.member_values())
        return cls(lr=cfg.lr, sigma=sigma, feedback_lr=cfg.feedback_lr)
