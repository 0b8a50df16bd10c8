"""Learning rules by name, discovered: every module in this package registers its rules on import
(`@register`), and so does every module named in CREDITLAB_RULES (comma-separated import paths:
a rule of your own, in one module, with its own settings, without editing the engine)."""

import importlib
import os
import pkgutil

from engine.rules.base import RULES, LearningRule, StepResult, register

ENV_RULES = "CREDITLAB_RULES"

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
for _name in filter(None, (n.strip() for n in os.environ.get(ENV_RULES, "").split(","))):
    importlib.import_module(_name)

__all__ = ["RULES", "LearningRule", "StepResult", "register", "ENV_RULES"]
