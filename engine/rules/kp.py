"""Kolen-Pollack ("matched" in the paper; Akrout et al. 2019).

B starts random and receives exactly the update that was applied to Wᵀ, and both decay:
W ← W − η(∇W + λW) and B ← B − η(∇Wᵀ + λB) under plain SGD. Whatever the optimiser, the
difference then shrinks geometrically, B − Wᵀ ← (1 − ηλ)(B − Wᵀ), so B → Wᵀ.
"""

import torch

from engine.rules.base import LearningRule, register
from engine.rules.fa import random_feedback


@register
class KolenPollack(LearningRule):
    name = "kp"
    title = "KP: Kolen-Pollack"
    reads = ("weight_decay", "train_on_noise")
    summary = "Kolen-Pollack: B gets W's update, weight decay pulls B to Wᵀ"
    learns_feedback = True

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = random_feedback(model, self.generator, self.device)
        self.attach_feedback(self.feedback)
        self._before: list[torch.Tensor] = []

    def compute_gradients(self, x, y, objective, live=None):
        result = super().compute_gradients(x, y, objective, live)
        with torch.no_grad():
            for layer in self.model.layers:
                layer.weight.grad.add_(layer.weight, alpha=self.cfg.weight_decay)
        return result

    def before_optimizer_step(self):
        self._before = [layer.backprop_feedback().detach().clone() for layer in self.model.layers[1:]]

    @torch.no_grad()
    def after_optimizer_step(self, live=None):
        decay = (live or self.live).lr * self.cfg.weight_decay
        for b, old, layer in zip(self.feedback, self._before, self.model.layers[1:]):
            # B += ΔWᵀ − ηλ(B − W_oldᵀ): equals −η(∇Wᵀ + λB) under plain SGD.
            drift = b - old
            b.add_(layer.backprop_feedback() - old).sub_(drift, alpha=decay)

    def feedback_matrices(self):
        return self.feedback
