"""One serialisable description of an experiment.

`RunConfig` is the single source of truth shared by the CLI, the dashboard (and its URL) and
the run folders on disk. Everything a run needs to be reproduced is in here; nothing else is.

Validation lives here too, so every front end reports bad input the same way: `validate()`
raises `ConfigError` with a one-line message that names the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
LOSSES = ("mse", "ce")
OPTIMIZERS = ("sgd", "adam")
FEEDBACK_MODES = ("sgd", "ridge")
PERTURB = ("all", "cycle")
DEVICES = ("auto", "cpu", "cuda")

# Fields that may change between steps of a live run; everything else needs a new run.
LIVE_FIELDS = ("sigma", "lr", "feedback_lr")


class ConfigError(ValueError):
    """Bad user input. The message is one line, names the bad value and what is allowed."""


@dataclass
class RunConfig:
    # what learns
    rule: str = "np"
    dataset: str = "digits"
    model: str = "mlp"                  # mlp, autoencoder, conv-small, conv-cifar (engine/models.py)
    depth: int = 2                      # number of hidden layers
    width: int | list[int] = 50         # one number, or one per hidden layer
    activation: str = "sigmoid"
    init: str = "torch"                 # "torch": U(±1/√fan_in); "paper": N(0, 2/fan_in) (models.INITS)
    loss: str = "mse"                   # "mse": ½‖ŷ − y‖² (the paper's), "ce": softmax cross-entropy
    # how the forward weights learn
    optimizer: str = "sgd"
    lr: float = 0.05                    # with momentum 0.9 an effective step of 0.5: 1.0 made the SG oracle diverge
    momentum: float = 0.9
    batch_size: int = 32
    steps: int = 2000
    freeze_forward: bool = False        # only the feedback learns (the paper's Fig. 2 set-up)
    warmup_steps: int = 0               # forward weights frozen for the first steps
    # node perturbation and feedback learning
    sigma: float = 0.01                 # noise std on every hidden layer's output
    feedback_lr: float = 1.0            # sgd: normalised step; NP divides it by its noise (rules/np.py)
    feedback_mode: str = "sgd"          # "sgd" or exact "ridge" regression
    feedback_normalize: bool = True     # sgd: step ÷ the batch's input energy (scale-free LMS)
    ridge_gamma: float = 0.1
    ridge_relative: bool = False        # ridge: γ · tr(V)/n instead of an absolute γ
    ridge_forget: float = 1.0           # 1.0: cumulative, as in the paper; <1 tracks a moving W
    antithetic: bool = False
    noise_draws: int = 1                # NP: noisy passes per step, λ̂ averaged (variance ÷ K)
    perturb: str = "all"                # NP: "all" hidden layers at once, or one per step ("cycle")
    control_variate: bool = True        # NP, sgd B: correlate only the change B does not predict (ξ·Bδ)
    train_on_noise: bool = False        # noise-only ablation for fixed-feedback rules
    weight_decay: float = 1e-3          # Kolen-Pollack's decay that pulls B to Wᵀ
    # bookkeeping
    seed: int = 0
    device: str = "auto"
    metric_interval: int = 50           # alignment metrics every k steps
    eval_interval: int = 250            # test-set evaluation every k steps
    teacher: str = "linear"             # for dataset="teacher": "linear" or "nonlinear"

    # ----------------------------------------------------------------- derived
    def widths(self) -> list[int]:
        if isinstance(self.width, (list, tuple)):
            return [int(w) for w in self.width]
        return [int(self.width)] * int(self.depth)

    # --------------------------------------------------------------- checking
    def validate(self) -> "RunConfig":
        from engine.data import DATASETS          # late imports: avoid import cycles
        from engine.models import CONV_MODELS, INITS, MODELS
        from engine.rules import RULES

        _choice("rule", self.rule, sorted(RULES))
        _choice("dataset", self.dataset, sorted(DATASETS))
        _choice("model", self.model, sorted(MODELS))
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("feedback_mode", self.feedback_mode, FEEDBACK_MODES)
        _choice("perturb", self.perturb, PERTURB)
        _choice("init", self.init, sorted(INITS))
        _choice("device", self.device, DEVICES)
        _choice("teacher", self.teacher, ("linear", "nonlinear"))
        _integer("depth", self.depth, low=1)
        if isinstance(self.width, (list, tuple)):
            if len(self.width) != self.depth:
                raise ConfigError(
                    f"width has {len(self.width)} entries but depth is {self.depth}: "
                    "give one width, or one per hidden layer")
            for w in self.width:
                _integer("width", w, low=1)
        else:
            _integer("width", self.width, low=1)
        _integer("batch_size", self.batch_size, low=1)
        _integer("steps", self.steps, low=1)
        _integer("warmup_steps", self.warmup_steps, low=0)
        _integer("noise_draws", self.noise_draws, low=1)
        _integer("seed", self.seed, low=0)
        _integer("metric_interval", self.metric_interval, low=1)
        _integer("eval_interval", self.eval_interval, low=1)
        _real("lr", self.lr, low=0.0)
        _real("feedback_lr", self.feedback_lr, low=0.0)
        _real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _real("weight_decay", self.weight_decay, low=0.0)
        _real("ridge_gamma", self.ridge_gamma, low=0.0, low_open=True)
        _real("ridge_forget", self.ridge_forget, low=0.0, high=1.0, low_open=True)
        _real("sigma", self.sigma, low=0.0)
        if RULES[self.rule].uses_noise(self) and not self.sigma > 0:
            raise ConfigError(f"sigma={self.sigma!r} is not allowed for rule {self.rule!r}: "
                              "node perturbation needs sigma > 0")
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
            raise ConfigError(f"{name!r} cannot change during a run; live fields are "
                              f"{', '.join(LIVE_FIELDS)}")
        trial = dataclasses.replace(self, **{name: value})
        trial.validate()
        return getattr(trial, name)

    # ----------------------------------------------------------- serialising
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}; known settings are "
                              f"{', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))


def _choice(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(str, allowed))}")


def _integer(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an integer >= {low}")


def _real(name: str, value: Any, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rng = " and ".join(s for s in (lo, hi) if s)
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number {rng}")


__all__ = ["RunConfig", "ConfigError", "LIVE_FIELDS", "ACTIVATIONS", "LOSSES", "OPTIMIZERS",
           "FEEDBACK_MODES", "PERTURB"]
