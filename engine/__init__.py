"""creditlab's engine: learning rules, metrics and a streaming trainer. Pure PyTorch; no UI."""

from engine.config import ConfigError, RunConfig
from engine.trainer import DivergedError, Trainer

__all__ = ["RunConfig", "ConfigError", "Trainer", "DivergedError"]
