"""The dashboard's set-up as one param object: widgets ↔ RunConfig ↔ URL, plus the presets.

`ConfigState` has one parameter per RunConfig field, so the sidebar widgets, the URL query string
(`pn.state.location.sync`) and the run that Start launches all read the same object. Its
parameters are deliberately permissive (width is free text, numbers are unbounded, selectors do not
check on set): checking is RunConfig.validate()'s job, so a bad value reaches `to_config()` and
comes back as the engine's one-line ConfigError message, shown inline, instead of being silently
refused by a widget.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import param

from engine.config import (ACTIVATIONS, FEEDBACK_MODES, LIVE_FIELDS, LOSSES, OPTIMIZERS, PERTURB,
                           ConfigError, RunConfig)
from engine.data import DATASETS
from engine.models import INITS, MODELS
from engine.rules import RULES

# The dashboard's starting point: the paper's MLP shape, long enough to watch for a while.
# (RunConfig's own defaults are tuned for the CLI's quick runs.)
DASHBOARD_DEFAULTS: dict[str, Any] = {"width": [50, 20], "steps": 20000}

# One click reproduces a set-up from the paper (method.md §6, on the embedded digits instead of
# MNIST). Each preset is a set of overrides on top of RunConfig() + DASHBOARD_DEFAULTS.
PRESETS: dict[str, dict[str, Any]] = {
    "Paper MLP: NP": {"rule": "np", "depth": 2, "width": [50, 20], "activation": "sigmoid",
                      "loss": "mse", "sigma": 0.01, "feedback_mode": "ridge", "ridge_gamma": 0.1,
                      "warmup_steps": 1000, "init": "paper"},
    "Paper MLP: FA": {"rule": "fa", "depth": 2, "width": [50, 20], "activation": "sigmoid",
                      "loss": "mse"},
    "Paper MLP: BP": {"rule": "bp", "depth": 2, "width": [50, 20], "activation": "sigmoid",
                      "loss": "mse"},
    "Paper MLP: SG oracle": {"rule": "sg", "depth": 2, "width": [50, 20], "activation": "sigmoid",
                             "loss": "mse", "feedback_mode": "ridge", "init": "paper"},
    # The paper's Fig. 2: only B learns, by cumulative ridge from B = 0, with the reference
    # code's init; 10⁵ steps take about a minute, and the top layer's B looks like Wᵀ in seconds.
    "Learn B only (frozen W)": {"rule": "np", "depth": 2, "width": [50, 20], "activation": "sigmoid",
                                "loss": "mse", "freeze_forward": True, "feedback_mode": "ridge",
                                "ridge_gamma": 0.1, "ridge_forget": 1.0, "init": "paper",
                                "sigma": 0.01, "batch_size": 32, "steps": 100000},
    "Noise-only ablation (FA + noise)": {"rule": "fa", "depth": 2, "width": [50, 20],
                                         "activation": "sigmoid", "loss": "mse",
                                         "train_on_noise": True, "sigma": 0.01},
    "Kolen-Pollack": {"rule": "kp", "depth": 2, "width": [50, 20], "activation": "sigmoid",
                      "loss": "mse"},
}


def preset_config(name: str) -> RunConfig:
    """The RunConfig a preset stands for (dashboard defaults, then the preset's overrides)."""
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is not allowed; choose one of {', '.join(PRESETS)}")
    return RunConfig(**{**DASHBOARD_DEFAULTS, **PRESETS[name]})


def format_width(width: int | list[int]) -> str:
    return ",".join(str(w) for w in width) if isinstance(width, (list, tuple)) else str(width)


def parse_width(text: Any) -> int | list[int]:
    """'50' → 50, '50,20' → [50, 20]; anything else → ConfigError with the one-line message."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    try:
        if not parts or any(p == "" for p in parts):
            raise ValueError
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"width={str(text)!r} is not allowed; give a positive integer, or one per "
                          "hidden layer separated by commas (e.g. 50,20)") from None
    return values[0] if len(values) == 1 else values


def run_label(cfg: RunConfig) -> str:
    """A short legend label that says what differs between runs, e.g. 'np σ=0.01 d2 w50-20 seed0'."""
    parts = [cfg.rule]
    if RULES[cfg.rule].uses_noise(cfg) or cfg.rule == "np":
        parts.append(f"σ={cfg.sigma:g}")
    parts.append(f"d{cfg.depth}")
    parts.append("w" + format_width(cfg.width).replace(",", "-"))
    parts.append(f"lr={cfg.lr:g}")
    if cfg.freeze_forward:
        parts.append("frozen W")
    if cfg.train_on_noise:
        parts.append("+noise")
    if cfg.dataset != "digits":
        parts.append(cfg.dataset)
    parts.append(f"seed{cfg.seed}")
    return " ".join(parts)


_D = RunConfig()
_START = RunConfig(**DASHBOARD_DEFAULTS)


class ConfigState(param.Parameterized):
    """Every RunConfig field as a parameter. The URL and the sidebar widgets mirror this object."""

    # what learns
    rule = param.Selector(default=_START.rule, objects=list(RULES), check_on_set=False,
                          doc="learning rule (engine.rules.RULES)")
    dataset = param.Selector(default=_START.dataset, objects=list(DATASETS), check_on_set=False)
    model = param.Selector(default=_START.model, objects=list(MODELS), check_on_set=False)
    depth = param.Integer(default=_START.depth, doc="hidden layers")
    width = param.String(default=format_width(_START.width),
                         doc="hidden units: one number, or one per layer (50,20)")
    activation = param.Selector(default=_START.activation, objects=list(ACTIVATIONS), check_on_set=False)
    init = param.Selector(default=_START.init, objects=list(INITS), check_on_set=False)
    loss = param.Selector(default=_START.loss, objects=list(LOSSES), check_on_set=False)
    # forward learning
    optimizer = param.Selector(default=_START.optimizer, objects=list(OPTIMIZERS), check_on_set=False)
    lr = param.Number(default=_START.lr)
    momentum = param.Number(default=_START.momentum)
    batch_size = param.Integer(default=_START.batch_size)
    steps = param.Integer(default=_START.steps)
    freeze_forward = param.Boolean(default=_START.freeze_forward)
    warmup_steps = param.Integer(default=_START.warmup_steps)
    # noise and feedback learning
    sigma = param.Number(default=_START.sigma)
    feedback_lr = param.Number(default=_START.feedback_lr)
    feedback_mode = param.Selector(default=_START.feedback_mode, objects=list(FEEDBACK_MODES),
                                   check_on_set=False)
    feedback_normalize = param.Boolean(default=_START.feedback_normalize)
    ridge_gamma = param.Number(default=_START.ridge_gamma)
    ridge_relative = param.Boolean(default=_START.ridge_relative)
    ridge_forget = param.Number(default=_START.ridge_forget)
    antithetic = param.Boolean(default=_START.antithetic)
    noise_draws = param.Integer(default=_START.noise_draws)
    perturb = param.Selector(default=_START.perturb, objects=list(PERTURB), check_on_set=False)
    control_variate = param.Boolean(default=_START.control_variate)
    train_on_noise = param.Boolean(default=_START.train_on_noise)
    weight_decay = param.Number(default=_START.weight_decay)
    # bookkeeping
    seed = param.Integer(default=_START.seed)
    device = param.Selector(default=_START.device, objects=["auto", "cpu", "cuda"], check_on_set=False)
    metric_interval = param.Integer(default=_START.metric_interval)
    eval_interval = param.Integer(default=_START.eval_interval)
    teacher = param.Selector(default=_START.teacher, objects=["linear", "nonlinear"], check_on_set=False)

    # ------------------------------------------------------------------ mapping
    @classmethod
    def fields(cls) -> list[str]:
        """The synced parameters: exactly RunConfig's fields, in its order."""
        return [f.name for f in dataclasses.fields(RunConfig)]

    def to_config(self) -> RunConfig:
        """The validated RunConfig; raises ConfigError (one line) on any bad value."""
        values = {name: getattr(self, name) for name in self.fields()}
        values["width"] = parse_width(values["width"])
        return RunConfig(**values).validate()

    def error(self) -> str | None:
        """The ConfigError message of the current values, or None when they are valid."""
        try:
            self.to_config()
        except ConfigError as exc:
            return str(exc)
        except (TypeError, ValueError) as exc:      # anything the engine did not anticipate
            return f"invalid setting: {exc}"
        return None

    def set_config(self, cfg: RunConfig | dict[str, Any]) -> None:
        """Show a RunConfig in the widgets (and so in the URL), in one batched update."""
        values = (cfg if isinstance(cfg, dict) else cfg.to_dict()).copy()
        values["width"] = format_width(values.get("width", self.width))
        self.param.update(**{k: v for k, v in values.items() if k in self.fields()})

    def apply_preset(self, name: str) -> None:
        self.set_config(preset_config(name))

    # ------------------------------------------------------------------ the URL
    def to_query(self) -> dict[str, str]:
        """Query parameters that reproduce this set-up (what the URL carries)."""
        return {name: _query_value(getattr(self, name)) for name in self.fields()}

    def update_from_query(self, query: dict[str, Any]) -> list[str]:
        """Apply query parameters (strings, as in a URL); returns the names that were bad."""
        bad, values = [], {}
        for name, raw in query.items():
            if name not in self.fields():
                continue
            try:
                values[name] = _from_query(self.param[name], raw)
            except (TypeError, ValueError):
                bad.append(name)
        self.param.update(**values)
        return bad


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_query(p: param.Parameter, raw: Any) -> Any:
    if isinstance(raw, (list, tuple)):
        raw = raw[-1]
    if isinstance(raw, bytes):
        raw = raw.decode()
    raw = str(raw)
    if isinstance(p, param.Boolean):
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(raw)
    if isinstance(p, param.Integer):
        return int(raw)
    if isinstance(p, param.Number):
        return float(raw)
    return raw


__all__ = ["ConfigState", "PRESETS", "DASHBOARD_DEFAULTS", "preset_config", "parse_width",
           "format_width", "run_label", "LIVE_FIELDS"]
