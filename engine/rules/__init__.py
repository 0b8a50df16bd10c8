"""Learning rules by name. Importing this package registers every rule module below."""

from engine.rules.base import RULES, LearningRule, StepResult, register
from engine.rules import bp, dfa, fa, kp, np, sg, ss  # noqa: F401  (registration side effect)

__all__ = ["RULES", "LearningRule", "StepResult", "register"]
