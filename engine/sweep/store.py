"""A sweep's state on disk (the run folders tagged with it, trials.parquet, sweep.json) and
the summary table of the best configuration per rule."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

from engine.status import Status
from engine.runs.reader import try_read_json_object
from engine.sweep.files import is_regular, read_json_object
from engine.sweep.spec import DONE, SWEEPS_DIR, SWEEP_FILE, TRIALS_FILE, Trial
from engine.sweep.trial import sweep_tag, make_row


def sweep_dir(runs_root: str | os.PathLike, sweep_id: str) -> Path:
    return Path(runs_root) / SWEEPS_DIR / sweep_id


_TAG_TYPES = {"sweep_id": str, "trial_id": str, "point_id": str, "search": str, "sample": int,
              "seed_index": int, "varied": list}


def _valid_tag(tag: dict | None) -> bool:
    """A run folder's sweep.json naming its sweep and trial, each field it has of the type the
    trials table holds (a trial id that is a list is no dict key; a dict is no column value)."""
    return (tag is not None and all(isinstance(tag.get(k), str) and tag[k] for k in ("sweep_id", "trial_id"))
            and all(k not in tag or isinstance(tag[k], t) and not isinstance(tag[k], bool)
                    for k, t in _TAG_TYPES.items())
            and all(isinstance(v, str) for v in tag.get("varied", [])))


def sweep_runs(runs_root: str | os.PathLike, sweep_id: str) -> dict[str, list[Path]]:
    """trial id → run folders tagged with this sweep (oldest first)."""
    root = Path(runs_root)
    out: dict[str, list[Path]] = {}
    if not root.is_dir():
        return out
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name != SWEEPS_DIR):
        tag = try_read_json_object(path / SWEEP_FILE)
        if _valid_tag(tag) and tag["sweep_id"] == sweep_id:
            out.setdefault(tag["trial_id"], []).append(path)
    return out


def finished_trials(runs_root: str | os.PathLike, sweep_id: str,
                    trials: Iterable[Trial] | None = None) -> dict[str, dict]:
    """trial id → table row, for trials of this sweep already finished, diverged or failed.

    Given the sweep's `trials`, only theirs, each row made of the trial's own config and tag and
    the run's summary: a run folder is read, never trusted for what goes into the table.
    """
    from engine.runs.layout import CONFIG_FILE, SUMMARY_FILE

    known = None if trials is None else {t.trial_id: t for t in trials}
    done: dict[str, dict] = {}
    for tid, paths in sweep_runs(runs_root, sweep_id).items():
        if known is not None and tid not in known:
            continue
        for path in reversed(paths):                           # the newest that is done
            summary = try_read_json_object(path / SUMMARY_FILE) or {}
            config = try_read_json_object(path / CONFIG_FILE)
            if summary.get("status") in DONE and config is not None and _valid_summary(summary):
                try:
                    if known is None:
                        done[tid] = make_row(config, try_read_json_object(path / SWEEP_FILE), summary, path)
                    else:
                        t = known[tid]
                        done[tid] = make_row(t.config, sweep_tag(t.to_json(), sweep_id), summary, path)
                except (KeyError, TypeError, ValueError, OverflowError):   # edited or damaged:
                    continue                                                # run it again
                break
    return done


def _valid_summary(summary: dict) -> bool:
    """The fields a table row takes from summary.json, of the types its columns hold."""
    steps, step, error = summary.get("steps"), summary.get("diverged_step"), summary.get("error")
    return ((steps is None or isinstance(steps, (int, float, str)) and not isinstance(steps, bool))
            and (step is None or isinstance(step, int) and not isinstance(step, bool))
            and (error is None or isinstance(error, str)))


def mark_stopped(runs_root: str | os.PathLike, sweep_id: str, trial_ids: Iterable[str]) -> None:
    """Runs of interrupted trials whose folder still says "running" are saved as "stopped"."""
    from engine.runs.layout import SUMMARY_FILE
    from engine.runs.writer import atomic_write_json

    wanted = set(trial_ids)
    for tid, paths in sweep_runs(runs_root, sweep_id).items():
        if tid not in wanted:
            continue
        for path in paths:
            summary = try_read_json_object(path / SUMMARY_FILE)
            if summary and summary.get("status") == Status.RUNNING:
                summary.update(status=Status.STOPPED, error="the sweep was interrupted")
                try:
                    atomic_write_json(path / SUMMARY_FILE, summary)
                except OSError:
                    pass


def trials_frame(rows: Iterable[dict]):
    import pandas as pd

    df = pd.DataFrame(list(rows))
    if not df.empty:
        df = df.sort_values(["finished_at", "trial_id"], kind="stable").reset_index(drop=True)
        for col in ("error", "diverged_step"):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
        df["diverged_step"] = df["diverged_step"].astype("Int64")
    return df


def load_trials(path: str | os.PathLike):
    """trials.parquet of a sweep folder (or a trials.parquet path); an empty frame if none yet."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / TRIALS_FILE
    if not is_regular(path):                   # a FIFO would block the read forever
        return pd.DataFrame()
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError):
        return pd.DataFrame()


def list_sweeps(runs_root: str | os.PathLike = "runs") -> list[dict]:
    """The sweep.json of every sweep under runs_root/sweeps, newest first."""
    base = Path(runs_root) / SWEEPS_DIR
    out = []
    if base.is_dir():
        for d in base.iterdir():
            info = read_json_object(d / SWEEP_FILE)        # the spec: larger than a run's files
            if info:
                info["path"] = str(d)
                info["mtime"] = max((d / f).stat().st_mtime for f in (SWEEP_FILE, TRIALS_FILE)
                                    if (d / f).exists())
                out.append(info)
    return sorted(out, key=lambda i: -i["mtime"])


# ============================================================== the summary
def best_table(df, metric: str = "test_accuracy", mode: str = "max", per: str = "rule"):
    """Best configuration per `per` value: settings averaged over seeds. A configuration counts
    only if all of its seeds finished (a diverged or failed seed rules it out)."""
    import pandas as pd

    if df is None or df.empty:
        return pd.DataFrame()
    d = df.copy()
    d["_ok"] = d["status"] == Status.FINISHED
    d["_m"] = d[metric].where(d["_ok"])
    g = d.groupby("point_id", sort=False)
    agg = g.agg(**{f"{metric}_mean": ("_m", "mean"), f"{metric}_std": ("_m", "std"),
                   "seeds": ("_m", "size"), "ok": ("_ok", "sum")})
    agg.loc[agg["ok"] < agg["seeds"], f"{metric}_mean"] = math.nan
    # the trial's own `seeds` setting (members of one run) is not this table's count of seeds
    first = g.head(1).set_index("point_id").drop(columns=["seeds"], errors="ignore")
    agg = agg.join(first)
    agg = agg[agg[f"{metric}_mean"].notna()]
    if agg.empty:
        return pd.DataFrame()
    varied = [v for v in dict.fromkeys(",".join(df["varied"].dropna()).split(",")) if v and v != per]
    rows = []
    for key, part in agg.groupby(per, sort=True):
        best = part.sort_values(f"{metric}_mean", ascending=(mode == "min")).iloc[0]
        mine = set(str(best["varied"]).split(","))
        row = {per: key}
        for v in varied:
            row[v] = best[v] if v in mine else None
        row.update({f"{metric}_mean": best[f"{metric}_mean"], f"{metric}_std": best[f"{metric}_std"],
                    "seeds": int(best["seeds"]), "configs": int(len(part)),
                    "trials": int((df[per] == key).sum()), "point_id": best.name})


        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values(f"{metric}_mean", ascending=(mode == "min")).reset_index(drop=True)


def format_best(table, metric: str) -> str:
    if table is None or table.empty:
        return "no configuration finished on all of its seeds"
    shown = table.drop(columns=["point_id"]).copy()
    for col in shown.columns:
        if col in ("seeds", "configs", "trials"):
            continue
        digits = ".4f" if col in (f"{metric}_mean", f"{metric}_std") else ".3g"
        shown[col] = [("-" if v is None or (isinstance(v, float) and v != v)
                       else (format(v, digits) if isinstance(v, float) else str(v)))
                      for v in shown[col]]
    return shown.to_string(index=False)
