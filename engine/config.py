"""One serialisable description of an experiment.

`RunConfig` is the single source of truth shared by the CLI, the dashboard (and its URL) and
the run folders on disk. Everything a run needs to be reproduced is in here; nothing else is.

Validation lives here too, so every front end reports bad input the same way: `validate()`
raises `ConfigError` with a one-line message that names the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import ConfigError
from engine.settings import BOOKKEEPING, FEEDBACK, FORWARD, NETWORK, Setting, setting
from engine.values import format_numbers, shown

ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
LOSSES = ("mse", "ce")
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "cuda")
TEACHERS = ("linear", "nonlinear")
# Weights, B, gradients and optimiser state together stay under a few GB at this size.
MAX_WEIGHTS = 100_000_000


def _registry(module: str, name: str, describe: Callable[[Any], str] = str) -> Callable[[], dict[str, str]]:
    """Choices read from a registry when asked, so that this module imports no engine part."""
    def choices() -> dict[str, str]:
        import importlib
        table = getattr(importlib.import_module(module), name)
        return {key: describe(value) for key, value in table.items()}
    return choices


def _learns_b_by_sgd(cfg) -> bool:
    # feedback_lr is live, so a RunConfig field (a rule's own setting cannot be); it matters where
    # the rule declares the regression's solver and that is SGD
    return applies("feedback_mode", cfg) and cfg.feedback_mode == "sgd"


def _noisy(cfg) -> bool:
    from engine.rules import RULES
    rule = RULES.get(cfg.rule)
    return rule is None or rule.uses_noise(cfg)


@dataclass(init=False, eq=False)
class RunConfig:
    # what learns
    rule: str = setting("np", "the learning rule: how each hidden layer gets the error it learns from",
                        group=NETWORK, label="Learning rule",
                        choices=_registry("engine.rules", "RULES", lambda r: r.summary))
    dataset: str = setting("digits", "the examples the network learns from", group=NETWORK, label="Dataset",
                           choices=_registry("engine.data.registry", "DATASETS", lambda d: d.description))
    teacher: str = setting("linear", "teacher dataset only: whether its targets come from a linear or a "
                           "nonlinear network", group=NETWORK,
                           label="Teacher (teacher dataset)", choices=TEACHERS,
                           when=lambda cfg: cfg.dataset == "teacher")
    model: str = setting("mlp", "the kind of network: fully connected (mlp), an autoencoder, or a conv net",
                         group=NETWORK, label="Model",
                         choices=_registry("engine.networks", "MODELS", lambda m: ""))
    depth: int = setting(2, "how many hidden layers lie between the input and the output", group=NETWORK,
                         label="Hidden layers (depth)",
                         low=1, high=64, metavar="D")
    width: int | list[int] = setting(
        50, "units in each hidden layer: one number for all, or one per layer, comma-separated "
        "(e.g. 50,20; then --depth may be left out)", group=NETWORK, label="Width (one, or per layer: 50,20)",
        low=1, high=65536, metavar="W", many=True)
    activation: str = setting("sigmoid", "the function each hidden unit applies to its summed input "
                              "(linear: none)", group=NETWORK, label="Activation",
                              choices=ACTIVATIONS)
    init: str = setting("torch", "how the starting weights are drawn at random", group=NETWORK,
                        label="Weight init (paper: N(0, 2/fan_in))",
                        choices=_registry("engine.networks", "INITS"))
    loss: str = setting("mse", "how an output's error is counted: mse = half the squared error (the "
                        "paper's), ce = cross-entropy", group=NETWORK, label="Loss", choices=LOSSES)
    # how the forward weights learn
    # Adam by default: its per-weight normalised step does not grow with a layer's fan-in, so
    # one lr trains widths 8–1,024 and depths 1–6 with every rule; SGD with momentum at any
    # one lr diverges for the wide nets (the output layer's curvature grows with its width).
    optimizer: str = setting("adam", "how the forward weights W are updated: SGD with momentum, or Adam",
                             group=FORWARD, label="Optimizer", choices=OPTIMIZERS)
    lr: float | list[float] = setting(
        1e-3, "how big a step the forward weights W take at each update (can change while running); "
        "comma-separated values compare them in one population, like σ's", group=FORWARD,
        label="Learning rate (live)", low=0.0, high=1e6, live=True, metavar="LR", step=0.0005, many=True)
    momentum: float = setting(0.9, "SGD only: how much of the previous step carries into the next "
                              "(0 = none)", group=FORWARD, label="Momentum", low=0.0,
                              high=1.0, high_open=True, metavar="M", step=0.1,
                              when=lambda cfg: cfg.optimizer == "sgd")
    batch_size: int = setting(32, "how many examples each training step learns from", group=FORWARD,
                              label="Batch size", low=1, high=65536, metavar="B")
    steps: int = setting(2000, "how many training steps the run takes", group=FORWARD, label="Steps",
                         low=1, high=10**12, metavar="N", step=1000)
    warmup_steps: int = setting(0, "W stays frozen for the first K steps while B learns", group=FORWARD,
                                label="Warm-up steps (W frozen)", low=0, high=10**12, metavar="K",
                                step=100)
    freeze_forward: bool = setting(False, "W never changes and only the feedback B learns (the paper's "
                                   "Fig. 2 set-up)",
                                   group=FORWARD, label="Freeze W (only B learns)")
    # node perturbation and feedback learning
    sigma: float | list[float] = setting(
        0.01, "how much random noise is added to each hidden unit (its standard deviation; np needs "
        "> 0; can change while running); comma-separated values (1e-3,1e-2) train `seeds` members "
        "for each in one population", group=FEEDBACK, label="σ: noise std (live)", low=0.0, high=1e3,
        live=True, metavar="S", step=0.001, when=_noisy, many=True)
    feedback_lr: float | list[float] = setting(
        1.0, "how big a step the feedback B takes when it learns by sgd (NP divides it by its noise; "
        "can change while running); comma-separated values compare them in one population, like σ's",
        group=FEEDBACK, label="Feedback learning rate (live)", low=0.0, high=1e6, live=True, metavar="LRB",
        step=0.1, when=_learns_b_by_sgd, many=True)
    # bookkeeping
    seed: int = setting(0, "the random seed: the same seed gives the same run", group=BOOKKEEPING,
                        label="Seed", low=0, high=2**63 - 1, metavar="S")
    seeds: int = setting(1, "how many copies of the network train side by side in one batched step, "
                         "seeded seed, seed+1, …", group=BOOKKEEPING, label="Seeds", low=1, high=4096, metavar="P")
    device: str = setting("auto", "where to train: cpu, a GPU (cuda), or auto (a GPU if there is one)",
                          group=BOOKKEEPING, label="Device", choices=DEVICES)
    metric_interval: int = setting(50, "measure the angles and the other curves every K steps",
                                   group=BOOKKEEPING, label="Metrics every k steps", low=1, high=10**12,
                                   metavar="K")
    eval_interval: int = setting(250, "measure the test-set loss and accuracy every K steps",
                                 group=BOOKKEEPING, label="Test set every k steps", low=1, high=10**12,
                                 metavar="K")
    # the settings rules declare in their own modules (LearningRule.options), by name; read
    # them as cfg.<name>. Serialised flat, beside the fields.
    options: dict[str, Any] = field(default_factory=dict, repr=False, metadata={"setting": None})

    def __init__(self, **values: Any) -> None:
        """Any setting by name, the rules' own as well as the fields: RunConfig(rule="np",
        noise_draws=4). An unknown name is a ConfigError naming it."""
        options = values.pop("options", None) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"options={shown(options)} is not allowed; it must be an object of settings by name")
        options = dict(options)
        for f in _FIELDS:
            setattr(self, f.name, values.pop(f.name) if f.name in values else f.default)
        options.update(values)
        if options:                         # rules are imported only when a name needs them
            unknown = sorted(set(options) - set(rule_options()), key=str)
            if unknown:
                raise ConfigError(f"unknown setting {shown(unknown[0])}; known settings are "
                                  f"{', '.join(sorted(settings()))}")
        self.options = options

    def __eq__(self, other: object) -> bool:
        # equal when every setting is: a rule's own setting at its default, given or not
        return isinstance(other, RunConfig) and self.to_dict() == other.to_dict()

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: a rule's own setting, stored or at its default.
        if name.startswith("_") or name == "options":
            raise AttributeError(name)
        stored = self.__dict__.get("options") or {}
        if name in stored:
            return stored[name]
        declared = rule_options().get(name)
        if declared is None:
            raise AttributeError(f"RunConfig has no setting {name!r}")
        return declared.default

    # ----------------------------------------------------------------- derived
    def widths(self) -> list[int]:
        if isinstance(self.width, (list, tuple)):
            return [int(w) for w in self.width]
        return [int(self.width)] * int(self.depth)

    def values_of(self, name: str) -> list[float]:
        """A member setting's values (σ, lr, feedback_lr): one, or the list a population compares."""
        value = getattr(self, name)
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def compared(self) -> dict[str, list[float]]:
        """The member settings given several values, in MEMBER_SETTINGS' order → their values."""
        return {name: self.values_of(name) for name in MEMBER_SETTINGS if len(self.values_of(name)) > 1}

    def groups(self) -> list[dict[str, float]]:
        """One dict per combination of the compared values (σ slowest, then lr, then feedback_lr);
        [{}] when nothing is compared. Each group trains `seeds` members."""
        compared = self.compared()
        return [dict(zip(compared, values)) for values in itertools.product(*compared.values())]

    def members(self) -> int:
        """How many networks train side by side: `seeds` of them for each group of settings."""
        return self.seeds * len(self.groups())

    def member_values(self) -> list[dict[str, Any]]:
        """What tells member k apart: its seed and its group's compared values, group by group,
        seeds seed, seed+1, …, seed+seeds−1 in each."""
        return [{"seed": self.seed + j, **group} for group in self.groups() for j in range(self.seeds)]

    # --------------------------------------------------------------- checking
    def validate(self) -> "RunConfig":
        """Check every field against its Setting, then the settings that depend on each other."""
        from engine.data.registry import DATASETS  # late imports: avoid import cycles
        from engine.networks import CONV_MODELS
        from engine.rules import RULES

        for name, s in settings().items():
            s.check(name, getattr(self, name), _defaults()[name], choices_of(name))
        if isinstance(self.width, (list, tuple)) and len(self.width) != self.depth:
            raise ConfigError(f"width has {len(self.width)} entries but depth is {self.depth}: "
                              "give one width, or one per hidden layer")
        RULES[self.rule].check(self)
        if self.model in ("mlp", "autoencoder"):
            spec = DATASETS[self.dataset]
            n_in = math.prod(spec.image_shape) if spec.image_shape else 64
            sizes = [n_in, *self.widths(), n_in if self.model == "autoencoder" else spec.n_out or 10]
            weights = sum(a * b for a, b in zip(sizes, sizes[1:])) * self.members()   # all members'
            if weights > MAX_WEIGHTS:
                raise ConfigError(f"width={shown(self.width)} is not allowed with depth {self.depth}: the "
                                  f"network{'s' * (self.members() > 1)} would have {weights:,} weights (at most "
                                  f"{MAX_WEIGHTS:,} fit in memory with their feedback and optimiser state); "
                                  "lower the width or the depth")
        if self.model in CONV_MODELS and DATASETS[self.dataset].image_shape is None:
            raise ConfigError(f"model={self.model!r} is not allowed for dataset {self.dataset!r}: "
                              "a conv net needs an image dataset")
        if self.model == "autoencoder":
            if self.depth % 2 == 0:
                raise ConfigError(f"depth={self.depth} is not allowed for model 'autoencoder': "
                                  "it needs an odd depth (the middle layer is the bottleneck)")
            if self.loss != "mse":
                raise ConfigError(f"loss={self.loss!r} is not allowed for model 'autoencoder': "
                                  "it reconstructs its input, use loss='mse'")
        if self.loss == "ce" and DATASETS[self.dataset].task != "classification":
            raise ConfigError(f"loss='ce' is not allowed for dataset {self.dataset!r}: "
                              "it is a regression task, use loss='mse'")
        return self

    def check_live_change(self, name: str, value: Any) -> Any:
        """Validate a change to a live field; return the value as stored."""
        if name not in LIVE_FIELDS:
            raise ConfigError(f"{shown(name)} cannot change during a run; live fields are "
                              f"{', '.join(LIVE_FIELDS)}")
        if name in self.compared():
            raise ConfigError(f"{name} cannot change during this run: its members compare "
                              f"{format_numbers(self.values_of(name))}")
        if isinstance(value, (list, tuple)) and len(value) > 1:
            raise ConfigError(f"{name}={format_numbers(value)} cannot be set during a run: several "
                              "values train side by side in a run of their own (press Start)")
        trial = dataclasses.replace(self, **{name: value})
        trial.validate()
        return getattr(trial, name)

    # ----------------------------------------------------------- serialising
    def to_dict(self) -> dict[str, Any]:
        """Every setting in one flat dict: the fields, and every rule's own settings (its value
        where one was given, else its default), so that a saved config names every value."""
        data = dataclasses.asdict(self)
        options = data.pop("options")
        return {**data, **{name: opt.default for name, opt in rule_options().items()}, **options}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """The inverse of `to_dict` (missing settings take their defaults); a name that is
        neither a field nor a rule's own setting is a ConfigError."""
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            data = json.loads(text)
        except ValueError as exc:           # not JSON, or an integer of over 4,300 digits in it
            why = "it holds an integer of over 4,300 digits" if "integer string" in str(exc) else exc
            raise ConfigError(f"the settings are not valid JSON: {why}") from None
        if not isinstance(data, dict):
            raise ConfigError("the settings are not a JSON object")
        return cls.from_dict(data)


_FIELDS = [f for f in dataclasses.fields(RunConfig) if f.metadata["setting"] is not None]
LIVE_FIELDS = tuple(f.name for f in _FIELDS if f.metadata["setting"].live)
# The settings a population's members may differ in (no shape depends on them); a list of values
# for one or more of them trains `seeds` members per combination.
MEMBER_SETTINGS = ("sigma", "lr", "feedback_lr")


def rule_options() -> dict[str, Any]:
    """The settings rules declare in their own modules, by name → `RuleOption` (imports the
    rules, and so torch: only what trains or shows a rule's settings asks for them)."""
    from engine.rules import RULES
    return _rule_options(tuple(RULES.values()))


@functools.cache
def _rule_options(rules: tuple) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = {f.name for f in _FIELDS}
    first = RunConfig.rule                  # the default rule's settings first, as a newcomer meets them
    for rule in sorted(rules, key=lambda r: r.name != first):
        for name, opt in rule.options.items():
            if name in fields or (name in out and out[name] is not opt):
                raise ValueError(f"rule {rule.name!r} declares setting {name!r}, which is taken")
            out[name] = opt
    return out


def settings() -> dict[str, Setting]:
    """Every setting, in the order of the CLI and sidebar: RunConfig's fields in declaration
    order, the rules' own settings before the bookkeeping ones. Cached per set of registered
    rules (the dashboard asks for it per widget on every edit); do not modify it."""
    from engine.rules import RULES
    return _settings(tuple(RULES.values()))


@functools.cache
def _settings(rules: tuple) -> dict[str, Setting]:
    fields = {f.name: f.metadata["setting"] for f in _FIELDS}
    options = {name: opt.setting for name, opt in _rule_options(rules).items()}
    first = {name: s for name, s in fields.items() if s.group != BOOKKEEPING}
    return {**first, **options, **{name: s for name, s in fields.items() if name not in first}}


def defaults() -> dict[str, Any]:
    """Every setting's default, by name (fields and the rules' own settings)."""
    return dict(_defaults())


def _defaults() -> dict[str, Any]:
    from engine.rules import RULES
    return _defaults_for(tuple(RULES.values()))


@functools.cache
def _defaults_for(rules: tuple) -> dict[str, Any]:
    out = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
           for f in _FIELDS}
    out.update((name, opt.default) for name, opt in _rule_options(rules).items())
    return out


def choices_of(name: str) -> dict[str, str] | None:
    """A choice field's allowed values → a one-line description (may be empty); else None."""
    choices = settings()[name].choices
    if choices is None:
        return None
    return dict(choices()) if callable(choices) else {c: "" for c in choices}


def applies(name: str, cfg: Any) -> bool:
    """Whether setting `name` matters under `cfg` (anything with RunConfig's attributes): a rule
    that reads it, and its own condition. Unknown values count as mattering."""
    s = settings()[name]
    try:
        if s.rule_specific:
            from engine.rules import RULES
            rule = RULES.get(cfg.rule)
            if rule is not None and name not in rule.options:
                return False
        return s.when is None or bool(s.when(cfg))
    except (AttributeError, TypeError, ValueError):
        return True


def eval_interval_for(metric_interval: int) -> int:
    """eval_interval where only metric_interval is given (the CLI): its first multiple from
    eval_interval's default on. A step that evaluates the test set also measures every curve (a
    record carries both), so an eval_interval that is no multiple of metric_interval measures
    them off it: every 250 steps for a run asked to measure every 2,000."""
    default = _defaults()["eval_interval"]
    return -(-default // metric_interval) * metric_interval


__all__ = ["RunConfig", "settings", "defaults", "rule_options", "choices_of", "applies", "eval_interval_for",
           "LIVE_FIELDS", "MEMBER_SETTINGS", "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "DEVICES", "TEACHERS"]
