"""Sweep files' dicts and command-line flags into a checked SweepSpec (spec.py), each mistake a
one-line SweepError. Pure: no training, no disk state (files.py reads the files)."""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable

from engine.values import INT64_MAX, INT64_MIN, shown
from engine.errors import ConfigError, one_line
from engine.config import RunConfig, settings
from engine.sweep.spec import (DEFAULTS, DISTRIBUTIONS, MAX_TRIALS, METRICS, SEARCH_KEYS, SWEEP_KEYS,
                               TOP_KEYS, Distribution, Search, SweepError, SweepSpec, Trial, coerce)

MAX_DEPTH = 32                        # a sweep file nests ~8 levels (search, grid, a list of widths)
MAX_NODES = 1_000_000                 # values, counting every use of a YAML alias
MAX_NAME = 100                        # the sweep id is a folder name


def toml_parser():
    try:
        import tomllib                   # Python ≥ 3.11
    except ModuleNotFoundError:          # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def check_shape(data: Any, where: str) -> None:
    """SweepError for input nested deeper than MAX_DEPTH or holding more than MAX_NODES values.

    Iterative, so that nesting deeper than the recursion limit is named, not a RecursionError in
    deepcopy or json.dumps; YAML aliases are counted at every use, as expanding them would cost.
    """
    stack, nodes = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise SweepError(f"{where} nests lists or tables more than {MAX_DEPTH} levels deep; "
                             f"at most {MAX_DEPTH} are allowed")
        if nodes > MAX_NODES:
            raise SweepError(f"{where} holds more than {MAX_NODES:,} values; at most {MAX_NODES:,} "
                             "are allowed")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


def _table(data: Any, where: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SweepError(f"{where} must be a table (key = value pairs), not {shown(data)}")
    return data


def _known(data: dict, allowed: Iterable[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise SweepError(f"unknown key {shown(key)} in {where}; known keys are {', '.join(allowed)}")


def _field(name: str, where: str) -> None:
    if name not in settings():
        raise SweepError(f"unknown setting {shown(name)} in {where}; settings are RunConfig's: "
                         f"{', '.join(sorted(settings()))}")
    if name == "seed" and where != "[base]":
        raise SweepError(f"seed cannot be varied in {where}: set base seed (the first seed) and "
                         "seeds_per_point instead")


def _int(value: Any, name: str, low: int, high: int = MAX_TRIALS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SweepError(f"{name}={shown(value)} is not allowed; it must be an integer >= {low} "
                         f"and <= {high:,}")
    return value


def _number(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2 ** 1023          # math.isfinite would raise OverflowError past 1.8e308
    return isinstance(value, float) and math.isfinite(value)


def parse_distribution(name: str, spec: Any, where: str = "[random]") -> Distribution:
    """`{log_uniform = [lo, hi]}`, `{uniform = …}`, `{int_uniform = …}`, `{choice = […]}`; a bare
    list means a choice."""
    if isinstance(spec, list):
        spec = {"choice": spec}
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise SweepError(f"{name} in {where} must be one of {{log_uniform = [low, high]}}, "
                         f"{{uniform = [low, high]}}, {{int_uniform = [low, high]}} or "
                         f"{{choice = [values]}}; got {shown(spec)}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        raise SweepError(f"{name} = {{{kind} = {shown(args)}}} in {where} is not allowed; it needs a list")
    if kind == "choice":
        return Distribution(kind, tuple(coerce(name, a) for a in args))
    if len(args) != 2 or not all(_number(a) for a in args) or args[0] > args[1]:
        raise SweepError(f"{name} = {{{kind} = {shown(args)}}} in {where} is not allowed; it needs "
                         "[low, high] with low <= high")
    if kind == "log_uniform" and not args[0] > 0:
        raise SweepError(f"{name} = {{log_uniform = {shown(args)}}} in {where} is not allowed; "
                         "a log-uniform range needs 0 < low <= high")
    if kind == "int_uniform":
        # numpy draws int64s from [low, high + 1)
        if not all(isinstance(a, int) and INT64_MIN <= a < INT64_MAX for a in args):
            raise SweepError(f"{name} = {{int_uniform = {shown(args)}}} in {where} is not allowed; "
                             f"it needs two integers from {INT64_MIN} to {INT64_MAX - 1}")
        return Distribution(kind, (int(args[0]), int(args[1])))
    return Distribution(kind, (float(args[0]), float(args[1])))


def _parse_search(data: dict, where: str, name: str) -> Search:
    _known(data, SEARCH_KEYS, where)
    grid = _table(data.get("grid"), f"{where}.grid")
    random = _table(data.get("random"), f"{where}.random")
    base = _table(data.get("base"), f"{where}.base")
    for k in base:
        _field(k, f"{where}.base")
    out = Search(name=str(data.get("name", name)), base={k: coerce(k, v) for k, v in base.items()})
    for k, values in grid.items():
        _field(k, f"{where}.grid")
        if not isinstance(values, list) or not values:
            raise SweepError(f"{k} in {where}.grid must be a non-empty list of values, not {shown(values)}")
        out.grid[k] = [coerce(k, v) for v in values]
    for k, spec in random.items():
        _field(k, f"{where}.random")
        if k in out.grid:
            raise SweepError(f"{k} is in both {where}.grid and {where}.random; give it in one")
        out.random[k] = parse_distribution(k, spec, f"{where}.random")
    if "samples" in data:
        out.samples = _int(data["samples"], f"{where} samples", 1)
    return out


def parse_sweep(data: dict, overrides: dict | None = None) -> SweepSpec:
    """A checked SweepSpec from a sweep file's dict (and CLI overrides). Raises SweepError."""
    check_shape(data, "the sweep")
    check_shape(overrides, "the flags")
    data = copy.deepcopy(_table(data, "the sweep"))
    _known(data, TOP_KEYS, "the sweep file")
    o = overrides or {}
    head = {**_table(data.get("sweep"), "[sweep]"), **o.get("sweep", {})}
    _known(head, SWEEP_KEYS, "[sweep]")
    base = {**_table(data.get("base"), "[base]"), **o.get("base", {})}
    for k in base:
        _field(k, "[base]")
    name = str(head.get("name", "sweep"))
    if len(name) > MAX_NAME:
        raise SweepError(f"name={shown(name)} is not allowed; it must be at most {MAX_NAME} characters")
    spec = SweepSpec(name=name,
                     seed=_int(head.get("seed", 0), "seed", 0, INT64_MAX),
                     samples=_int(head.get("samples", 1), "samples", 1),
                     seeds_per_point=_int(head.get("seeds_per_point", 1), "seeds_per_point", 1),
                     base={k: coerce(k, v) for k, v in base.items()})


    spec.metric = str(head.get("metric", "test_accuracy"))
    if spec.metric not in METRICS:
        raise SweepError(f"metric={shown(spec.metric)} is not allowed; choose one of {', '.join(METRICS)}")
    spec.mode = str(head.get("mode", METRICS[spec.metric]))
    if spec.mode not in ("max", "min"):
        raise SweepError(f"mode={shown(spec.mode)} is not allowed; choose one of max, min")

    searches = data.get("search")
    flat = {k: data[k] for k in ("grid", "random") if k in data}
    extra = {k: o[k] for k in ("grid", "random") if o.get(k)}
    if searches is not None:
        if flat:
            raise SweepError("use either [grid]/[random] or [[search]] tables, not both")
        if not isinstance(searches, list) or not searches or not all(isinstance(s, dict) for s in searches):
            raise SweepError("[[search]] must be a list of tables, each with a grid and/or random")
        for i, s in enumerate(searches):
            s = {**s}
            for k, v in extra.items():                   # flags add to every search
                s[k] = {**_table(s.get(k), f"[[search]] {i + 1} {k}"), **v}
            spec.searches.append(_parse_search(s, f"[[search]] {i + 1}", f"search{i + 1}"))
    else:
        s = {**flat}
        for k, v in extra.items():
            s[k] = {**_table(s.get(k), f"[{k}]"), **v}
        spec.searches.append(_parse_search(s, "the sweep", "main"))
    names = [s.name for s in spec.searches]
    if len(set(names)) != len(names):
        raise SweepError(f"search names must differ; got {', '.join(names)}")
    # Unknown values for choice fields (a misspelt rule) are caught per trial by validate() and
    # recorded as failed trials; check_trials() reports them before anything runs.
    try:
        RunConfig.from_dict({**DEFAULTS, **spec.base})
    except (TypeError, ConfigError) as exc:
        raise SweepError(f"[base]: {one_line(exc)}") from None
    spec.check_size()
    return spec


def check_trials(trials: list[Trial]) -> tuple[int, str | None]:
    """(number of trials whose config fails RunConfig.validate(), the first message)."""
    bad, first = 0, None
    for t in trials:
        try:
            RunConfig.from_dict(t.config).validate()
        except (ValueError, TypeError, ArithmeticError) as exc:   # ConfigError is a ValueError
            bad += 1
            first = first or one_line(exc)
    return bad, first
