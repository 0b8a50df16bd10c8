"""Hyper-parameter sweeps: a grid × seeded random search × N seeds, run on Dask or in-process.

A sweep is described by a TOML (or YAML) file, by command-line flags, or both (flags win):

    [sweep]                     # the sweep itself
    name = "np-digits"          # the sweep id is "<name>-<hash of the search space and seed>"
    seed = 0                    # makes the sampled configurations reproducible
    samples = 24                # random draws per grid point
    seeds_per_point = 2         # training seeds per configuration: base.seed, base.seed+1, …
    metric = "test_accuracy"    # how the summary ranks configurations …
    mode = "max"                # … and in which direction
    [base]                      # any RunConfig field, shared by every trial
    dataset = "digits"
    [grid]                      # cartesian product
    rule = ["np", "fa", "bp"]
    [random]                    # sampled per grid point: log_uniform, uniform, int_uniform, choice
    sigma = { log_uniform = [1e-4, 1e-1] }

Instead of one [grid]/[random] pair a file may hold several `[[search]]` tables (each with its own
`grid`, `random`, optional `samples` and `base` overrides), e.g. σ, lr and feedback_lr for NP but
only lr for BP and FA. Random draws depend on (sweep seed, sample index, parameter name) only, so
the k-th draw of `lr` is the same in every search and at every grid point: searches are paired.

Every trial is a run like any other (engine/runs.py: runs/<run id>/config.json, metrics.parquet,
summary.json, checkpoint.pt) plus a `sweep.json` tag (sweep id, trial id, sample, search). A
trial's id is a stable hash of its full RunConfig; rerunning a sweep skips trials whose run folder
says finished, diverged or failed, so an interrupted sweep resumes where it stopped. The table of
finished trials is `runs/sweeps/<sweep id>/trials.parquet`, rewritten atomically as trials finish,
next to `sweep.json` (the spec, the trial count and the varied parameters).

Execution: `distributed.LocalCluster` with one single-threaded worker process per core (torch
threads set to 1 in every trial), an existing scheduler (`scheduler="tcp://host:8786"`, run
folders must then be on a file system the workers share), or in-process (`serial=True`). Dask is
an optional extra: `pip install 'creditlab[sweep]'`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from engine.argtypes import int_at_least
from engine.config import ConfigError, RunConfig

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DASK_MISSING = ("the sweep runs on Dask, which is not installed: pip install 'creditlab[sweep]', "
                "or pass --serial to run the trials one after another in this process")

SWEEPS_DIR = "sweeps"                 # <runs root>/sweeps/<sweep id>/
TRIALS_FILE = "trials.parquet"
SWEEP_FILE = "sweep.json"             # the spec (in the sweep folder), the tag (in a run folder)
DONE = ("finished", "diverged", "failed")
METRICS = {"test_accuracy": "max", "test_loss": "min", "train_loss": "min"}
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
SWEEP_KEYS = ("name", "seed", "samples", "seeds_per_point", "metric", "mode")
SEARCH_KEYS = ("name", "grid", "random", "samples", "base")
TOP_KEYS = ("sweep", "base", "grid", "random", "search")
MAX_TRIALS = 100_000
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_DEFAULTS = RunConfig().to_dict()


class SweepError(ConfigError):
    """Bad sweep input (file or flags). The message is one line."""


# ============================================================== the sweep's description
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
    default = _DEFAULTS.get(name)
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
    if name not in _FIELDS:
        raise SweepError(f"unknown setting {name!r} in {where}; settings are RunConfig fields: "
                         f"{', '.join(sorted(_FIELDS))}")
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


# ============================================================== one trial (runs anywhere)
def _run_id(cfg: dict, trial_id: str, attempt: int = 1) -> str:
    """Like engine.runs.new_run_id (UTC time, rule, seed) with the trial id as the suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    stem = f"{stamp}-{_slug(cfg.get('rule'))}-s{cfg.get('seed')}-{trial_id[:8]}"
    return stem if attempt == 1 else f"{stem}-{attempt}"


def _run_dir_for(root: Path, cfg: dict, trial_id: str) -> tuple[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        rid = _run_id(cfg, trial_id, attempt)
        try:
            (root / rid).mkdir()
            return rid, root / rid
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a unique run folder in {root}")


def _tag(trial: dict, sweep_id: str) -> dict:
    return {"sweep_id": sweep_id, "trial_id": trial["trial_id"], "point_id": trial["point_id"],
            "search": trial["search"], "sample": trial["sample"],
            "seed_index": trial["seed_index"], "varied": list(trial["varied"])}


def run_trial(trial: dict, runs_root: str, sweep_id: str, threads: int | None = 1,
              flush_interval: float = 5.0) -> dict:
    """Train one trial and save it as a run tagged with the sweep; return its table row.

    Never raises for a trial's own failure: an exception while building or training is recorded
    (status "failed", the one-line error), a NaN loss as "diverged". Ctrl-C saves the run as
    "stopped" and propagates. This is what a Dask worker calls, so it imports lazily.
    """
    import torch

    from engine.runs import CONFIG_FILE, SUMMARY_FILE, RunWriter, atomic_write_json
    from engine.trainer import DivergedError, Trainer

    if threads:
        torch.set_num_threads(threads)
    root = Path(runs_root)
    tag = _tag(trial, sweep_id)
    started, cpu_started = time.time(), time.thread_time()
    try:
        cfg = RunConfig.from_dict(trial["config"])
        trainer = Trainer(cfg)
    except Exception as exc:                 # bad config or data: a failed run, no trainer
        run_id, path = _run_dir_for(root, trial["config"], trial["trial_id"])
        atomic_write_json(path / CONFIG_FILE, trial["config"])
        atomic_write_json(path / SWEEP_FILE, tag)
        summary = {"run_id": run_id, "status": "failed", "steps": 0, "error": _one_line(exc),
                   "wall_seconds": time.time() - started}
        atomic_write_json(path / SUMMARY_FILE, summary)
        return make_row(trial["config"], tag, summary, path)

    writer = None
    for attempt in range(1, 100):             # RunWriter creates the folder exclusively
        run_id = _run_id(trial["config"], trial["trial_id"], attempt)
        try:
            writer = RunWriter(root, trainer, run_id=run_id, flush_interval=flush_interval)
            break
        except FileExistsError:
            continue
    if writer is None:
        raise RuntimeError(f"could not create a unique run folder in {root}")
    atomic_write_json(writer.path / SWEEP_FILE, tag)
    status, error = "finished", None
    try:
        status = trainer.run()
    except DivergedError as exc:
        status, error = "diverged", exc
    except Exception as exc:
        status, error = "failed", _one_line(exc)
    except BaseException:                     # Ctrl-C, worker shutdown: keep what was done
        try:
            writer.close("stopped")
        finally:
            raise
    try:
        result = writer.close(status, error)
    except Exception as exc:                  # e.g. the summary's evaluation fails
        result = {"status": "failed", "steps": trainer.step_count,
                  "error": _one_line(f"{error}; then saving failed: {exc}" if error else exc)}
        atomic_write_json(writer.path / SUMMARY_FILE, {"run_id": writer.run_id, **result})
    result["wall_seconds"] = time.time() - started
    result["cpu_seconds"] = time.thread_time() - cpu_started    # < wall: the core was shared
    return make_row(trial["config"], tag, result, writer.path)


def make_row(config: dict, tag: dict, summary: dict, run_dir: Path | str) -> dict:
    """One row of trials.parquet: sweep tag, flat config (width as "50-20"), status, metrics."""
    from engine.runs import width_label

    cfg = dict(config)
    try:
        cfg["width"] = width_label(cfg.get("width", 0))
    except (TypeError, ValueError):
        cfg["width"] = str(cfg.get("width"))
    row = {"sweep_id": tag["sweep_id"], "trial_id": tag["trial_id"], "point_id": tag["point_id"],
           "search": tag["search"], "sample": tag["sample"], "seed_index": tag["seed_index"],
           "varied": ",".join(tag.get("varied", [])), **cfg,
           "status": summary.get("status", "unknown"), "error": summary.get("error"),
           "steps_done": int(summary.get("steps") or 0),
           "diverged_step": summary.get("diverged_step"),
           "test_accuracy": _f(summary.get("test_accuracy")),
           "test_loss": _f(summary.get("test_loss")), "train_loss": _f(summary.get("train_loss")),
           "wall_seconds": _f(summary.get("wall_seconds")),
           "cpu_seconds": _f(summary.get("cpu_seconds")),
           "run_id": Path(run_dir).name if run_dir else "", "run_dir": str(run_dir or ""),
           "host": socket.gethostname(), "finished_at": time.time()}
    return row


def _f(v) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


# ============================================================== state on disk
def sweep_dir(runs_root: str | os.PathLike, sweep_id: str) -> Path:
    return Path(runs_root) / SWEEPS_DIR / sweep_id


def _read_json(path: Path) -> dict | None:
    """A JSON object, or None for a file that is absent or not one (readers skip it)."""
    from engine.runs import try_read_json_object
    return try_read_json_object(path)


def sweep_runs(runs_root: str | os.PathLike, sweep_id: str) -> dict[str, list[Path]]:
    """trial id → run folders tagged with this sweep (oldest first)."""
    root = Path(runs_root)
    out: dict[str, list[Path]] = {}
    if not root.is_dir():
        return out
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name != SWEEPS_DIR):
        tag = _read_json(path / SWEEP_FILE)
        if tag and tag.get("sweep_id") == sweep_id and tag.get("trial_id"):
            out.setdefault(tag["trial_id"], []).append(path)
    return out


def finished_trials(runs_root: str | os.PathLike, sweep_id: str) -> dict[str, dict]:
    """trial id → table row, for trials of this sweep already finished, diverged or failed."""
    from engine.runs import CONFIG_FILE, SUMMARY_FILE

    done: dict[str, dict] = {}
    for tid, paths in sweep_runs(runs_root, sweep_id).items():
        for path in reversed(paths):                           # the newest that is done
            summary = _read_json(path / SUMMARY_FILE) or {}
            config = _read_json(path / CONFIG_FILE)
            if summary.get("status") in DONE and config is not None:
                try:
                    done[tid] = make_row(config, _read_json(path / SWEEP_FILE), summary, path)
                except (KeyError, TypeError, ValueError):    # edited or damaged: run it again
                    continue
                break
    return done


def _mark_stopped(runs_root: str | os.PathLike, sweep_id: str, trial_ids: Iterable[str]) -> None:
    """Runs of interrupted trials whose folder still says "running" are saved as "stopped"."""
    from engine.runs import SUMMARY_FILE, atomic_write_json

    wanted = set(trial_ids)
    for tid, paths in sweep_runs(runs_root, sweep_id).items():
        if tid not in wanted:
            continue
        for path in paths:
            summary = _read_json(path / SUMMARY_FILE)
            if summary and summary.get("status") == "running":
                summary.update(status="stopped", error="the sweep was interrupted")
                try:
                    atomic_write_json(path / SUMMARY_FILE, summary)
                except OSError:
                    pass


def _atomic_parquet(df, path: Path) -> None:
    from engine.runs import atomic_write_parquet
    atomic_write_parquet(df, path)


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
            info = _read_json(d / SWEEP_FILE)
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
    d["_ok"] = d["status"] == "finished"
    d["_m"] = d[metric].where(d["_ok"])
    g = d.groupby("point_id", sort=False)
    agg = g.agg(**{f"{metric}_mean": ("_m", "mean"), f"{metric}_std": ("_m", "std"),
                   "seeds": ("_m", "size"), "ok": ("_ok", "sum")})
    agg.loc[agg["ok"] < agg["seeds"], f"{metric}_mean"] = math.nan
    first = g.head(1).set_index("point_id")
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


# ============================================================== running a sweep
@dataclass
class SweepResult:
    sweep_id: str
    path: Path
    table: Any                         # pandas DataFrame of every trial done (old and new)
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    wall_seconds: float
    interrupted: bool = False

    def best(self, metric: str = "test_accuracy", mode: str = "max"):
        return best_table(self.table, metric, mode)


class _Progress:
    """done / failed / diverged / running, on a tqdm bar (stderr) or silently."""

    def __init__(self, total: int, desc: str, show: bool, on_update: Callable | None = None):
        self.counts = {"finished": 0, "failed": 0, "diverged": 0}
        self.running = 0
        self.on_update = on_update
        self.bar = None
        if show:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="trial", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
            self._postfix()

    def _postfix(self):
        if self.bar is not None:
            self.bar.set_postfix({"done": self.counts["finished"], "failed": self.counts["failed"],
                                  "diverged": self.counts["diverged"], "running": self.running},
                                 refresh=False)

    def set_running(self, n: int):
        if n != self.running:
            self.running = n
            self._postfix()
            if self.bar is not None:
                self.bar.refresh()

    def add(self, row: dict):
        status = row["status"] if row["status"] in self.counts else "failed"
        self.counts[status] += 1
        self._postfix()
        if self.bar is not None:
            self.bar.update(1)
        if self.on_update is not None:
            self.on_update(dict(self.counts), self.running)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                 # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def import_dask():
    """(Client, LocalCluster, as_completed) or SweepError(DASK_MISSING)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SweepError(DASK_MISSING) from None
    return Client, LocalCluster, as_completed


def run_sweep(spec: SweepSpec, runs_root: str | os.PathLike = "runs", *,
              workers: int | None = None, scheduler: str | None = None, serial: bool = False,
              progress: bool = True, stop: threading.Event | None = None,
              on_row: Callable[[dict], None] | None = None,
              on_update: Callable[[dict, int], None] | None = None,
              trials: list[Trial] | None = None, cluster_kwargs: dict | None = None) -> SweepResult:
    """Run every trial of `spec` not already done; return the table of all its trials.

    `stop` (a threading.Event) ends the sweep early: pending trials are cancelled, running ones
    are saved as "stopped" and run again on the next call. KeyboardInterrupt does the same and
    propagates. The cluster (if we made one) is always closed.
    """
    started = time.perf_counter()
    root = Path(runs_root).resolve()
    sid = spec.sweep_id
    trials = spec.trials() if trials is None else trials
    sdir = sweep_dir(root, sid)
    sdir.mkdir(parents=True, exist_ok=True)
    lock = _hold_sweep_lock(sdir)
    try:
        return _run_locked(spec, root, sid, sdir, trials, started, workers=workers,
                           scheduler=scheduler, serial=serial, progress=progress, stop=stop,
                           on_row=on_row, on_update=on_update, cluster_kwargs=cluster_kwargs)
    finally:
        lock.close()


def _run_locked(spec, root, sid, sdir, trials, started, *, workers, scheduler, serial, progress,
                stop, on_row, on_update, cluster_kwargs) -> SweepResult:
    from engine.runs import atomic_write_json
    atomic_write_json(sdir / SWEEP_FILE, {**spec.to_json(), "n_trials": len(trials),
                                          "varied": spec.varied, "trials_file": TRIALS_FILE})
    wanted = {t.trial_id for t in trials}
    done = {k: v for k, v in finished_trials(root, sid).items() if k in wanted}
    todo = [t for t in trials if t.trial_id not in done]
    rows: dict[str, dict] = dict(done)
    write_lock = threading.Lock()

    def save():
        with write_lock:
            _atomic_parquet(trials_frame(rows.values()), sdir / TRIALS_FILE)

    save()
    bar = _Progress(len(todo), sid, progress and len(todo) > 0, on_update)
    pending = {t.trial_id for t in todo}
    interrupted = False

    def accept(row: dict):
        rows[row["trial_id"]] = row
        pending.discard(row["trial_id"])
        save()
        bar.add(row)
        if on_row is not None:
            on_row(row)

    try:
        if serial:
            import torch
            before = torch.get_num_threads()
            try:
                for t in todo:
                    if stop is not None and stop.is_set():
                        interrupted = True
                        break
                    bar.running = 1
                    accept(run_trial(t.to_json(), str(root), sid, threads=1))
                bar.running = 0
            finally:
                torch.set_num_threads(before)
        elif todo:
            interrupted = _run_dask(todo, root, sid, workers, scheduler, stop, bar, accept,
                                    cluster_kwargs or {})
    except BaseException:
        _mark_stopped(root, sid, pending)
        raise
    finally:
        bar.close()
    if interrupted:
        _mark_stopped(root, sid, pending)
    counts = {"finished": 0, "diverged": 0, "failed": 0}
    for r in rows.values():
        counts[r["status"] if r["status"] in counts else "failed"] += 1
    return SweepResult(sid, sdir, trials_frame(rows.values()), len(trials), len(done),
                       len(rows) - len(done), counts, time.perf_counter() - started, interrupted)


def _run_dask(todo, root, sid, workers, scheduler, stop, bar, accept, cluster_kwargs) -> bool:
    """Submit every trial, take results as they complete. Returns True if stopped early."""
    import contextlib
    import logging

    Client, LocalCluster, as_completed = import_dask()
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))
            except (OSError, TimeoutError) as exc:
                raise SweepUnavailable(f"cannot reach the Dask scheduler {scheduler}: "
                                       f"{_one_line(exc)}") from None
        else:
            # No dashboard; the scheduler's small HTTP server (health routes) on a free port of
            # 127.0.0.1, so a second sweep or another Dask user never collides on :8787.
            kw = dict(n_workers=workers or default_workers(), threads_per_worker=1,
                      processes=True, dashboard_address=None, host="127.0.0.1",
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.ERROR)
            kw.update(cluster_kwargs)
            # Dask's statistical profiler samples every worker thread's stack every 10 ms: with
            # the GIL, that slowed our Python-heavy small-network trials 1.5-2x (Nov 2026).
            # The nanny hands this config to the worker processes it spawns.
            import dask
            with dask.config.set(WORKER_CONFIG):
                cluster = stack.enter_context(LocalCluster(**kw))
            client = stack.enter_context(Client(cluster))
        futures = {client.submit(run_trial, t.to_json(), str(root), sid, 1,
                                 key=f"trial-{sid}-{t.trial_id}", pure=False): t for t in todo}
        stack.callback(lambda: client.cancel(list(futures)) if client.status == "running" else None)
        ac = as_completed(list(futures))
        last = 0.0
        while not ac.is_empty():
            if stop is not None and stop.is_set():
                return True
            if ac.has_ready():
                for fut in ac.next_batch(block=False):
                    t = futures[fut]
                    try:
                        row = fut.result()
                    except Exception as exc:          # the worker died, or could not unpickle
                        row = _lost_row(t, root, sid, exc)
                    accept(row)
                    fut.release()
            else:
                now = time.monotonic()
                if now - last > 1.0:
                    last = now
                    try:
                        slots = sum(client.nthreads().values())
                    except Exception:
                        slots = 0
                    bar.set_running(min(slots, sum(1 for f in futures if not f.done())))
                time.sleep(0.05)
        bar.set_running(0)
    return False


def _lost_row(t: Trial, root: Path, sid: str, exc: BaseException) -> dict:
    """A trial whose task itself failed (not the training: that run_trial records)."""
    tag = _tag(t.to_json(), sid)
    runs = sweep_runs(root, sid).get(t.trial_id, [])
    path = runs[-1] if runs else None
    summary = {"status": "failed", "error": f"the trial's task failed: {_one_line(exc)}"}
    if runs:
        from engine.runs import SUMMARY_FILE, atomic_write_json
        old = _read_json(path / SUMMARY_FILE) or {}
        if old.get("status") not in DONE:
            atomic_write_json(path / SUMMARY_FILE, {**old, **summary})
    return make_row(t.config, tag, summary, path)


WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


class SweepUnavailable(RuntimeError):
    """The scheduler cannot be reached (exit 1, not a usage error)."""


class SweepBusy(RuntimeError):
    """The same sweep is already running: a second copy would train every trial twice."""


LOCK_FILE = "running.lock"


def _hold_sweep_lock(sdir: Path):
    """An exclusive lock on the sweep's folder while it runs, or SweepBusy. The kernel drops it
    when its process ends however it ends, so a killed sweep never leaves a stale lock."""
    import fcntl

    f = open(sdir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise SweepBusy(f"sweep {sdir.name} is already running ({holder}); wait for it to finish "
                        "or stop it, then run this again to pick up what it has not done") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}")
    f.flush()
    return f


# ============================================================== the command line
def _value(text: str) -> Any:
    """A flag's value read as TOML (1e-3, 50, true, [50, 20], "x"), else as a bare string."""
    try:
        return _toml().loads(f"v = {text}")["v"]
    except ValueError:
        return text


def _values(text: str) -> list:
    """"np,fa" → ["np", "fa"]; "0.1,0.01" → [0.1, 0.01]; "[50,20],[100,100]" → lists."""
    try:
        return list(_toml().loads(f"v = [{text}]")["v"])
    except ValueError:
        return [_value(part.strip()) for part in text.split(",") if part.strip()]


def _assignment(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise SweepError(f"{flag} {text!r} is not allowed; write {flag} NAME=VALUE")
    return name.strip(), value.strip()


def _random_flag(text: str) -> tuple[str, dict]:
    """sigma=log_uniform:1e-4:1e-1, lr=uniform:0:1, width=int_uniform:10:100, rule=choice:np,fa"""
    name, value = _assignment(text, "--random")
    kind, _, rest = value.partition(":")
    if kind not in DISTRIBUTIONS or not rest:
        raise SweepError(f"--random {text!r} is not allowed; write NAME=KIND:LOW:HIGH or "
                         f"NAME=choice:A,B with KIND one of {', '.join(DISTRIBUTIONS)}")
    args = _values(rest) if kind == "choice" else [_value(p) for p in rest.split(":")]
    return name, {kind: args}


def overrides_from_args(args: argparse.Namespace) -> dict:
    o: dict[str, dict] = {"sweep": {}, "base": {}, "grid": {}, "random": {}}
    for key, flag in (("name", "name"), ("seed", "sweep_seed"), ("samples", "samples"),
                      ("seeds_per_point", "seeds"), ("metric", "metric"), ("mode", "mode")):
        if getattr(args, flag, None) is not None:
            o["sweep"][key] = getattr(args, flag)
    for text in args.set or []:
        k, v = _assignment(text, "--set")
        o["base"][k] = _value(v)
    for text in args.grid or []:
        k, v = _assignment(text, "--grid")
        o["grid"][k] = _values(v)
    for text in args.random or []:
        k, v = _random_flag(text)
        o["random"][k] = v
    return o


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    data = load_sweep_file(args.file) if args.file else {}
    return parse_sweep(data, overrides_from_args(args))


_positive, _nonneg = int_at_least(1), int_at_least(0)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `creditlab sweep` options, on a (sub)parser."""
    parser.add_argument("file", nargs="?", default=None,
                        help="sweep file (.toml, or .yaml/.yml with PyYAML); flags override it")
    g = parser.add_argument_group("what to sweep (added to / overriding the file)")
    g.add_argument("--name", default=None, help="sweep name (default: the file's, or 'sweep')")
    g.add_argument("--seed", dest="sweep_seed", type=_nonneg, default=None, metavar="S",
                   help="the sweep's seed: makes the sampled configurations reproducible")
    g.add_argument("--samples", type=_positive, default=None, metavar="N",
                   help="random draws per grid point")
    g.add_argument("--seeds", type=_positive, default=None, metavar="N",
                   help="training seeds per configuration (seeds_per_point)")
    g.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a RunConfig setting shared by all trials, e.g. --set steps=1500")
    g.add_argument("--grid", action="append", metavar="NAME=V1,V2",
                   help="grid values, e.g. --grid rule=np,fa,bp or --grid width=[50,20],[100,100]")
    g.add_argument("--random", action="append", metavar="NAME=KIND:LOW:HIGH",
                   help="a sampled setting: log_uniform, uniform, int_uniform (LOW:HIGH) or "
                        "choice:A,B, e.g. --random sigma=log_uniform:1e-4:1e-1")
    g.add_argument("--metric", default=None, choices=list(METRICS),
                   help="what the summary ranks by (default: test_accuracy)")
    g.add_argument("--mode", default=None, choices=["max", "min"],
                   help="max or min (default: max for accuracy, min for losses)")
    h = parser.add_argument_group("where it runs")
    h.add_argument("--workers", type=_positive, default=None, metavar="N",
                   help=f"local worker processes, one thread each (default: one per core, "
                        f"{default_workers()} here)")
    h.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://host:8786 (workers must see --out)")
    h.add_argument("--serial", action="store_true",
                   help="run the trials one after another in this process, without Dask")
    h.add_argument("--out", default="runs", metavar="DIR",
                   help="runs folder: trials are runs in it; the table goes to DIR/sweeps/<id>/")
    h.add_argument("--dry-run", action="store_true",
                   help="print the trials (and how many are done) without running anything")
    h.add_argument("--quiet", action="store_true", help="no progress bar")
    h.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def _err(message: str) -> None:
    print(f"creditlab: error: {message}", file=sys.stderr)


def sweep_command(args: argparse.Namespace) -> int:
    """`creditlab sweep`: 0 when the sweep completed (whatever its trials did), 2 for bad input
    (one line on stderr), 1 if the scheduler cannot be reached, 130 when interrupted."""
    try:
        spec = spec_from_args(args)
        if args.serial and args.scheduler:
            raise SweepError("--serial and --scheduler cannot be combined; choose one")
        if args.scheduler and not re.match(r"^[a-z0-9+]+://[^\s/]+(:\d+)?/?$", args.scheduler):
            raise SweepError(f"--scheduler {args.scheduler!r} is not allowed; give an address "
                             "such as tcp://host:8786")
        trials = spec.trials()
        bad, first = check_trials(trials)
        if bad == len(trials):
            raise SweepError(f"no trial has a valid configuration: {first}")
        if not args.serial and not args.dry_run:
            import_dask()
    except SweepError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    sid = spec.sweep_id
    if bad:
        print(f"creditlab: warning: {bad} of {len(trials)} trials have an invalid configuration "
              f"and will be recorded as failed; first: {first}", file=sys.stderr)
    if args.dry_run:
        done = finished_trials(args.out, sid)
        info = {"sweep_id": sid, "trials": len(trials),
                "done": sum(t.trial_id in done for t in trials), "varied": spec.varied,
                "first": [dict(trial_id=t.trial_id, search=t.search,
                               **{k: t.config[k] for k in spec.varied if k in t.config},
                               seed=t.config["seed"]) for t in trials[:10]]}
        if args.json:
            print(json.dumps(info, default=str))
        else:
            print(f"sweep {sid}: {info['trials']} trials ({info['done']} done), varying "
                  f"{', '.join(spec.varied) or 'nothing'}")
            for t in info["first"]:
                print("  " + " ".join(f"{k}={v}" for k, v in t.items()))
        return EXIT_OK
    print(f"sweep {sid}: {len(trials)} trials"
          + ("" if args.serial else (f" on {args.scheduler}" if args.scheduler else
                                     f" on {args.workers or default_workers()} local workers"))
          + f"; table: {sweep_dir(args.out, sid) / TRIALS_FILE}", file=sys.stderr)
    try:
        result = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler,
                           serial=args.serial, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"creditlab: interrupted: finished trials are saved; run the same command again "
              f"to resume sweep {sid}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SweepUnavailable, SweepBusy) as exc:
        _err(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        _err(f"cannot write the sweep under out={args.out!r}: {exc.strerror or _one_line(exc)}")
        return EXIT_FAILURE
    best = result.best(spec.metric, spec.mode)
    if args.json:
        print(json.dumps({"sweep_id": sid, "path": str(result.path), "trials": result.total,
                          "skipped": result.skipped, "ran": result.ran, **result.counts,
                          "wall_seconds": result.wall_seconds,
                          "best": json.loads(best.to_json(orient="records"))}, default=str))
    else:
        c = result.counts
        print(f"sweep {sid}: {result.total} trials, {c['finished']} finished, {c['diverged']} "
              f"diverged, {c['failed']} failed ({result.skipped} were already done) in "
              f"{result.wall_seconds:.1f} s")
        print(f"best per rule by {spec.metric} ({spec.mode}, mean over seeds):")
        print(format_best(best, spec.metric))
        print(f"trials: {result.path / TRIALS_FILE}")
    return EXIT_OK


__all__ = ["SweepSpec", "Search", "Trial", "Distribution", "SweepError", "SweepResult",
           "load_sweep_file", "parse_sweep", "parse_distribution", "run_sweep", "run_trial",
           "finished_trials", "load_trials", "list_sweeps", "best_table", "format_best",
           "add_sweep_arguments", "sweep_command", "sweep_dir", "TRIALS_FILE"]
