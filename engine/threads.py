"""How many intra-op threads a run's step deserves: one, unless the step is big.

A small network's step is dispatch overhead: a second intra-op thread has nothing to share and,
on a machine whose cores are busy, waits for a descheduled partner at every kernel (a digits
run went from 5.4 s to 55.8 s for 300 NP steps with torch's two threads at load 15). Only a step
of some hundred million multiply-adds (a wide network, a big batch or a big population) has the
arithmetic a second thread can take half of.
"""

from __future__ import annotations

import os

# Multiply-adds per step above which the step keeps torch's own thread count.
BIG_STEP = 10 ** 8
# A step's passes over the weights: the clean forward, the backward's two products, the noisy
# forward, and the metrics' share.
PASSES = 6


def step_work(cfg, weights: int) -> int:
    """About how many multiply-adds a step of `cfg` takes on a network of `weights` weights
    (one member's): every row a step pushes (batch × noise draws × members) meets each weight
    in each pass."""
    from engine.rules import RULES          # late: the rules pull in torch, this module is a leaf

    draws = cfg.noise_draws if "noise_draws" in getattr(RULES.get(cfg.rule), "options", {}) else 1
    return cfg.batch_size * draws * cfg.members() * weights * PASSES


def threads_for(cfg, weights: int) -> int | None:
    """1 for a small step; None (leave torch's choice) for a big one, or when the user set
    OMP_NUM_THREADS, which torch already follows."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return 1 if step_work(cfg, weights) < BIG_STEP else None
