"""How a run is named where people read it: its width in tables and legends ("50-20") and its
one-line label."""

from __future__ import annotations

from engine.config import RunConfig, applies, defaults
from engine.members import SYMBOLS
from engine.rules import RULES
from engine.values import WIDTH_SEPARATOR, format_numbers, format_width


def width_label(width) -> str:
    """A width as tables and legends show it: the one width text (format_width) with its layers
    joined as a network's shape is (784-50-20-10): 50 → "50"; [50, 20] → "50-20". Runs' and sweeps'
    tables store it so."""
    return format_width(width).replace(WIDTH_SEPARATOR, "-")


# Settings a label leaves out: the budget and bookkeeping do not change what a run learns.
_UNLABELLED = {"steps", "metric_interval", "eval_interval", "device"}
# Short forms for the settings a label names most often.
_SHORT = {"freeze_forward": lambda v: "frozen W" if v else "W trains",
          "train_on_noise": lambda v: "+noise" if v else "no noise",
          "feedback_mode": lambda v: f"{v} B", "warmup_steps": lambda v: f"warm-up {v:,}",
          "noise_draws": lambda v: f"K={v}", "init": lambda v: f"{v} init", "optimizer": str,
          "feedback_lr": lambda v: f"{SYMBOLS['feedback_lr']}={format_numbers(v)}"}


def run_label(cfg: RunConfig) -> str:
    """A short legend label: the rule, σ, the network, lr and seed, then every other setting that
    applies to this run and differs from its default, e.g. 'np σ=0.01 d2 w50-20 lr=0.001 ridge B
    warm-up 1,000 paper init seed0'; a population ends with its seeds, '… ×4 seeds (0–3)'."""
    parts = [cfg.rule]
    if RULES[cfg.rule].uses_noise(cfg) or cfg.rule == "np":
        parts.append("σ=" + format_numbers(cfg.sigma))
    from engine.networks import CONV_MODELS

    if cfg.model in CONV_MODELS:
        # A conv net's layers are fixed by its model: depth and width are not used, and
        # "d2 w50-20" would describe a network it is not.
        parts.append(cfg.model)
    else:
        parts.append(f"d{cfg.depth}")
        parts.append("w" + width_label(cfg.width))
    parts.append("lr=" + format_numbers(cfg.lr))
    shown = {"rule", "sigma", "depth", "width", "lr", "seed", "seeds", "dataset"} | _UNLABELLED
    if cfg.model in CONV_MODELS:
        shown.add("model")                  # named in place of the shape, above
    for name, default in defaults().items():
        value = getattr(cfg, name)
        if name in shown or value == default or not applies(name, cfg):
            continue
        if name in _SHORT:
            parts.append(_SHORT[name](value))
        elif isinstance(value, bool):
            parts.append(name.replace("_", " ") if value else "no " + name.replace("_", " "))
        else:
            parts.append(f"{name}={format_numbers(value)}" if isinstance(value, (float, list)) else f"{name}={value}")
    if cfg.dataset != "digits":
        parts.append(cfg.dataset)
    # the seeds repeat for each combination of the compared settings
    each = " per " + "×".join(SYMBOLS[name] for name in cfg.compared()) if cfg.compared() else ""
    parts.append(f"seed{cfg.seed}{each}" if cfg.seeds == 1 else
                 f"×{cfg.seeds} seeds ({cfg.seed}–{cfg.seed + cfg.seeds - 1}){each}")
    return " ".join(parts)
