"""Comparisons at equal cost, from each run's logged history.

A setting that makes a step dearer (K noise draws a sample, antithetic pairs) against its
reference, read at three budgets: the same steps, the same noisy passes (K draws of a step are K
passes of its batch; an antithetic pair two), and the same wall time. One side's whole run is the
budget and the other is read at its last record within it, seed by seed: the dear condition within
the cheap one's (§4: K = 8 against K = 1's 2,000 steps), or the cheap one within the dear one's
(§1: K = 1, run 4× as long, against K = 4's 10⁵ steps). Which budget is fair depends on what is
scarce; the report gives all three.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from engine.experiments import Results
from engine.paper import K1_LONG
from reports.seeds import finished, mean_spread


class Pair(NamedTuple):
    dear: tuple[str, str]              # (condition, its short name in the table)
    cheap: tuple[str, str]
    metrics: dict[str, str]            # column → its name in the table
    within: str = "cheap"              # whose whole run is the budget: "cheap" or "dear"
    # A condition whose runs time the cheap one's steps (same seed, its mean time per step): a
    # population member's own clock is its share of a batched step, cheaper than a run alone.
    alone: str | None = None
    fmt: str = "{:.2f}"
    wall: bool = True                  # also at equal wall time (only where both were timed alike)


ANGLES = {"signal_angle_deg_1": "signal angle 1 (°)", "signal_angle_deg_2": "signal angle 2 (°)"}
# experiment → the kind of its docs/results.md block (<!-- TABLE:name:kind -->) → its comparisons.
# One reference a block: two references' columns would name different conditions.
PAIRS = {
    "conv": {
        "cost": [Pair(("NP (layer-wise B, K = 8)", "K = 8"), ("NP (layer-wise B)", "K = 1"), ANGLES)],
        # K = 8 also steps B 8× further (K/(K + N)); against K = 1 at 8× η_B only the draws differ.
        # No wall-time budget: those runs were timed as one population of 3 seeds, K = 8's one by one.
        "cost_step": [Pair(("NP (layer-wise B, K = 8)", "K = 8"),
                           ("NP (layer-wise B, K = 1, 8× η_B)", "K = 1, 8× η_B"), ANGLES, wall=False)],
    },
    "feedback": {
        "cost": [Pair(("Fig. 2 set-up, K=4 draws", "K = 4"), (K1_LONG, "K = 1"),
                      {**ANGLES, "relative_error_2": "relative error 2"},
                      within="dear", alone="Fig. 2 set-up", fmt="{:.3g}")],
    },
}
RUN = ["condition", "seed"]


def noisy_passes(cfg: pd.Series) -> int:
    """Noisy passes of a batch per step under a run's settings (its `cfg_` columns)."""
    return int(cfg["cfg_noise_draws"]) * (2 if bool(cfg["cfg_antithetic"]) else 1)


def own_clock(history: pd.DataFrame) -> pd.Series:
    """Each record's time charged to its run alone. The members of a population log its clock
    (the same times), so a run's time is divided by the number of runs that logged the same
    times: its share, as its summary's wall time is."""
    sig = {run: tuple(g.sort_values("step")["time"]) for run, g in history.groupby(RUN, sort=False)}
    count = pd.Series(list(sig.values())).value_counts()
    share = {run: count[s] for run, s in sig.items()}
    return history["time"] / [share[run] for run in zip(*(history[c] for c in RUN))]


def at_equal_cost(history: pd.DataFrame, final: pd.DataFrame, dear: tuple[str, str], cheap: tuple[str, str],
                  metrics: dict[str, str], within: str = "cheap", alone: str | None = None,
                  fmt: str = "{:.2f}", wall: bool = True) -> pd.DataFrame:
    """One row per budget: the step each condition is read at (mean over seeds) and each metric's
    mean ± sample std over the seeds both conditions ran, dear first (see Pair for the rest).
    `history` holds whole populations (own_clock counts their members in it)."""
    (dear, dear_name), (cheap, cheap_name) = dear, cheap
    passes = {c: noisy_passes(final[final["condition"] == c].iloc[0]) for c in (dear, cheap)}
    ref_c, read_c = (cheap, dear) if within == "cheap" else (dear, cheap)
    clock = own_clock(history)
    seeds = sorted(set(history.loc[history["condition"] == dear, "seed"])
                   & set(history.loc[history["condition"] == cheap, "seed"]))
    picked: dict[str, list[tuple[pd.Series, pd.Series]]] = {}
    for seed in seeds:
        def run(c: str) -> pd.DataFrame:
            return history[(history["condition"] == c) & (history["seed"] == seed)].sort_values("step")
        rows = run(read_c)
        ref = run(ref_c).iloc[-1]                          # the reference's whole budget
        times = {"": (clock[rows.index], clock[ref.name])}
        if not wall:
            times = {}
        elif alone is not None:
            by = run(alone)
            rate = clock[by.index[-1]] / by["step"].iloc[-1]        # its seconds per step
            mine = (rows["step"] * rate, clock[ref.name]) if read_c == cheap else \
                (clock[rows.index], ref["step"] * rate)
            times = {f" ({cheap_name} timed alone)": mine, f" ({cheap_name} as a population member)": times[""]}
        budgets = {
            "equal steps": rows[rows["step"] <= ref["step"]],
            f"equal noisy passes ({passes[dear]} : {passes[cheap]} a step)":
                rows[rows["step"] * passes[read_c] <= ref["step"] * passes[ref_c]],
            **{f"equal wall time{how}": rows[t <= t_ref] for how, (t, t_ref) in times.items()},
        }
        for name, got in budgets.items():
            if len(got):
                picked.setdefault(name, []).append((got.iloc[-1], ref) if read_c == dear else (ref, got.iloc[-1]))
    out = []
    for name, pairs in picked.items():
        row = {"budget": name,
               f"{dear_name}: step": f"{sum(p[0]['step'] for p in pairs) / len(pairs):,.0f}",
               f"{cheap_name}: step": f"{sum(p[1]['step'] for p in pairs) / len(pairs):,.0f}"}
        for m, label in metrics.items():
            for who, side in ((dear_name, 0), (cheap_name, 1)):
                row[f"{who}: {label}"] = mean_spread(pd.Series([float(p[side][m]) for p in pairs]), fmt=fmt)
        row["seeds"] = len(pairs)
        out.append(row)
    return pd.DataFrame(out)


def table(res: Results, kind: str = "cost") -> pd.DataFrame:
    """The experiment's equal-cost comparisons PAIRS[name][kind], one after the other, per dataset
    (a `dataset` column where the experiment has several)."""
    final, parts = finished(res.final), []
    datasets = list(dict.fromkeys(final["cfg_dataset"]))
    for pair in PAIRS[res.name][kind]:
        for ds in datasets:
            f, h = final[final["cfg_dataset"] == ds], res.history[res.history["dataset"] == ds]
            if not {pair.dear[0], pair.cheap[0]} <= set(h["condition"]):
                continue
            part = at_equal_cost(h, f, *pair)
            parts.append(part.assign(dataset=ds)[["dataset", *part.columns]] if len(datasets) > 1 else part)
    return pd.concat(parts, ignore_index=True)
