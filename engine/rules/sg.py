"""SG oracle: the same regression of B as node perturbation, but on the *true* ∂L/∂hᵢ.

The ceiling of the method: what learned feedback reaches when its target is noise-free.
("Synthetic gradient" in the paper's sense; the target comes from a backprop reference pass.)
"""

from engine.reference import backprop_reference
from engine.rules.base import REGRESSION_SETTINGS, LearningRule, register
from engine.rules.fa import random_feedback
from engine.rules.np import learned_feedback


@register
class SyntheticGradientOracle(LearningRule):
    name = "sg"
    title = "SG: oracle-trained B"
    reads = REGRESSION_SETTINGS + ("train_on_noise",)
    summary = "oracle: B regressed on the true ∂L/∂h (the ceiling of learned feedback)"
    learns_feedback = True

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = random_feedback(model, generator, self.device)
        self.regression = learned_feedback(self.feedback, list(model.layers[1:]), cfg)
        self.attach_feedback(self.feedback)

    def learn_feedback(self, x, y, objective, result):
        target = backprop_reference(self.model, x, y, objective, result.masks).dh
        self.regression.update(result.deltas[1:], target, result.site_errors)

    def feedback_matrices(self):
        return self.feedback

    def state_dict(self):
        return {**super().state_dict(), "regression": self.regression.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.regression.load_state_dict(state.get("regression", {}))
