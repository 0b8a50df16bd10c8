"""Comparisons at equal cost, from each run's logged history.

A setting that makes a step dearer (K noise draws a sample, antithetic pairs) against its
reference, read at three budgets: the same steps, the same noisy passes (K draws of a step are K
passes of its batch; an antithetic pair two), and the same wall time (the last record the dear
condition logged by the time the reference had run its whole budget, seed by seed). Which budget
is fair depends on what is scarce; the report gives all three.
"""

from __future__ import annotations

import pandas as pd

from engine.experiments import Results
from reports.seeds import finished, mean_spread

CONV_ANGLES = {"signal_angle_deg_1": "signal angle 1 (°)", "signal_angle_deg_2": "signal angle 2 (°)"}
# experiment → the kind of its docs/results.md block (<!-- TABLE:name:kind -->) → (the dear
# condition, its reference, each by its short name; the metrics compared). One pair a block: two
# pairs' columns name different references.
PAIRS = {
    "conv": {
        "cost": (("NP (layer-wise B, K = 8)", "K = 8"), ("NP (layer-wise B)", "K = 1"), CONV_ANGLES),
        # K = 8 also steps B 8× further (K/(K + N)); against K = 1 at 8× η_B only the draws differ.
        # No wall-time budget: those runs were timed as one population of 3 seeds, K = 8's one by one.
        "cost_step": (("NP (layer-wise B, K = 8)", "K = 8"), ("NP (layer-wise B, K = 1, 8× η_B)", "K = 1, 8× η_B"),
                      CONV_ANGLES, {"wall": False}),
    },
}


def noisy_passes(cfg: pd.Series) -> int:
    """Noisy passes of a batch per step under a run's settings (its `cfg_` columns)."""
    return int(cfg["cfg_noise_draws"]) * (2 if bool(cfg["cfg_antithetic"]) else 1)


def at_equal_cost(history: pd.DataFrame, final: pd.DataFrame, dear: tuple[str, str], cheap: tuple[str, str],
                  metrics: dict[str, str], wall: bool = True) -> pd.DataFrame:
    """One row per budget: the step each condition is read at (mean over seeds) and each metric's
    mean ± sample std over the seeds both conditions ran, dear first. `dear`, `cheap`: (condition,
    short name); `metrics`: column → its name in the table; `wall`: also at equal wall time (only
    where both were timed alike)."""
    (dear, dear_name), (cheap, cheap_name) = dear, cheap
    passes = {c: noisy_passes(final[final["condition"] == c].iloc[0]) for c in (dear, cheap)}
    seeds = sorted(set(history.loc[history["condition"] == dear, "seed"])
                   & set(history.loc[history["condition"] == cheap, "seed"]))
    picked: dict[str, list[tuple[pd.Series, pd.Series]]] = {}
    for seed in seeds:
        a = history[(history["condition"] == dear) & (history["seed"] == seed)].sort_values("step")
        b = history[(history["condition"] == cheap) & (history["seed"] == seed)].sort_values("step")
        ref = b.iloc[-1]                                   # the reference's whole budget
        budgets = {
            "equal steps": a[a["step"] <= ref["step"]],
            f"equal noisy passes ({passes[dear]} : {passes[cheap]} a step)":
                a[a["step"] * passes[dear] <= ref["step"] * passes[cheap]],
        }
        if wall:
            budgets["equal wall time"] = a[a["time"] <= ref["time"]]
        for name, rows in budgets.items():
            if len(rows):
                picked.setdefault(name, []).append((rows.iloc[-1], ref))
    out = []
    for name, pairs in picked.items():
        row = {"budget": name,
               f"{dear_name}: step": f"{sum(p[0]['step'] for p in pairs) / len(pairs):,.0f}",
               f"{cheap_name}: step": f"{sum(p[1]['step'] for p in pairs) / len(pairs):,.0f}"}
        for m, label in metrics.items():
            for who, side in ((dear_name, 0), (cheap_name, 1)):
                row[f"{who}: {label}"] = mean_spread(pd.Series([float(p[side][m]) for p in pairs]))
        row["seeds"] = len(pairs)
        out.append(row)
    return pd.DataFrame(out)


def table(res: Results, kind: str = "cost") -> pd.DataFrame:
    """The experiment's equal-cost comparison PAIRS[name][kind]."""
    dear, cheap, metrics, *options = PAIRS[res.name][kind]
    return at_equal_cost(res.history, finished(res.final), dear, cheap, metrics, **(options[0] if options else {}))
