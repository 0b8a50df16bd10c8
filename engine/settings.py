"""How a setting is declared: once, beside its field or in the rule module that owns it.

It imports nothing of the engine but engine/values.py (how numbers and choices are read and
checked), so that `engine.config` and every rule module can declare settings without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import ConfigError
from engine.values import INT64_MAX, INT64_MIN, check_choice, check_integer, check_real, parse_int, shown

NETWORK, FORWARD, FEEDBACK, BOOKKEEPING = "Network", "Forward weights", "Noise and feedback", "Bookkeeping"


@dataclass(frozen=True)
class Setting:
    """Everything a front end needs to know about one setting, declared once beside it.

    The CLI's flags, `validate()`'s checks, the dashboard's state, widgets and sidebar, and the
    URL are all derived from these (see `engine.config.settings()`)."""
    doc: str                            # one line for a user: the CLI help and the tooltip
    group: str                          # the dashboard's sidebar section
    label: str                          # the widget's label
    choices: Any = None                 # allowed values: a tuple, or a function → {value: description}
    low: float | None = None            # numbers: bounds (open or closed)
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    live: bool = False                  # may change while a run trains
    metavar: str | None = None          # the CLI's placeholder for the value
    off: str | None = None              # a switch on by default: what its --no- flag does
    rule_specific: bool = False         # a rule's own (option()): shown for the rules that list it
    when: Callable[[Any], bool] | None = None   # shown only where it matters (a cfg-like → bool)
    step: float | None = None           # the widget's increment
    many: bool = False                  # also comma-separated values (width: one per layer; σ: one
                                        # per group of a population's members)

    def integer_bounds(self) -> tuple[int, int]:
        """An integer setting's bounds; int64's where it declares none, as torch keeps integers
        in int64."""
        return (INT64_MIN if self.low is None else int(self.low)), (INT64_MAX if self.high is None else int(self.high))

    def read_int(self, name: str, text: str) -> int:
        """Text for this integer setting (a flag, a link, a box), read by the one integer grammar
        (values.parse_int). Text that is no int64 is refused naming this setting's bounds; a value
        within int64 is returned for check() to judge with the rest, so that the app can apply a
        link's steps=-1 and then name it."""
        return parse_int(name, text, *self.integer_bounds(), check=False)

    def check(self, name: str, value: Any, default: Any, choices: Any = None) -> None:
        """ConfigError, one line naming `name`, unless `value` is one this setting allows
        (`choices`: the allowed values, where it has them; `default` tells its type)."""
        if self.choices is not None:
            check_choice(name, value, list(choices))
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={shown(value)} is not allowed; it must be true or false")
        elif self.many and isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{name}=[] is not allowed; give one value or several")
            for one in value:
                self.check(name, one, default, choices)
        elif isinstance(default, int):
            check_integer(name, value, *self.integer_bounds())
        elif isinstance(default, float):
            check_real(name, value, self.low, self.high, self.low_open, self.high_open)


def setting(default: Any, doc: str, **meta: Any) -> Any:
    """A RunConfig field with its Setting."""
    return field(default=default, metadata={"setting": Setting(doc=doc, **meta)})


@dataclass(frozen=True)
class RuleOption:
    """A setting that rules declare (`LearningRule.options`), in the module of the rule or of the
    mechanism several rules share: it is a RunConfig setting like any field (a CLI flag, a
    sidebar widget shown for the rules that list it, a URL key), stored in `RunConfig.options`
    and read as `cfg.<name>`."""
    default: Any
    setting: Setting


def option(default: Any, doc: str, **meta: Any) -> RuleOption:
    """Declare a rule's own setting: `options = {"name": option(default, doc, label=…, …)}`.
    Shown only for the rules that list it; not live (the values that change live reach a rule's
    step as its `live` argument, one small object of RunConfig's live fields)."""
    if meta.get("live"):
        raise ValueError("a rule's own setting cannot be live")
    meta.setdefault("group", FEEDBACK)
    return RuleOption(default, Setting(doc=doc, rule_specific=True, **meta))
