"""The dashboard's set-up as one param object: widgets ↔ RunConfig ↔ URL (the presets: app/presets.py).

`ConfigState` has one parameter per RunConfig field, so the sidebar widgets, the URL query string
(`pn.state.location.sync`) and the run that Start launches all read the same object. Its
parameters are deliberately permissive (width is free text, numbers are unbounded, selectors do not
check on set): checking is RunConfig.validate()'s job, so a bad value reaches `to_config()` and
comes back as the engine's one-line ConfigError message, shown inline, instead of being silently
refused by a widget. A number typed into its box (app/number_box.py) is read by `read_number`, the
CLI's strict parsers; what they cannot read ("nan", "1e999", "abc") leaves the value as it was, is
named in `unreadable`, and `to_config()` refuses with its message until it is fixed.
"""

from __future__ import annotations

import math
from typing import Any

import param

from engine.values import NUMBER, WIDTH_SEPARATOR, format_width, parse_float, parse_int_list
from engine.errors import ConfigError
from engine.config import RunConfig, choices_of, settings

from app.presets import DASHBOARD_DEFAULTS, preset_config


def parse_width(text: Any) -> int | list[int]:
    """'50' → 50, '50,20' → [50, 20]; anything else → ConfigError with the one-line message (the
    CLI's grammar: one reader of a width; format_width writes it back)."""
    return parse_int_list("width", text, settings()["width"].read_int)


_START = RunConfig.from_dict(DASHBOARD_DEFAULTS)


def offered_datasets() -> list[str]:
    """The dataset menu's names: the registry's, less the validation splits kept for searches (the
    CLI's `--dataset mnist-val`); a link naming one is refused like any choice the menu lacks."""
    from engine.data.registry import DATASETS
    return [name for name, spec in DATASETS.items() if not spec.search_only]


class Numbers(param.Number):
    """A number, or a list of them: a setting that takes several values (σ: the values a
    population compares). Typed as "0.001,0.01" (`read_number`), shown and linked the same way."""

    def _validate(self, val: Any) -> None:
        if isinstance(val, list):
            for one in val:
                super()._validate(one)
        else:
            super()._validate(val)


def _parameter(name: str, default: Any) -> param.Parameter:
    """One permissive parameter for one RunConfig field, from its Setting."""
    s = settings()[name]
    choices = choices_of(name)
    if name == "dataset":
        choices = offered_datasets()
    if name == "width":
        return param.String(default=format_width(default), doc=s.doc)
    if s.many and isinstance(default, float):
        return Numbers(default=default, doc=s.doc)
    if choices is not None:
        return param.Selector(default=default, objects=list(choices), check_on_set=False, doc=s.doc)
    if isinstance(default, bool):
        return param.Boolean(default=default, doc=s.doc)
    if isinstance(default, int):
        return param.Integer(default=default, doc=s.doc)
    return param.Number(default=default, doc=s.doc)


class _ConfigStateBase(param.Parameterized):
    """Every RunConfig field as a parameter. The URL and the sidebar widgets mirror this object."""

    unreadable = param.Dict(default={}, doc="setting → the one-line message of text typed for it "
                            "that is not a number it can take; its value is kept, and to_config() "
                            "refuses until the text is fixed or the value is set otherwise")

    def __init__(self, **params):
        super().__init__(**params)
        # A value set from code (a preset, a link, an assignment) replaces what was typed.
        self.param.watch(lambda *events: self._forget_unreadable(e.name for e in events),
                         self.fields())

    def _forget_unreadable(self, names) -> None:
        names = set(names) & set(self.unreadable)
        if names:
            self.unreadable = {k: v for k, v in self.unreadable.items() if k not in names}

    # ------------------------------------------------------------------ mapping
    @classmethod
    def fields(cls) -> list[str]:
        """The synced parameters: exactly RunConfig's settings (the rules' own included), in its
        order."""
        return list(settings())

    def to_config(self) -> RunConfig:
        """The validated RunConfig; raises ConfigError (one line) on any bad value."""
        if self.unreadable:             # a box shows text that is not the value held: say so
            raise ConfigError(next(iter(self.unreadable.values())))
        values = {name: getattr(self, name) for name in self.fields()}
        values["width"] = parse_width(values["width"])
        return RunConfig.from_dict(values).validate()

    def checked(self) -> tuple[RunConfig | None, str | None]:
        """(the validated RunConfig, None), or (None, the one-line message why not): the one
        validation a change of the set-up needs."""
        try:
            return self.to_config(), None
        except ConfigError as exc:
            return None, str(exc)
        except (TypeError, ValueError) as exc:      # anything the engine did not anticipate
            return None, f"invalid setting: {exc}"

    def error(self) -> str | None:
        """The ConfigError message of the current values, or None when they are valid."""
        return self.checked()[1]

    def set_config(self, cfg: RunConfig | dict[str, Any]) -> None:
        """Show a RunConfig in the widgets (and so in the URL), in one batched update."""
        values = (cfg if isinstance(cfg, dict) else cfg.to_dict()).copy()
        values["width"] = format_width(values.get("width", self.width))
        values = {k: v for k, v in values.items() if k in self.fields()}
        self.param.update(unreadable=self._unreadable_without(values), **values)

    def apply_preset(self, name: str) -> None:
        self.set_config(preset_config(name))

    def _unreadable_without(self, names) -> dict[str, str]:
        names = set(names)
        return {k: v for k, v in self.unreadable.items() if k not in names}

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
        self.param.update(unreadable=self._unreadable_without(values), **values)
        return bad


# The parameters are derived from the Settings (RunConfig's fields and the rules' own): a new
# setting needs no edit here.
ConfigState = type("ConfigState", (_ConfigStateBase,), {
    "__doc__": _ConfigStateBase.__doc__, "__module__": __name__,
    **{name: _parameter(name, getattr(_START, name)) for name in settings()}})


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown_number(value)


def shown_number(value: Any) -> str:
    """A number box's text for its value: a list (several values of σ or lr) as "0.001,0.01"."""
    return format_width(value) if isinstance(value, list) else str(value)


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
    if isinstance(p, param.Number):           # (ConfigError is a ValueError)
        return read_number(p, raw)
    if isinstance(p, param.Selector) and raw not in p.objects:
        raise ValueError(raw)                 # a choice the widget does not have (e.g. "%00")
    if not raw.isprintable():
        raise ValueError(raw)
    return raw


def read_number(p: param.Parameter, text: str) -> int | float | list[float]:
    """The number that text typed for an Integer or Number parameter stands for, read as the CLI
    reads it (so the same text means the same number in a box, a link and a command line), and
    finite: a box cannot show nan or inf, and JSON cannot carry them. Anything else raises
    ConfigError with the one-line message: the setting, the text, and what is allowed. A setting
    of several values (Numbers) reads comma-separated numbers, each so."""
    if isinstance(p, Numbers) and WIDTH_SEPARATOR in text:
        values = [read_number(p, part) for part in text.split(WIDTH_SEPARATOR)]
        return values
    if isinstance(p, param.Integer):
        return settings()[p.name].read_int(p.name, text)
    if not isinstance(p, param.Number):
        raise TypeError(f"{p.name} is not a number setting")
    if NUMBER.fullmatch(text.strip()) and math.isfinite(value := parse_float(p.name, text)):
        return value                          # (parse_float refuses what would underflow to 0)
    s = settings()[p.name]
    bounds = [f"{'>' if s.low_open else '>='} {s.low:g}" if s.low is not None else "",
              f"{'<' if s.high_open else '<='} {s.high:g}" if s.high is not None else ""]
    allowed = " and ".join(b for b in bounds if b)
    raise ConfigError(f"{p.name}={text!r} is not allowed; it must be a finite number"
                      + (f" {allowed}" if allowed else ""))


__all__ = ["ConfigState", "Numbers", "offered_datasets", "parse_width", "read_number", "shown_number"]
