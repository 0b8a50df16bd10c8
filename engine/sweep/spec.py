"""What a sweep is: its distributions, searches and trials (parse.py reads files and flags into a
SweepSpec). Pure: no training, no disk state."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from engine.values import shown
from engine.errors import ConfigError
from engine.config import MEMBER_SETTINGS, RunConfig, defaults, rule_options
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
# Expanding trials costs their number times the size of each one's settings (hashed as JSON):
# MAX_TRIALS trials of today's ~700 characters take ~20 s here. This budget allows 2,000 each, and
# costs a file of a few trials that each carry a huge value (a 100k-entry list) no more.
MAX_CONFIG_CHARS = MAX_TRIALS * 2_000
DEFAULTS = RunConfig().to_dict()


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
        return f"{slug(self.name)}-{stable_hash(self.identity())[:6]}"

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
    def _counts(self) -> list[int]:
        return [math.prod(len(v) for v in s.grid.values()) * ((s.samples or self.samples) if s.random else 1)
                * self.seeds_per_point for s in self.searches]

    def count(self) -> int:
        """How many trials trials() expands to at most (equal configurations are one trial),
        counted without expanding them."""
        return sum(self._counts())

    def check_size(self) -> None:
        """SweepError unless the trials are few and small enough to expand in seconds."""
        counts = self._counts()
        n = sum(counts)
        if n > MAX_TRIALS:
            raise SweepError(f"the sweep has {n:,} trials (grid points x samples x seeds_per_point), "
                             f"more than the {MAX_TRIALS:,} allowed; use fewer grid values, samples or seeds")
        chars = sum(c * _trial_chars(self, s) for c, s in zip(counts, self.searches))
        if chars > MAX_CONFIG_CHARS:
            raise SweepError(f"the sweep's {n:,} trials would hold {chars:,} characters of settings, "
                             f"more than the {MAX_CONFIG_CHARS:,} allowed; use shorter values "
                             "(lists) or fewer trials")

    def trials(self) -> list[Trial]:
        """Every trial, in a fixed order; the same spec always gives the same list."""
        import numpy as np

        self.check_size()                     # before anything is expanded
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
                    cfg = {**DEFAULTS, **self.base, **search.base,
                           **dict(zip(keys, point)), **values}
                    cfg = {k: coerce(k, v) for k, v in cfg.items()}
                    point_id = stable_hash(identity({k: v for k, v in cfg.items() if k != "seed"}))[:12]
                    first_seed = int(cfg["seed"])
                    for j in range(self.seeds_per_point):
                        c = {**cfg, "seed": first_seed + j}
                        tid = stable_hash(identity(c))[:12]
                        if tid not in out:
                            out[tid] = Trial(tid, point_id, search.name, i, j, varied, c)
        return list(out.values())


# The most members one population may have: RunConfig's bound on `seeds`.
MAX_PACK = 4096


def packs(trials: list[Trial], size: int = MAX_PACK) -> list[list[Trial]]:
    """The trials in packs that one population trains exactly (`population_config`): trials
    whose configs are equal but for `seed` and the member settings (σ, lr, feedback_lr) are one pack
    when they hold every combination of their values of those for the same consecutive seeds
    (seed, seed + 1, …): a σ × lr × seeds grid is one population. Every other trial (a gap in the
    seeds, a combination missing, a trial that is itself a population) packs with the trials of
    its own settings and consecutive seeds, or alone; at most `size` trials a pack. Packs come in
    the order of their first trial."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        if population_config([t.config]) is not None:
            rest = {k: v for k, v in t.config.items() if k != "seed" and k not in MEMBER_SETTINGS}
            key = json.dumps(rest, sort_keys=True, default=str)
        else:                                 # packing it would change what it computes
            key = f"alone:{t.trial_id}:{len(groups)}"
        groups.setdefault(key, []).append(t)
    out: list[list[Trial]] = []
    for group in groups.values():
        out += _grid_packs(_seed_runs(group, size), size)
    order = {t.trial_id: i for i, t in enumerate(trials)}
    return sorted(out, key=lambda run: min(order[t.trial_id] for t in run))


def _settings_of(t: Trial) -> tuple:
    return tuple(t.config.get(k) for k in MEMBER_SETTINGS)


def _seed_runs(group: list[Trial], size: int) -> list[list[Trial]]:
    """The trials of each combination of member settings in runs of consecutive seeds."""
    by_settings: dict[str, list[Trial]] = {}
    for t in group:
        by_settings.setdefault(json.dumps(_settings_of(t), default=str), []).append(t)
    runs = []
    for same in by_settings.values():
        same = sorted(same, key=lambda t: t.config["seed"]) if len(same) > 1 else same
        run = [same[0]]
        for t in same[1:]:
            if t.config["seed"] == run[-1].config["seed"] + 1 and len(run) < size:
                run.append(t)
            else:
                runs.append(run)
                run = [t]
        runs.append(run)
    return runs


def _grid_packs(runs: list[list[Trial]], size: int) -> list[list[Trial]]:
    """Seed runs over the same seeds whose settings are every combination of their values, as one
    pack each, its trials in the population's member order (σ slowest, then lr, feedback_lr,
    seeds fastest); the other runs as they are."""
    by_seeds: dict[tuple, list[list[Trial]]] = {}
    for run in runs:
        by_seeds.setdefault((run[0].config["seed"], len(run)), []).append(run)
    out = []
    for same in by_seeds.values():
        values = [sorted(set(v), key=lambda x: (str(type(x)), x)) for v in zip(*(_settings_of(r[0]) for r in same))]
        combos = {_settings_of(r[0]): r for r in same}
        grid = [combos.get(c) for c in itertools.product(*values)]
        trials = [t for run in grid if run is not None for t in run]
        if len(same) > 1 and None not in grid and len(trials) <= size and \
                population_config([t.config for t in trials]) is not None:
            out.append(trials)
        else:
            out += same
    return out


def population_config(configs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The config of the one population whose members, in its order (RunConfig.member_values),
    are these single runs: seed the first's, `seeds` of them per combination of the member
    settings' values (a list where there are several); None when no population is (a config that
    is a population itself, configs that differ elsewhere, seeds not consecutive from the first,
    a combination missing or out of order). One config: itself, when it could be a member."""
    first = configs[0]
    seed = first.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or any(
            c.get("seeds", 1) != 1 or any(isinstance(c.get(k), (list, tuple)) for k in MEMBER_SETTINGS)
            for c in configs):
        return None
    values = {k: list(dict.fromkeys(c.get(k) for c in configs)) for k in MEMBER_SETTINGS}
    combos = math.prod(len(v) for v in values.values())
    seeds = len(configs) // combos
    if seeds * combos != len(configs):
        return None
    members = [{"seed": seed + j, **dict(zip(values, combo))}
               for combo in itertools.product(*values.values()) for j in range(seeds)]
    if any(c != {**first, **who} for c, who in zip(configs, members)):
        return None
    return {**first, "seeds": seeds, **{k: v if len(v) > 1 else v[0] for k, v in values.items()}}


def _chars(value: Any) -> int:
    return len(json.dumps(value, default=str))


def _trial_chars(spec: SweepSpec, search: Search) -> int:
    """An upper bound on the size of one trial's settings as JSON: the fixed ones plus the
    longest value of each varied one."""
    fixed = {k: v for k, v in {**DEFAULTS, **spec.base, **search.base}.items()
             if k not in search.grid and k not in search.random}
    varied = [max(map(_chars, values)) for values in search.grid.values()]
    varied += [max(map(_chars, d.args)) if d.kind == "choice" else 24 for d in search.random.values()]
    return _chars(fixed) + sum(varied) + sum(len(k) + 6 for k in [*search.grid, *search.random])


def _draw_seed(seed: int, sample: int, name: str) -> int:
    """A 128-bit seed for draw `sample` of parameter `name`: independent across all three."""
    digest = hashlib.sha256(f"creditlab-sweep/{seed}/{sample}/{name}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


# The rules' own settings that were RunConfig fields when sweeps and experiments began hashing
# configs. Every other rule's own setting, and `seeds`, came later: at its default it is left out
# of a trial's identity, so the trials already run keep their ids (and their results), and a rule
# module added later (CREDITLAB_RULES) changes no other trial's id.
HASHED_FROM_THE_START = ("feedback_mode", "feedback_normalize", "ridge_gamma", "ridge_relative", "ridge_forget",
                         "antithetic", "noise_draws", "perturb", "control_variate", "train_on_noise", "weight_decay")


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """What a trial's id hashes of its config: all of it but the later settings at their default."""
    later = {"seeds", *rule_options()} - set(HASHED_FROM_THE_START)
    default = defaults()
    return {k: v for k, v in config.items() if not (k in later and k in default and v == default[k])}


def stable_hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.") or "sweep"


def coerce(name: str, value: Any) -> Any:
    """TOML's 1 for a float field becomes 1.0, so equal configs hash equally."""
    default = defaults().get(name)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise SweepError(f"{name}={shown(value)} is not allowed; it must be a number below "
                             "1.8e308") from None
    if isinstance(value, tuple):
        return list(value)
    return value
