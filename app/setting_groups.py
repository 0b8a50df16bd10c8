"""A run's curve sets: one for a run, one per group of settings for a population that compares
settings (several values of σ, lr or feedback_lr).

A population trained with lists of member settings (`RunConfig.groups()`, `seeds` members each)
is drawn as one set of curves per group, in a colour of its own: each the mean of that group's
seeds, with their band when there are several. So settings are compared the way seeds are,
beyond their noise. A plain run's (or a population of seeds') curves are keyed by the run's id, a
group's by (the run's id, its index).
"""

from __future__ import annotations

from typing import Any

from engine.config import RunConfig
from engine.members import SYMBOLS, group_name, mean_record
from engine.values import format_numbers


def curve_sets(run_id: Any, cfg: RunConfig) -> list[tuple[Any, dict | None, int]]:
    """(curve key, its group's compared settings or None, members drawn) for each curve set."""
    groups = cfg.groups()
    if len(groups) == 1:
        return [(run_id, None, cfg.seeds)]
    return [((run_id, i), group, cfg.seeds) for i, group in enumerate(groups)]


def set_label(label: str, cfg: RunConfig, group: dict | None) -> str:
    """A set's legend label: the run's (engine.labels.run_label writes σ=0.001,0.1 lr=…), each list
    of values it names narrowed to the group's."""
    if group is None:
        return label
    missing = {}
    for name, value in group.items():
        listed = f"{SYMBOLS[name]}={format_numbers(cfg.values_of(name))}"   # as run_label writes it
        if listed in label:
            label = label.replace(listed, f"{SYMBOLS[name]}={value:g}")
        else:
            missing[name] = value
    return f"{label} {group_name(missing)}" if missing else label


def split_record(record: dict, cfg: RunConfig) -> list[dict]:
    """A record as one record per curve set (curve_sets' order): a group's members, their mean at
    the top level (what a population's record has), and the settings they share."""
    groups = cfg.groups()
    if len(groups) == 1:
        return [record]
    members, seeds = record["members"], cfg.seeds
    shared = {k: v for k, v in record.items() if k not in members[0] and k != "members"}
    out = []
    for i, group in enumerate(groups):
        block = members[i * seeds:(i + 1) * seeds]
        if seeds == 1:
            out.append({**shared, **block[0], **group})
        else:
            measured = [{k: v for k, v in m.items() if k not in ("member", "seed", "diverged_step", *group)}
                        for m in block]
            out.append({**shared, **mean_record(measured), **group, "members": block})
    return out


def split_rows(rows: list[dict], cfg: RunConfig) -> list[list[dict]]:
    """A saved run's rows (one per member and step) as the rows of each curve set."""
    groups = cfg.groups()
    if len(groups) == 1:
        return [rows]
    return [[row for row in rows if all(row.get(k) == v for k, v in group.items())] for group in groups]
