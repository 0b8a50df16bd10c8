"""What a sweep is: its distributions, searches and trials, and the parsing of sweep files
and flags into a SweepSpec. Pure: no training, no disk state."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from engine.errors import ConfigError
from engine.config import RunConfig, defaults, settings
from engine.status import Status

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DASK_MISSING = ("the sweep runs on Dask, which is not installed: pip install 'creditlab[sweep]', "
                "or pass --serial to run the trials one after another in this process")

SWEEPS_DIR = "sweeps"                 # <runs root>/sweeps/<sweep id>/
TRIALS_FILE = "trials.parquet"
SWEEP_FILE = "sweep.json"             # the spec (in the sweep folder), the tag (in a run folder)
DONE = (Status.FINISHED, Status.DIVERGED, Status.FAILED)
METRICS = {"test_accuracy": "max", "test_loss": "min", "train_loss": "min"}
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
SWEEP_KEYS = ("name", "seed", "samples", "seeds_per_point", "metric", "mode")
SEARCH_KEYS = ("name", "grid", "random", "samples", "base")
TOP_KEYS = ("sweep", "base", "grid", "random", "search")
MAX_TRIALS = 100_000
_DEFAULTS = RunConfig().to_dict()


class SweepError(ConfigError):
    """Bad sweep input (file or flags). The message is one line."""


@dataclass(frozen=True)
class Distribution:
    kind: str                        # one of DISTRIBUTIONS
    args: tuple                      # (low, high) or the choices

    def draw(self, u: float, rng) -> Any:
        """A value from a uniform u ∈ [0, 1) (ranges) or the generator (choices, integers)."""
        if self.kind == "log_uniform":
            lo, hi = math.log10(self.args[0]), math.log10(self.args[1])
            return min(max(_round(10.0 ** (lo + u * (hi - lo))), self.args[0]), self.args[1])
        if self.kind == "uniform":
            lo, hi = self.args
            return min(max(_round(lo + u * (hi - lo)), lo), hi)
        if self.kind == "int_uniform":
            return int(rng.integers(self.args[0], self.args[1] + 1))
        return copy.deepcopy(self.args[int(rng.integers(len(self.args)))])

    def to_json(self) -> dict:
        return {self.kind: list(self.args)}


def _round(x: float) -> float:
    """Six significant digits: readable in tables and file names, and a stable hash."""
    return float(f"{x:.6g}")


@dataclass
class Search:
    name: str
    grid: dict[str, list] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)
    samples: int | None = None       # None: the sweep's
    base: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "grid": self.grid,
                "random": {k: d.to_json() for k, d in self.random.items()},
                "samples": self.samples, "base": self.base}


@dataclass
class Trial:
    trial_id: str                    # hash of the full config
    point_id: str                    # hash of the config without the seed
    search: str
    sample: int                      # random-draw index (0 for a pure grid)
    seed_index: int
    varied: tuple[str, ...]          # the names this search varies
    config: dict[str, Any]           # RunConfig.to_dict()

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"varied": list(self.varied)}


@dataclass
class SweepSpec:
    name: str = "sweep"
    seed: int = 0
    samples: int = 1
    seeds_per_point: int = 1
    metric: str = "test_accuracy"
    mode: str = "max"
    base: dict[str, Any] = field(default_factory=dict)
    searches: list[Search] = field(default_factory=list)

    # ---------------------------------------------------------- identity
    def identity(self) -> dict:
        """What the sweep id hashes: the search space and the seed, not the budget. Draw k and
        seed j do not depend on how many there are, so more `samples` or `seeds_per_point` extend
        the same sweep (and reuse its finished trials); the metric and where it runs do not count."""
        return {"seed": self.seed, "base": self.base,
                "searches": [{**s.to_json(), "samples": None} for s in self.searches]}

    @property
    def sweep_id(self) -> str:
        return f"{_slug(self.name)}-{_hash(self.identity())[:6]}"

    def to_json(self) -> dict:
        return {"sweep_id": self.sweep_id, "name": self.name, "metric": self.metric,
                "mode": self.mode, "seed": self.seed, "samples": self.samples,
                "seeds_per_point": self.seeds_per_point, "base": self.base,
                "searches": [s.to_json() for s in self.searches]}

    @property
    def varied(self) -> list[str]:
        names: list[str] = []
        for s in self.searches:
            for k in [*s.grid, *s.random]:
                if k not in names:
                    names.append(k)
        return names

    # ---------------------------------------------------------- trials
    def trials(self) -> list[Trial]:
        """Every trial, in a fixed order; the same spec always gives the same list."""
        import numpy as np

        out: dict[str, Trial] = {}
        for search in self.searches:
            keys = list(search.grid)
            points = list(itertools.product(*(search.grid[k] for k in keys))) or [()]
            n_samples = (search.samples or self.samples) if search.random else 1
            draws = []
            for i in range(n_samples):
                values = {}
                for name, dist in search.random.items():
                    rng = np.random.default_rng(_draw_seed(self.seed, i, name))
                    values[name] = dist.draw(float(rng.random()), rng)
                draws.append(values)
            varied = tuple(dict.fromkeys([*keys, *search.random]))
            for point in points:
                for i, values in enumerate(draws):
                    cfg = {**_DEFAULTS, **self.base, **search.base,
                           **dict(zip(keys, point)), **values}
                    cfg = {k: _coerce(k, v) for k, v in cfg.items()}
                    point_id = _hash({k: v for k, v in cfg.items() if k != "seed"})[:12]
                    first_seed = int(cfg["seed"])
                    for j in range(self.seeds_per_point):
                        c = {**cfg, "seed": first_seed + j}
                        tid = _hash(c)[:12]
                        if tid not in out:
                            out[tid] = Trial(tid, point_id, search.name, i, j, varied, c)
                        if len(out) > MAX_TRIALS:
                            raise SweepError(f"the sweep has more than {MAX_TRIALS} trials; "
                                             "use fewer grid values, samples or seeds")
        return list(out.values())


def _draw_seed(seed: int, sample: int, name: str) -> int:
    """A 128-bit seed for draw `sample` of parameter `name`: independent across all three."""
    digest = hashlib.sha256(f"creditlab-sweep/{seed}/{sample}/{name}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.") or "sweep"


def _coerce(name: str, value: Any) -> Any:
    """TOML's 1 for a float field becomes 1.0, so equal configs hash equally."""
    default = defaults().get(name)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# ============================================================== parsing
def load_sweep_file(path: str | os.PathLike) -> dict:
    """The raw dict of a .toml, .yaml or .yml sweep file; SweepError with one line if unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"cannot read the sweep file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SweepError(f"sweep file {path.name!r} is not UTF-8 text (byte {exc.start}); save it "
                         "as UTF-8") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SweepError("YAML sweep files need PyYAML: pip install pyyaml, or write the "
                             "sweep as TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SweepError(f"{path.name} is not valid YAML: {_one_line(exc)}") from None
    elif suffix == ".toml":
        try:
            data = _toml().loads(text)
        except ValueError as exc:          # tomllib.TOMLDecodeError is a ValueError
            raise SweepError(f"{path.name} is not valid TOML: {_one_line(exc)}") from None
    else:
        raise SweepError(f"sweep file {path.name!r} is not allowed; it must end in .toml, "
                         ".yaml or .yml")
    if not isinstance(data, dict):
        raise SweepError(f"{path.name} must hold tables such as [sweep], [base], [grid], [random]")
    return data


def _toml():
    try:
        import tomllib                   # Python ≥ 3.11
    except ModuleNotFoundError:          # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _table(data: Any, where: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SweepError(f"{where} must be a table (key = value pairs), not {data!r}")
    return data


def _known(data: dict, allowed: Iterable[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise SweepError(f"unknown key {key!r} in {where}; known keys are {', '.join(allowed)}")


def _field(name: str, where: str) -> None:
    if name not in settings():
        raise SweepError(f"unknown setting {name!r} in {where}; settings are RunConfig's: "
                         f"{', '.join(sorted(settings()))}")
    if name == "seed" and where != "[base]":
        raise SweepError(f"seed cannot be varied in {where}: set base seed (the first seed) and "
                         "seeds_per_point instead")


def _int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SweepError(f"{name}={value!r} is not allowed; it must be an integer >= {low}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_distribution(name: str, spec: Any, where: str = "[random]") -> Distribution:
    """`{log_uniform = [lo, hi]}`, `{uniform = …}`, `{int_uniform = …}`, `{choice = […]}`; a bare
    list means a choice."""
    if isinstance(spec, list):
        spec = {"choice": spec}
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise SweepError(f"{name} in {where} must be one of {{log_uniform = [low, high]}}, "
                         f"{{uniform = [low, high]}}, {{int_uniform = [low, high]}} or "
                         f"{{choice = [values]}}; got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        raise SweepError(f"{name} = {{{kind} = {args!r}}} in {where} is not allowed; it needs a list")
    if kind == "choice":
        return Distribution(kind, tuple(_coerce(name, a) for a in args))
    if len(args) != 2 or not all(_number(a) for a in args) or args[0] > args[1]:
        raise SweepError(f"{name} = {{{kind} = {args!r}}} in {where} is not allowed; it needs "
                         "[low, high] with low <= high")
    if kind == "log_uniform" and not args[0] > 0:
        raise SweepError(f"{name} = {{log_uniform = {args!r}}} in {where} is not allowed; "
                         "a log-uniform range needs 0 < low <= high")
    if kind == "int_uniform":
        if not all(isinstance(a, int) for a in args):
            raise SweepError(f"{name} = {{int_uniform = {args!r}}} in {where} is not allowed; "
                             "it needs two integers")
        return Distribution(kind, (int(args[0]), int(args[1])))
    return Distribution(kind, (float(args[0]), float(args[1])))


def _parse_search(data: dict, where: str, name: str) -> Search:
    _known(data, SEARCH_KEYS, where)
    grid = _table(data.get("grid"), f"{where}.grid")
    random = _table(data.get("random"), f"{where}.random")
    base = _table(data.get("base"), f"{where}.base")
    for k in base:
        _field(k, f"{where}.base")
    out = Search(name=str(data.get("name", name)), base={k: _coerce(k, v) for k, v in base.items()})
    for k, values in grid.items():
        _field(k, f"{where}.grid")
        if not isinstance(values, list) or not values:
            raise SweepError(f"{k} in {where}.grid must be a non-empty list of values, not {values!r}")
        out.grid[k] = [_coerce(k, v) for v in values]
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
    data = copy.deepcopy(_table(data, "the sweep"))
    _known(data, TOP_KEYS, "the sweep file")
    o = overrides or {}
    head = {**_table(data.get("sweep"), "[sweep]"), **o.get("sweep", {})}
    _known(head, SWEEP_KEYS, "[sweep]")
    base = {**_table(data.get("base"), "[base]"), **o.get("base", {})}
    for k in base:
        _field(k, "[base]")
    spec = SweepSpec(name=str(head.get("name", "sweep")),
                     seed=_int(head.get("seed", 0), "seed", 0),
                     samples=_int(head.get("samples", 1), "samples", 1),
                     seeds_per_point=_int(head.get("seeds_per_point", 1), "seeds_per_point", 1),
                     base={k: _coerce(k, v) for k, v in base.items()})


    spec.metric = str(head.get("metric", "test_accuracy"))
    if spec.metric not in METRICS:
        raise SweepError(f"metric={spec.metric!r} is not allowed; choose one of {', '.join(METRICS)}")
    spec.mode = str(head.get("mode", METRICS[spec.metric]))
    if spec.mode not in ("max", "min"):
        raise SweepError(f"mode={spec.mode!r} is not allowed; choose one of max, min")

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
        RunConfig.from_dict({**_DEFAULTS, **spec.base})
    except (TypeError, ConfigError) as exc:
        raise SweepError(f"[base]: {_one_line(exc)}") from None
    return spec


def check_trials(trials: list[Trial]) -> tuple[int, str | None]:
    """(number of trials whose config fails RunConfig.validate(), the first message)."""
    bad, first = 0, None
    for t in trials:
        try:
            RunConfig.from_dict(t.config).validate()
        except (ConfigError, TypeError) as exc:
            bad += 1
            first = first or _one_line(exc)
    return bad, first
