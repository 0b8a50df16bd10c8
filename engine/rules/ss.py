"""Sign symmetry (Liao et al. 2016), fixed-random-magnitude form (frSF in Sanfiz & Akrout 2021).

B = |R| ⊙ sign(Wᵀ) with R fixed and random: the feedback knows the sign of each forward weight
but not its size. B is refreshed from the current W before every step.
"""

import torch

from engine.rules.base import LearningRule, register
from engine.rules.fa import random_feedback


@register
class SignSymmetry(LearningRule):
    name = "ss"
    title = "SS: sign symmetry"
    summary = "sign symmetry: B = |R| ⊙ sign(Wᵀ), R fixed random"

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.magnitude = [r.abs() for r in random_feedback(model, self.generator, self.device)]
        self.feedback = [torch.empty_like(m) for m in self.magnitude]
        self.refresh()
        self.attach_feedback(self.feedback)

    @torch.no_grad()
    def refresh(self):
        for b, m, layer in zip(self.feedback, self.magnitude, self.model.layers[1:]):
            torch.mul(m, layer.backprop_feedback().sign(), out=b)

    def compute_gradients(self, x, y, objective, live=None):
        self.refresh()
        return super().compute_gradients(x, y, objective, live)

    def feedback_matrices(self):
        return self.feedback
