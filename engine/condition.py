"""One condition of an experiment (a label, descriptive columns and a RunConfig) and an experiment
(a named list of them, full and quick); engine/paper.py and engine/paper_nets.py say which."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.config import RunConfig
from engine.sweep.spec import identity


@dataclass
class Condition:
    label: str                         # e.g. "NP σ=1e-3"
    cfg: RunConfig
    columns: dict[str, Any] = field(default_factory=dict)   # descriptive: group, sigma, width, …
    seeds: int | None = None           # at most this many seeds (a long or a side run), else all

    def key(self) -> str:
        """A stable hash of everything that defines the run except its seed."""
        d = identity(self.cfg.to_dict())
        d.pop("seed", None)
        d.pop("device", None)
        return hashlib.sha1(json.dumps([self.label, d], sort_keys=True, default=str)
                            .encode()).hexdigest()[:12]


@dataclass
class Experiment:
    name: str
    title: str
    build: Callable[[bool], list[Condition]]      # build(quick) -> conditions
    budget: Callable[[bool], str]                 # human-readable budget
    seeds: int = 3
