"""The report's tables: mean ± std over seeds per condition, and their Markdown."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from engine.experiments import Results

def summarize(final: pd.DataFrame, metrics: Iterable[str] = ("test_error", "signal_angle_deg_mean",
              "weight_angle_deg_mean", "sign_congruence_mean"), by: Iterable[str] = ("cfg_dataset", "condition"),
              fmt: str = "{:.2f}") -> pd.DataFrame:
    """mean ± std over seeds per condition, as strings, plus the number of seeds."""
    by = [b for b in by if b in final.columns]
    metrics = [m for m in metrics if m in final.columns]
    ok = final[final["status"] == "finished"] if "status" in final else final
    order = list(dict.fromkeys(final["condition"]))
    rows = []
    for keys, g in ok.groupby(by, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys))
        for m in metrics:
            v = pd.to_numeric(g[m], errors="coerce").dropna()
            spread = v.std(ddof=1) if len(v) > 1 else 0.0
            row[m] = "n/a" if v.empty else fmt.format(v.mean()) + " ± " + fmt.format(spread)
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




# The table each experiment prints: which metrics, grouped how.
TABLES = {
    "feedback": dict(metrics=["signal_angle_deg_1_last", "signal_angle_deg_2_last", "relative_error_1_last",
                              "relative_error_2_last", "weight_angle_deg_2_last", "sign_congruence_1_last",
                              "sign_congruence_2_last"], by=["cfg_dataset", "part", "condition"],
                     fmt="{:.3g}"),
    "mlp": dict(metrics=["test_error", "signal_angle_deg_1", "signal_angle_deg_2", "weight_angle_deg_mean",
                         "sign_congruence_1", "sign_congruence_2"], by=["cfg_dataset", "condition"]),
    "autoencoder": dict(metrics=["test_loss", "min_test_loss", "signal_angle_deg_mean",
                                 "weight_angle_deg_mean"], by=["cfg_dataset", "condition"]),
    "conv": dict(metrics=["test_error", "signal_angle_deg_1", "signal_angle_deg_2",
                          "signal_angle_deg_1_last", "signal_angle_deg_2_last",
                          "signal_angle_deg_3", "update_angle_deg_2", "update_angle_deg_3"],
                 by=["cfg_dataset", "condition"]),
    "ablations": dict(metrics=["test_error", "signal_angle_deg_1", "signal_angle_deg_2",
                               "weight_angle_deg_mean", "sign_congruence_mean"], by=["condition"]),
    "scaling": dict(metrics=["test_error", "signal_angle_deg_mean", "weight_angle_deg_mean",
                             "sign_congruence_mean"], by=["part", "condition"]),
}


def table(res: Results) -> pd.DataFrame:
    return summarize(res.final, **TABLES[res.name])
