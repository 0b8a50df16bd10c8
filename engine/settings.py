"""How a setting is declared: once, beside its field or in the rule module that owns it.

A leaf module (it imports nothing from the engine), so that `engine.config` and every rule
module can declare settings without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
    rule_specific: bool = False         # shown only for rules that list it in their `reads`
    when: Callable[[Any], bool] | None = None   # shown only where it matters (a cfg-like → bool)
    step: float | None = None           # the widget's increment


def setting(default: Any, doc: str, **meta: Any) -> Any:
    """A RunConfig field with its Setting."""
    return field(default=default, metadata={"setting": Setting(doc=doc, **meta)})


@dataclass(frozen=True)
class RuleOption:
    """A setting that one rule declares in its own module (`LearningRule.options`): it is a
    RunConfig setting like any field (a CLI flag, a sidebar widget shown for that rule, a URL
    key), stored in `RunConfig.options` and read as `cfg.<name>`."""
    default: Any
    setting: Setting


def option(default: Any, doc: str, **meta: Any) -> RuleOption:
    """Declare a rule's own setting: `options = {"name": option(default, doc, label=…, …)}`.
    Shown only for the rule that declares it; not live (a run's rule is fixed)."""
    if meta.get("live"):
        raise ValueError("a rule's own setting cannot be live")
    meta.setdefault("group", FEEDBACK)
    return RuleOption(default, Setting(doc=doc, rule_specific=True, **meta))
