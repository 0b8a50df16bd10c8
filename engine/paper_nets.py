"""§3 (the autoencoder) and §6 (depth and width) of the report, as data, on today's engine defaults:
NP is the lab's learner (normalised LMS step on B, η_B 1, with the control variate ξ·Bδ), not the
paper's plain estimate; every condition trains 8 seeds as one population (engine/paper.py lists
these experiments beside the others)."""

from __future__ import annotations

from engine.condition import Condition
from engine.config import RunConfig

# ----------------------------------------------------------------------------- 3. autoencoder
AE_RULES = [("BP", dict(rule="bp")), ("FA", dict(rule="fa")), ("NP", dict(rule="np")), ("KP", dict(rule="kp")),
            ("Matched (KP, no decay)", dict(rule="kp", weight_decay=0.0)), ("SG-oracle", dict(rule="sg")),
            ("BP + noise", dict(rule="bp", train_on_noise=True)),
            # the noise-only ablation at NP's σ and at the paper's σ = 0.1 (its own noise draws)
            ("FA + noise", dict(rule="fa", train_on_noise=True)),
            ("FA + noise σ=0.1", dict(rule="fa", train_on_noise=True, sigma=0.1, independent_noise=True)),
            ("BP + noise σ=0.1", dict(rule="bp", train_on_noise=True, sigma=0.1, independent_noise=True))]


AE_SEARCHED = AE_RULES[:6]             # the noise-only rows take the lr of the rule they train
AE_LR_GRID = (3e-4, 1e-3, 3e-3)         # Adam
# The Adam lr of each rule, chosen by `scripts/reproduce.py autoencoder-lrsearch` (lowest mean
# validation loss, reports.tables.chosen_lrs; tests/test_results_tables.py checks them).
AE_LR: dict[tuple[str, str], float] = {
    ("fashion-mnist", "BP"): 1e-3, ("fashion-mnist", "FA"): 3e-4, ("fashion-mnist", "NP"): 1e-3,
    ("fashion-mnist", "KP"): 3e-3, ("fashion-mnist", "Matched (KP, no decay)"): 1e-3,
    ("fashion-mnist", "SG-oracle"): 1e-3,
}


def ae_config(**kw) -> RunConfig:
    """784-200-2-200-784, tanh, linear bottleneck, the same widths for every rule, Adam at lr 1e-3
    unless given, σ 0.02 (the paper's ≈ 0.019); everything else at RunConfig's defaults (PyTorch's
    init; NP and SG: normalised LMS B, η_B 1; NP: control variate)."""
    base = dict(model="autoencoder", depth=3, width=[200, 2, 200], activation="tanh", loss="mse",
                optimizer="adam", lr=1e-3, batch_size=32, sigma=0.02)
    return RunConfig(**{**base, **kw})


def _ae_budget(quick: bool) -> dict:
    """4,000 steps (quick: 300), 20 evaluations, the last 5 of which span the last fifth."""
    steps = 300 if quick else 4000
    return dict(steps=steps, metric_interval=50 if quick else 200, eval_interval=steps // 20)


def _trains(label: str) -> str:
    """The searched rule a row trains: "FA + noise σ=0.1" trains FA."""
    return label.split(" + ")[0]


def build_autoencoder_lrsearch(quick: bool) -> list[Condition]:
    """The searched rules at every lr of AE_LR_GRID, trained on Fashion-MNIST's training set minus a
    held-out sixth and scored on that sixth (validation loss), §3's budget."""
    parent = "mnist" if quick else "fashion-mnist"
    rules = AE_SEARCHED[:2] if quick else AE_SEARCHED
    return [Condition(f"{label} lr={lr:g}", ae_config(**kw, **_ae_budget(quick), dataset=parent + "-val", lr=lr),
                      {"rule_label": label, "lr": lr, "dataset": parent})
            for label, kw in rules for lr in (AE_LR_GRID[1:] if quick else AE_LR_GRID)]


def build_autoencoder(quick: bool) -> list[Condition]:
    """Every rule of AE_RULES at its searched lr (the noise-only rows at their rule's), 4,000 steps
    on Fashion-MNIST."""
    ds = "mnist" if quick else "fashion-mnist"
    rules = [r for r in AE_RULES if r[0] in ("BP", "FA", "NP")] if quick else AE_RULES
    out = []
    for label, kw in rules:
        lr = AE_LR.get(("fashion-mnist", _trains(label)), 1e-3)
        out.append(Condition(label, ae_config(**kw, **_ae_budget(quick), dataset=ds, lr=lr),
                             {"rule_label": label}))
    return out


# ----------------------------------------------------------------------------- 6. depth/width
# tanh + Adam: with §2's settings (sigmoid, SGD lr 0.1, momentum 0.9) nets of depth >= 4 or
# width >= 128 diverge or stay at chance, for BP as well, so they would measure nothing.
SCALING_RULES = {"BP": dict(rule="bp"), "FA": dict(rule="fa"), "NP": dict(rule="np")}
SCALING_LR_GRID = (3e-4, 1e-3, 3e-3)   # Adam
DEPTHS, WIDTHS = (1, 2, 4, 6), (32, 128, 512)
# The forward lr of each (rule, shape), chosen by `scripts/reproduce.py scaling-lrsearch` (lowest
# mean validation error, reports.tables.chosen_lrs; tests/test_results_tables.py checks them).
SCALING_LR: dict[tuple[str, str], float] = {
    ("fashion-mnist", "BP depth 1"): 0.003, ("fashion-mnist", "FA depth 1"): 0.003,
    ("fashion-mnist", "NP depth 1"): 0.003, ("fashion-mnist", "BP depth 2"): 0.003,
    ("fashion-mnist", "FA depth 2"): 0.003, ("fashion-mnist", "NP depth 2"): 0.001,
    ("fashion-mnist", "BP depth 4"): 0.001, ("fashion-mnist", "FA depth 4"): 0.001,
    ("fashion-mnist", "NP depth 4"): 0.001, ("fashion-mnist", "BP depth 6"): 0.001,
    ("fashion-mnist", "FA depth 6"): 0.001, ("fashion-mnist", "NP depth 6"): 0.001,
    ("fashion-mnist", "BP width 32"): 0.003, ("fashion-mnist", "FA width 32"): 0.003,
    ("fashion-mnist", "NP width 32"): 0.003, ("fashion-mnist", "BP width 128"): 0.003,
    ("fashion-mnist", "FA width 128"): 0.001, ("fashion-mnist", "NP width 128"): 0.001,
    ("fashion-mnist", "BP width 512"): 0.003, ("fashion-mnist", "FA width 512"): 0.001,
    ("fashion-mnist", "NP width 512"): 0.001,
}


def _shapes(quick: bool) -> list[tuple[str, int, int, int]]:
    """(part, value, depth, width): depth at width 50, width at depth 2."""
    depths, widths = ((1, 4), (32, 256)) if quick else (DEPTHS, WIDTHS)
    return [("depth", d, d, 50) for d in depths] + [("width", w, 2, w) for w in widths]


def scaling_config(rule: str, depth: int, width: int, steps: int, **kw) -> RunConfig:
    """A tanh MLP trained by Adam, σ 0.01 and NP's feedback learner at RunConfig's defaults; NP
    first learns B for a tenth of `steps` with W frozen, on top of them (equal forward steps)."""
    warm = steps // 10 if rule == "NP" else 0
    return RunConfig(model="mlp", depth=depth, width=width, activation="tanh", loss="mse", optimizer="adam",
                     batch_size=32, steps=steps + warm, warmup_steps=warm, eval_interval=steps // 20,
                     metric_interval=steps // 10, **SCALING_RULES[rule], **kw)


def build_scaling_lrsearch(quick: bool) -> list[Condition]:
    """Every rule and shape at every lr of SCALING_LR_GRID on the validation split, §6's budget."""
    parent, steps = ("mnist", 200) if quick else ("fashion-mnist", 1500)
    out = []
    for part, v, depth, width in _shapes(quick):
        for rule in SCALING_RULES:
            for lr in (SCALING_LR_GRID[:2] if quick else SCALING_LR_GRID):
                out.append(Condition(f"{rule} {part} {v} lr={lr:g}",
                                     scaling_config(rule, depth, width, steps, dataset=parent + "-val", lr=lr),
                                     {"rule_label": f"{rule} {part} {v}", "lr": lr, "dataset": parent}))
    return out


def build_scaling(quick: bool) -> list[Condition]:
    """BP, FA and NP vs depth (width 50) and width (depth 2), each at its searched lr."""
    ds, steps = ("mnist", 200) if quick else ("fashion-mnist", 1500)
    out = []
    for part, v, depth, width in _shapes(quick):
        for rule in SCALING_RULES:
            label = f"{rule} {part} {v}"
            lr = SCALING_LR.get(("fashion-mnist", label), 1e-3)     # quick: shapes not searched
            out.append(Condition(label, scaling_config(rule, depth, width, steps, dataset=ds, lr=lr),
                                 {"part": part, "rule_label": rule, "depth": depth, "width": width, "lr": lr}))
    return out
