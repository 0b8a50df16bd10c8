"""The report's tables: mean ± spread over seeds per condition (std, or a 95 % t confidence
interval), the lr search's choices, and one paired test per claim; and their Markdown."""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from engine.experiments import Results
from engine.data.validation import parent_name
from reports.seeds import ci_halfwidth, finished, mean_spread


def summarize(final: pd.DataFrame, metrics: Iterable[str] = ("test_error", "signal_angle_deg_mean",
              "weight_angle_deg_mean", "sign_congruence_mean"), by: Iterable[str] = ("cfg_dataset", "condition"),
              fmt: str = "{:.2f}", spread: str = "std", wall: bool = False) -> pd.DataFrame:
    """mean ± spread over seeds per condition, as strings, plus the number of seeds. `spread`: "std"
    (sample standard deviation) or "ci" (half-width of the 95 % t interval of the mean). `wall`: a
    column with the condition's wall time in seconds, summed over its seeds (a population's time
    is shared equally by its members, so the sum is what the condition cost)."""
    by = [b for b in by if b in final.columns]
    metrics = [m for m in metrics if m in final.columns]
    ok = finished(final)
    order = list(dict.fromkeys(final["condition"]))
    rows = []
    for keys, g in ok.groupby(by, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys))
        for m in metrics:
            row[m] = mean_spread(g[m], spread, fmt)
        if wall:
            row["wall_s"] = f"{pd.to_numeric(g['wall_seconds'], errors='coerce').sum():.0f}"
        row["seeds"] = len(g)
        rows.append(row)
    out = pd.DataFrame(rows)
    if "condition" in out:
        out = out.assign(_o=out["condition"].map({c: i for i, c in enumerate(order)})) \
            .sort_values([b for b in by if b != "condition"] + ["_o"]).drop(columns="_o")
    return out.reset_index(drop=True)


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the lr search
def chosen_lrs(final: pd.DataFrame, metric: str = "test_error_tail") -> dict[tuple[str, str], float]:
    """{(dataset, rule): lr} with the lowest mean validation `metric` over seeds, per rule and
    dataset (the parent of the validation split: "fashion-mnist", not "fashion-mnist-val"). An lr
    at which any seed did not finish (diverged) is never chosen."""
    out: dict[tuple[str, str], float] = {}
    best: dict[tuple[str, str], float] = {}
    for (ds, rule, lr), g in final.groupby(["cfg_dataset", "rule_label", "lr"], sort=False):
        if "status" in g and (g["status"] != "finished").any():
            continue
        key, score = (parent_name(ds), rule), float(pd.to_numeric(g[metric]).mean())
        if key not in best or score < best[key]:
            best[key], out[key] = score, float(lr)
    return out


def search_metric(final: pd.DataFrame) -> str:
    """What an lr search scores: the error of the last evaluations, or their loss where the task
    has no error (the autoencoder's)."""
    error = pd.to_numeric(final.get("test_error_tail", pd.Series(dtype=float)), errors="coerce")
    return "test_error_tail" if error.notna().any() else "test_loss_tail"


def lr_table(final: pd.DataFrame) -> pd.DataFrame:
    """Validation error (or loss: `search_metric`) of the last evaluations, mean ± 95 % CI, per
    dataset, rule and lr, and which lr was chosen; a diverged lr shows how many seeds diverged."""
    metric = search_metric(final)
    chosen = chosen_lrs(final, metric)
    name = "validation error" if metric == "test_error_tail" else "validation loss"
    rows = []
    for (ds, rule, lr), g in final.groupby(["cfg_dataset", "rule_label", "lr"], sort=False):
        ok = finished(g)
        bad = len(g) - len(ok)
        err = mean_spread(ok[metric], "ci")
        rows.append({"dataset": ds, "rule": rule, "lr": f"{lr:g}",
                     name: err + (f" ({bad} diverged)" if bad else ""),
                     "chosen": "✓" if chosen.get((parent_name(ds), rule)) == lr else "",
                     "seeds": len(g)})
    return pd.DataFrame(rows).sort_values("dataset", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- claims
# Each claim compares two conditions seed by seed (a paired t test: the runs of one seed share
# the initial W, the data order and the noise stream): (claim, condition A, condition B, metric).
CLAIMS: dict[str, list[tuple[str, str, str, str]]] = {
    "mlp": [
        ("paper's NP vs BP", "NP, paper's (ridge B)", "BP", "test_error_tail"),
        ("paper's NP vs FA", "NP, paper's (ridge B)", "FA", "test_error_tail"),
        ("lab's NP vs BP", "NP, lab's (LMS B + CV)", "BP", "test_error_tail"),
        ("lab's NP vs FA", "NP, lab's (LMS B + CV)", "FA", "test_error_tail"),
        ("lab's NP vs paper's NP", "NP, lab's (LMS B + CV)", "NP, paper's (ridge B)", "test_error_tail"),
        ("paper's NP: σ 0.1 vs 0.01", "NP, paper's (ridge B), σ=0.1", "NP, paper's (ridge B)", "test_error_tail"),
        ("paper's NP vs SG oracle", "NP, paper's (ridge B)", "SG-oracle", "test_error_tail"),
        ("Matched vs BP", "Matched (KP, no decay)", "BP", "test_error_tail"),
        ("KP vs Matched", "KP", "Matched (KP, no decay)", "test_error_tail"),
        ("sign congruence: paper's NP vs FA", "NP, paper's (ridge B)", "FA", "sign_congruence_mean"),
        ("sign congruence: lab's NP vs FA", "NP, lab's (LMS B + CV)", "FA", "sign_congruence_mean"),
    ],
    "ablations": [
        ("noise alone: FA + noise vs FA", "FA + noise (no B learning)", "FA", "test_error_tail"),
        ("noise alone: FA + noise σ=0.1 vs FA", "FA + noise σ=0.1", "FA", "test_error_tail"),
        ("noise alone: BP + noise vs BP", "BP + noise", "BP", "test_error_tail"),
        ("noise alone: BP + noise σ=0.1 vs BP", "BP + noise σ=0.1", "BP", "test_error_tail"),
        ("learning B: paper's NP vs FA + noise", "NP, paper's (ridge B ρ=1, warm-up)",
         "FA + noise (no B learning)", "test_error_tail"),
        ("solver: ridge ρ=0.999 vs ρ=1", "NP ridge B ρ=0.999", "NP, paper's (ridge B ρ=1, warm-up)",
         "test_error_tail"),
        ("solver: plain SGD B vs ridge", "NP plain SGD B (η_B 0.05)", "NP, paper's (ridge B ρ=1, warm-up)",
         "test_error_tail"),
        ("solver: LMS B + CV vs ridge", "NP, lab's (LMS B + CV)", "NP, paper's (ridge B ρ=1, warm-up)",
         "test_error_tail"),
        ("control variate: LMS B without vs with", "NP LMS B, no CV", "NP, lab's (LMS B + CV)", "test_error_tail"),
        ("control variate: signal angle, without vs with", "NP LMS B, no CV", "NP, lab's (LMS B + CV)",
         "signal_angle_deg_mean"),
        ("antithetic vs plain noise", "NP antithetic", "NP, paper's (ridge B ρ=1, warm-up)", "test_error_tail"),
        ("no warm-up vs warm-up", "NP no warm-up", "NP, paper's (ridge B ρ=1, warm-up)", "test_error_tail"),
    ],
    # §2's headline claims at 10× its budget (and FA against BP, whose gap §2 states in its text)
    "mlp-long": [
        ("paper's NP vs BP", "NP, paper's (ridge B)", "BP", "test_error_tail"),
        ("paper's NP vs FA", "NP, paper's (ridge B)", "FA", "test_error_tail"),
        ("lab's NP vs BP", "NP, lab's (LMS B + CV)", "BP", "test_error_tail"),
        ("lab's NP vs FA", "NP, lab's (LMS B + CV)", "FA", "test_error_tail"),
        ("lab's NP vs paper's NP", "NP, lab's (LMS B + CV)", "NP, paper's (ridge B)", "test_error_tail"),
        ("paper's NP vs SG oracle", "NP, paper's (ridge B)", "SG-oracle", "test_error_tail"),
        ("FA vs BP", "FA", "BP", "test_error_tail"),
        ("sign congruence: paper's NP vs FA", "NP, paper's (ridge B)", "FA", "sign_congruence_mean"),
        ("sign congruence: lab's NP vs FA", "NP, lab's (LMS B + CV)", "FA", "sign_congruence_mean"),
    ],
    # §2's baselines, a family of their own, so that adding them leaves §2's Holm correction as it was
    "mlp:baselines": [
        ("WM vs BP", "Weight mirror (WM)", "BP", "test_error_tail"),
        ("WM vs FA", "Weight mirror (WM)", "FA", "test_error_tail"),
        *[(f"{v} vs {r}", f"Sign symmetry {v}", r, "test_error_tail") for v in ("frSF", "brSF", "uSF")
          for r in ("BP", "FA")],
        ("lab's NP vs WM", "NP, lab's (LMS B + CV)", "Weight mirror (WM)", "test_error_tail"),
        ("signal angle: lab's NP vs WM", "NP, lab's (LMS B + CV)", "Weight mirror (WM)", "signal_angle_deg_mean"),
    ],
    "autoencoder": [
        *[(f"NP vs {b}", "NP", c, "test_loss_tail") for b, c in
          (("BP", "BP"), ("FA", "FA"), ("SG oracle", "SG-oracle"), ("Matched", "Matched (KP, no decay)"))],
        ("SG oracle vs BP", "SG-oracle", "BP", "test_loss_tail"),
        ("Matched vs KP", "Matched (KP, no decay)", "KP", "test_loss_tail"),
        *[(f"noise alone: {c} vs {c.split()[0]}", c, c.split()[0], "test_loss_tail")
          for c in ("FA + noise", "FA + noise σ=0.1", "BP + noise", "BP + noise σ=0.1")],
        ("learning B: NP vs FA + noise", "NP", "FA + noise", "test_loss_tail"),
        ("signal angle: NP vs FA", "NP", "FA", "signal_angle_deg_mean"),
    ],
    "scaling": [(f"{what}NP vs {b}, {part} {v}", f"NP {part} {v}", f"{b} {part} {v}", metric)
                for part, values in (("depth", (1, 2, 4, 6)), ("width", (32, 128, 512))) for v in values
                for what, b, metric in (("", "FA", "test_error_tail"), ("", "BP", "test_error_tail"),
                                        ("signal angle: ", "FA", "signal_angle_deg_mean"))],
}


def paired(final: pd.DataFrame, a: str, b: str, metric: str) -> dict:
    """A − B over the seeds both finished: mean, 95 % t interval, two-sided paired t test's p."""
    from scipy import stats
    ok = finished(final)
    va = ok[ok["condition"] == a].set_index("seed")[metric]
    vb = ok[ok["condition"] == b].set_index("seed")[metric]
    both = va.index.intersection(vb.index)
    d = pd.to_numeric(va[both], errors="coerce") - pd.to_numeric(vb[both], errors="coerce")
    d = d.dropna()
    if len(d) < 2:
        return {"n": len(d), "diff": math.nan, "half": math.nan, "p": math.nan}
    p = float(stats.ttest_rel(va[d.index], vb[d.index]).pvalue) if d.std(ddof=1) > 0 else \
        (0.0 if d.mean() != 0 else 1.0)
    return {"n": len(d), "diff": float(d.mean()), "half": ci_halfwidth(d), "p": p}


def holm(ps: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN, and is not counted)."""
    idx = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    out, running, m = [math.nan] * len(ps), 0.0, len(idx)
    for rank, (p, i) in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def claims(res: Results, alpha: float = 0.05, family: str | None = None) -> pd.DataFrame:
    """One row per claim (and dataset) of CLAIMS[family] (default: res.name): A − B with its 95 % CI,
    the paired t test's p, Holm's adjusted p over the table, and the verdict at `alpha` after Holm."""
    rows = []
    datasets = dict.fromkeys(res.final["cfg_dataset"]) if "cfg_dataset" in res.final else [None]
    for ds in datasets:
        f = res.final if ds is None else res.final[res.final["cfg_dataset"] == ds]
        for text, a, b, metric in CLAIMS.get(family or res.name, []):
            if not {a, b} <= set(f["condition"]):
                continue
            r = paired(f, a, b, metric)
            scale, unit = (100, " pt") if metric.startswith("sign_congruence") else \
                ((1, "°") if "angle" in metric else ((1, "") if "loss" in metric else (1, " pt")))
            rows.append({"dataset": ds, "claim": text, "metric": metric,
                         "A − B": f"{scale * r['diff']:+.2f}{unit} ± {scale * r['half']:.2f}", "p": r["p"],
                         "_diff": r["diff"], "seeds": r["n"]})
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    out["p (Holm)"] = holm(list(out["p"]))
    out["verdict"] = [("A < B" if d < 0 else "A > B") if ph < alpha else "no significant difference"
                      for d, ph in zip(out["_diff"], out["p (Holm)"])]
    out["p"] = [f"{p:.2g}" for p in out["p"]]
    out["p (Holm)"] = [f"{p:.2g}" for p in out["p (Holm)"]]
    return out.drop(columns="_diff")[["dataset", "claim", "metric", "A − B", "p", "p (Holm)", "verdict", "seeds"]]


# The table each experiment prints: which metrics, grouped how.
TABLES = {
    "feedback": dict(metrics=["signal_angle_deg_1_last", "signal_angle_deg_2_last", "relative_error_1_last",
                              "relative_error_2_last", "weight_angle_deg_2_last", "sign_congruence_1_last",
                              "sign_congruence_2_last"], by=["cfg_dataset", "part", "condition"],
                     fmt="{:.3g}"),
    "mlp": dict(metrics=["test_error_tail", "test_error", "signal_angle_deg_1", "signal_angle_deg_2",
                         "weight_angle_deg_mean", "sign_congruence_1", "sign_congruence_2"],
                by=["cfg_dataset", "condition"], spread="ci", wall=True),
    "mlp-long": dict(metrics=["test_error_tail", "test_error", "signal_angle_deg_1", "signal_angle_deg_2",
                              "weight_angle_deg_mean", "sign_congruence_1", "sign_congruence_2"],
                     by=["cfg_dataset", "condition"], spread="ci", wall=True),
    "autoencoder": dict(metrics=["test_loss_tail", "min_test_loss", "signal_angle_deg_mean",
                                 "weight_angle_deg_mean"], by=["cfg_dataset", "condition"], spread="ci", wall=True),
    "conv": dict(metrics=["test_error", "signal_angle_deg_1", "signal_angle_deg_2",
                          "signal_angle_deg_1_last", "signal_angle_deg_2_last",
                          "signal_angle_deg_3", "update_angle_deg_2", "update_angle_deg_3"],
                 by=["cfg_dataset", "condition"]),
    "ablations": dict(metrics=["test_error_tail", "test_error", "signal_angle_deg_1", "signal_angle_deg_2",
                               "weight_angle_deg_mean", "sign_congruence_mean"], by=["condition"],
                      spread="ci", wall=True),
    "scaling": dict(metrics=["test_error_tail", "test_error", "signal_angle_deg_mean", "weight_angle_deg_mean",
                             "sign_congruence_mean"], by=["part", "condition"], spread="ci", wall=True),
}


def table(res: Results) -> pd.DataFrame:
    if res.name.endswith("lrsearch"):
        return lr_table(res.final)
    return summarize(res.final, **TABLES[res.name])


def families(name: str) -> list[str]:
    """The claim families of experiment `name`: its own and its "name:part" ones."""
    return [f for f in CLAIMS if f == name or f.startswith(name + ":")]


# The Markdown blocks of docs/results.md, by the name in their <!-- TABLE:name[:kind] --> marker.
def block(res: Results, kind: str = "table") -> str:
    """The Markdown of a docs/results.md block: the experiment's table, its claims' tests
    ("claims"), its comparisons at equal cost ("cost…", reports/cost.py), or the tests of its claim
    family "<name>:<kind>" (e.g. mlp:baselines)."""
    if kind == "table":
        return to_markdown(table(res))
    if kind.startswith("cost"):
        from reports import cost
        return to_markdown(cost.table(res, kind))
    return to_markdown(claims(res, family=None if kind == "claims" else f"{res.name}:{kind}"))
