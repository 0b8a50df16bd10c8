"""A run's curve sets: one for a run, one per value of σ for a population that compares σ.

A population trained with several values of σ (`RunConfig.sigmas()`, `seeds` members each) is
drawn as one set of curves per σ, in a colour of its own: each the mean of that σ's seeds, with
their band when there are several. So values of σ are compared the way seeds are, beyond their
noise. A plain run's (or a population of seeds') curves are keyed by the run's id, a σ group's by
(the run's id, its index).
"""

from __future__ import annotations

from typing import Any

from engine.config import RunConfig
from engine.members import mean_record


def curve_sets(run_id: Any, cfg: RunConfig) -> list[tuple[Any, float | None, int]]:
    """(curve key, its σ or None, members drawn) for each curve set of a run."""
    sigmas = cfg.sigmas()
    if len(sigmas) == 1:
        return [(run_id, None, cfg.seeds)]
    return [((run_id, i), sigma, cfg.seeds) for i, sigma in enumerate(sigmas)]


def set_label(label: str, cfg: RunConfig, sigma: float | None) -> str:
    """A set's legend label: the run's, naming the set's σ where the run's names them all."""
    if sigma is None:
        return label
    listed = "σ=" + ",".join(f"{v:g}" for v in cfg.sigmas())
    return label.replace(listed, f"σ={sigma:g}") if listed in label else f"{label} σ={sigma:g}"


def split_record(record: dict, cfg: RunConfig) -> list[dict]:
    """A record as one record per curve set (curve_sets' order): a σ group's members, their
    mean at the top level (what a population's record has), and the σ they share."""
    sigmas = cfg.sigmas()
    if len(sigmas) == 1:
        return [record]
    members, seeds = record["members"], cfg.seeds
    shared = {k: v for k, v in record.items() if k not in members[0] and k != "members"}
    out = []
    for i, sigma in enumerate(sigmas):
        group = members[i * seeds:(i + 1) * seeds]
        if seeds == 1:
            out.append({**shared, **group[0], "sigma": sigma})
        else:
            measured = [{k: v for k, v in m.items() if k not in ("member", "seed", "sigma")} for m in group]
            out.append({**shared, **mean_record(measured), "sigma": sigma, "members": group})
    return out


def split_rows(rows: list[dict], cfg: RunConfig) -> list[list[dict]]:
    """A saved run's rows (one per member and step) as the rows of each curve set."""
    sigmas = cfg.sigmas()
    if len(sigmas) == 1:
        return [rows]
    return [[row for row in rows if row.get("sigma") == sigma] for sigma in sigmas]
