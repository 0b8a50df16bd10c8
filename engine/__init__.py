"""creditlab's engine: learning rules, metrics and a streaming trainer. Pure PyTorch; no UI.

`from engine import Trainer` works as usual, but torch is imported only when the trainer is first
asked for: `creditlab --help` and `creditlab runs` never load it.
"""

from engine.errors import ConfigError
from engine.config import RunConfig

__all__ = ["RunConfig", "ConfigError", "Trainer", "DivergedError"]


def __getattr__(name: str):
    if name == "Trainer":
        from engine.trainer import Trainer
        return Trainer
    if name == "DivergedError":
        from engine.divergence import DivergedError
        return DivergedError
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
