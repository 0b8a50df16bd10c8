"""The dashboard's presets: the lesson's story in five steps first, then the paper's other set-ups.

Each preset is a set of overrides on top of RunConfig() + DASHBOARD_DEFAULTS, and has one
sentence (`PRESET_NOTES`) that the sidebar shows under the menu: what the set-up is and what to
look for. The story presets (`STORY`) come first in the menu, in the order a lesson tells them:
why learn B at all (trained by node perturbation's noisy estimate alone, a network learns slowly);
fixed random feedback does not point like backprop's; node perturbation learns feedback that
does; with it the network trains; and the same works in a conv net. Step 0 was added last,
numbered so that links to steps 1–4 keep working.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.config import RunConfig

# The dashboard's starting point: the paper's MLP shape, long enough to watch for a while.
# (RunConfig's own defaults are tuned for the CLI's quick runs.)
DASHBOARD_DEFAULTS: dict[str, Any] = {"width": [50, 20], "steps": 20000}

# The paper trained its MLP by SGD; with momentum 0.9, lr 0.05 is an effective step of 0.5 on our
# batch-mean loss (1.0 made the SG oracle diverge).
PAPER_SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}
PAPER_MLP = {"depth": 2, "width": [50, 20], "activation": "sigmoid", "loss": "mse"}

# Node perturbation exactly as the paper ran it on MNIST: the plain estimate λ̂ = (L̃ − L) ξ/σ² of
# one noise draw with every hidden layer perturbed at once, and B by cumulative ridge regression
# (γ = 0.1, from B = 0), with the reference code's init. feedback_mode="ridge" is the switch (the
# control variate applies to the SGD solver only); the rest pins what the lab's own options
# (K draws, antithetic pairs, cycling, forgetting) would change. engine/paper.py's fig2() is this
# on the paper's MLP with W frozen (tests/test_presets.py holds the two together).
PAPER_ESTIMATOR = {"rule": "np", "feedback_mode": "ridge", "ridge_gamma": 0.1, "ridge_forget": 1.0,
                   "ridge_relative": False, "noise_draws": 1, "antithetic": False, "perturb": "all",
                   "init": "paper", "sigma": 0.01}

# The paper's Fig. 2: only B learns, by cumulative ridge from B = 0, with the reference code's
# init; 10⁵ steps take about a minute, and the top layer's B looks like Wᵀ in seconds.
LEARN_B_ONLY = {**PAPER_ESTIMATOR, **PAPER_MLP, "freeze_forward": True, "batch_size": 32, "steps": 100000}
PAPER_NP = {**PAPER_ESTIMATOR, **PAPER_MLP, **PAPER_SGD, "warmup_steps": 1000}
PAPER_FA = {"rule": "fa", **PAPER_MLP, **PAPER_SGD}
# engine/paper.py's conv condition (tanh, cross-entropy, Adam 1e-3, batch 32, σ 0.01) on the
# embedded 8×8 digits, which conv-small takes as they are (two 2×2 pools leave 2×2).
CONV_NP = {"rule": "np", "model": "conv-small", "activation": "tanh", "loss": "ce",
           "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "sigma": 0.01, "steps": 5000,
           "metric_interval": 25, "eval_interval": 250}

# Why learn B at all: the same MLP trained by node perturbation's plain estimate itself, no B (pure
# NP: one draw, every hidden layer perturbed at once, as the paper's estimator).
PURE_NP = {"rule": "pnp", **PAPER_MLP, **PAPER_SGD, "init": "paper", "sigma": 0.01, "noise_draws": 1,
           "antithetic": False, "perturb": "all"}

# Steps 1 and 3 train 4 seeds each, in one batched step (on this small net about 1.5× one seed's
# time), so that their curves are bands and NP against FA is seen to be more than seed noise.
STORY_SEEDS = 4

# Step 2 learns B from batches of 256, 8× the paper's: a step costs 1.3× one of 32 (the net is
# small), and seed 0's top-layer maps correlate 0.96 (17°) by step 1,000 instead of 4,700. With 18
# busy loops beside the served page, a teacher's busy laptop, that is the lecture's central moment
# 18.5 s after Start, not 75.5 s (scripts/measure/story_pace.py). "Learn B only (frozen W)" keeps
# the paper's batch.
STORY_B_BATCH = 256

STORY: dict[str, dict[str, Any]] = {
    "0. Why learn B at all? Pure node perturbation": PURE_NP,
    "1. Feedback alignment: B is random, fixed": {**PAPER_FA, "seeds": STORY_SEEDS},
    "2. Node perturbation learns B (W frozen)": {**LEARN_B_ONLY, "batch_size": STORY_B_BATCH},
    "3. NP trains the network": {**PAPER_NP, "seeds": STORY_SEEDS},
    "4. Conv nets": CONV_NP,
}

# One click reproduces a set-up from the paper (method.md §6, on the embedded digits instead of
# MNIST). The story's steps first; the older names stay (links, notebooks and tests use them).
PRESETS: dict[str, dict[str, Any]] = {
    **STORY,
    "Paper MLP: NP": PAPER_NP,
    "Paper MLP: FA": PAPER_FA,
    "Paper MLP: BP": {"rule": "bp", **PAPER_MLP, **PAPER_SGD},
    "Paper MLP: SG oracle": {"rule": "sg", **PAPER_MLP, **PAPER_SGD, "feedback_mode": "ridge",
                             "init": "paper"},
    "Learn B only (frozen W)": LEARN_B_ONLY,
    "Noise-only ablation (FA + noise)": {"rule": "fa", **PAPER_MLP, "train_on_noise": True,
                                         "sigma": 0.01},
    "Kolen-Pollack": {"rule": "kp", **PAPER_MLP},
    # beside a default run (the lab's estimator and solver), the one switch that differs
    "NP, the paper's estimator (ridge B)": PAPER_ESTIMATOR,
}

# One sentence per preset, shown under the menu: what it is, and what to look for.
PRESET_NOTES: dict[str, str] = {
    "(custom)": "Your own set-up: pick a step of the story above to start from one of the paper's.",
    # tests/test_story_sentences.py holds each number to a run of the preset
    "0. Why learn B at all? Pure node perturbation":
        "No B: each layer follows its own noisy estimate λ̂, ≈ 83° off the true error for 50 units "
        "perturbed alone (cos ≈ √(2/(πN))); K draws help only as √K. Angles stay near 80–90° and the "
        "loss falls slower than with a learned B (≈ 1° in step 2).",
    "1. Feedback alignment: B is random, fixed":
        "The error travels down through a random B that never learns (B now = B at the start); W "
        "partly turns to fit it: the angles to backprop fall from 90° but stay far from 0°. Four "
        "seeds: a line is their mean, its band their range.",
    "2. Node perturbation learns B (W frozen)":
        "W is frozen; noise on each hidden unit teaches B (batch 256, 8× the paper's, for speed): the "
        "top layer's B becomes Wᵀ, the hidden layer's error signal aligns too, though its B does not "
        "look like Wᵀ (δ spans part of B's input space).",
    "3. NP trains the network":
        "Now W trains too, through the learned B, which keeps following the changing W. Four seeds, as in "
        "step 1: from step ≈ 2,000 on, NP's test-loss band lies wholly below FA's, beyond seed noise.",
    "4. Conv nets":
        "The same rule in a small conv net (two conv layers, then a fully connected one): it learns "
        "the digits. The maps open on the top, fully connected layer; the menu has the conv kernels.",
    "Paper MLP: NP": "The paper's MLP (64-50-20-10, sigmoid, SGD) trained by node perturbation, "
                     "B learned by ridge regression.",
    "Paper MLP: FA": "The paper's MLP trained by feedback alignment: B random and fixed.",
    "Paper MLP: BP": "The paper's MLP trained by backprop: the reference every angle is measured against.",
    "Paper MLP: SG oracle": "B regressed on the true error signals: the best a learned B could do.",
    "Learn B only (frozen W)": "The paper's Fig. 2: W frozen, only B learns, by node perturbation.",
    "Noise-only ablation (FA + noise)": "Feedback alignment on the noisy network: the noise alone "
                                        "does not make B learn.",
    "Kolen-Pollack": "B gets the same updates as W, and weight decay pulls B towards Wᵀ.",
    "NP, the paper's estimator (ridge B)":
        "Node perturbation as the paper ran it: the plain estimate (L̃ − L) ξ/σ² and B by cumulative "
        "ridge regression; the default np uses a control variate and normalised SGD instead.",
}


def preset_config(name: str) -> RunConfig:
    """The RunConfig a preset stands for (dashboard defaults, then the preset's overrides)."""
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is not allowed; choose one of {', '.join(PRESETS)}")
    return RunConfig.from_dict({**DASHBOARD_DEFAULTS, **PRESETS[name]})


def preset_note(name: str) -> str:
    return PRESET_NOTES.get(name, "")


__all__ = ["DASHBOARD_DEFAULTS", "PAPER_ESTIMATOR", "PAPER_SGD", "PRESETS", "PRESET_NOTES", "PURE_NP", "STORY",
           "STORY_B_BATCH", "preset_config", "preset_note"]
