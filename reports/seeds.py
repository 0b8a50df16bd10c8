"""Statistics over a condition's seeds, shared by the report's tables (reports/tables.py) and its
equal-cost comparisons (reports/cost.py): which runs count, and mean ± spread as the report
prints it."""

from __future__ import annotations

import math

import pandas as pd


def finished(final: pd.DataFrame) -> pd.DataFrame:
    """The runs that finished (all of them where the table has no status)."""
    return final[final["status"] == "finished"] if "status" in final else final


def t_quantile(n: int) -> float:
    """The 97.5 % quantile of Student's t with n − 1 degrees of freedom (a 95 % two-sided interval)."""
    from scipy import stats
    return float(stats.t.ppf(0.975, n - 1))


def ci_halfwidth(v: pd.Series) -> float:
    """Half-width of the 95 % t confidence interval of the mean of `v` (0 for a single value)."""
    v = pd.to_numeric(v, errors="coerce").dropna()
    return t_quantile(len(v)) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0


def mean_spread(v: pd.Series, spread: str = "std", fmt: str = "{:.2f}") -> str:
    """'mean ± spread' of `v`'s numbers: the sample standard deviation ("std") or the 95 % t
    interval's half-width ("ci"), 0 for a single value; "n/a" when there are none."""
    v = pd.to_numeric(v, errors="coerce").dropna()
    if v.empty:
        return "n/a"
    half = ci_halfwidth(v) if spread == "ci" else (v.std(ddof=1) if len(v) > 1 else 0.0)
    return fmt.format(v.mean()) + " ± " + fmt.format(half)
