"""Kolen-Pollack (Kolen & Pollack 1994; Akrout et al. 2019). The paper's "Matched" baseline is this
rule without decay (`weight_decay=0`); the decay, which makes B converge to Wᵀ, is the lab's
addition from Akrout et al.

B starts random and receives exactly the update that was applied to Wᵀ, and both decay:
W ← W − η(∇W + λW) and B ← B − η(∇Wᵀ + λB) under plain SGD. What the code does under any
optimiser: λW is added to W's gradient, so W's decay is an L2 term that goes through the
optimiser (SGD's momentum, Adam's normalisation) like the rest of the gradient, not decoupled
weight decay; B then receives W's applied update, whatever the optimiser made of it, and its own
decay ηλ(B − W_oldᵀ), so the difference shrinks geometrically, B − Wᵀ ← (1 − ηλ)(B − Wᵀ), and
B → Wᵀ.

Locality: under plain SGD each feedback synapse's update, δ hᵀ and a decay, uses only the
activities at its two ends, as its forward twin's does; under momentum or Adam, B receiving W's
*applied* update also needs W's optimiser state, which a separate synapse would not have.
"""

import torch

from engine.members import per_member
from engine.rules.base import LearningRule, register
from engine.rules.fa import random_feedback
from engine.settings import option


@register
class KolenPollack(LearningRule):
    name = "kp"
    title = "KP: Kolen-Pollack"
    options = {**LearningRule.options,
               "weight_decay": option(1e-3, "Kolen-Pollack: how fast W and B shrink at each step, which pulls B "
                                      "towards Wᵀ", label="Weight decay (KP)", low=0.0, high=1e3, metavar="L",
                                      step=0.001)}
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
        lr = (live or self.live).lr
        for b, old, layer in zip(self.feedback, self._before, self.model.layers[1:]):
            # B += ΔWᵀ − ηλ(B − W_oldᵀ): equals −η(∇Wᵀ + λB) under plain SGD.
            drift = b - old
            b.add_(layer.backprop_feedback() - old)
            if isinstance(lr, tuple):           # each member at its own rate
                b.sub_(drift * per_member(lr, b) * self.cfg.weight_decay)
            else:
                b.sub_(drift, alpha=lr * self.cfg.weight_decay)

    def feedback_matrices(self):
        return self.feedback
