"""Sign symmetry (Liao, Leibo & Poggio 2016), in the three forms Sanfiz & Akrout (2021, BioTorch)
name. Not the paper's rule: a baseline the lab added.

The feedback knows the sign of each forward weight but not its size, and is refreshed from the
current W before every step; `ss_variant` picks what stands in for the size:

- ``frsf`` (the default; fixed random magnitude): B = |R| ⊙ sign(Wᵀ), R drawn once, at FA's
  init scale;
- ``brsf`` (batchwise random magnitude): the same with R drawn afresh for every batch;
- ``usf`` (uniform): B = s · sign(Wᵀ), one constant s per layer, the RMS of that layer's init
  distribution, so that B has the norm a random B at W's init scale has on average (BioTorch
  scales by a Xavier-like constant instead; only the scale of the error signal differs).

Locality: every feedback synapse must know the sign of the forward synapse it mirrors (a
weak form of weight transport), and nothing else; brSF also redraws its magnitudes every batch.
"""

import torch

from engine.rules.base import LearningRule, register
from engine.rules.fa import random_feedback
from engine.settings import option

VARIANTS = {"frsf": "fixed random magnitudes: B = |R| ⊙ sign(Wᵀ), R drawn once (frSF)",
            "brsf": "random magnitudes drawn afresh every batch (brSF)",
            "usf": "unit magnitudes at W's init scale: B = s · sign(Wᵀ) (uSF)"}


def init_rms(scheme: str, fan_in: int) -> float:
    """The RMS of a weight drawn by base.init_like under `scheme`: U(±1/√fan_in) has
    1/√(3 fan_in), N(0, 2/fan_in) has √(2/fan_in)."""
    return (2.0 / fan_in) ** 0.5 if scheme == "paper" else (3.0 * fan_in) ** -0.5


@register
class SignSymmetry(LearningRule):
    name = "ss"
    title = "SS: sign symmetry"
    summary = "sign symmetry: B = magnitude ⊙ sign(Wᵀ), magnitudes fixed random, batchwise random or uniform"
    options = {**LearningRule.options,
               "ss_variant": option("frsf", "ss: what stands in for the size of each feedback weight (its sign "
                                    "is W's)", label="Sign symmetry: magnitudes", choices=lambda: VARIANTS)}

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.variant = cfg.ss_variant
        if self.variant == "usf":
            # one number per layer, as a tensor of B's (stacked) shape so refresh() treats all alike
            self.magnitude = []
            for layer in model.layers[1:]:
                first, *rest = layer.feedback_shape()
                self.magnitude.append(torch.full((layer.members * first, *rest),
                                                 init_rms(model.init, layer.fan_in()), device=self.device))
        else:
            self.magnitude = self.draw_magnitudes()
        self.feedback = [torch.empty_like(m) for m in self.magnitude]
        self.refresh()
        self.attach_feedback(self.feedback)

    def draw_magnitudes(self) -> list[torch.Tensor]:
        return [r.abs_() for r in random_feedback(self.model, self.generator, self.device)]

    @torch.no_grad()
    def refresh(self):
        for b, m, layer in zip(self.feedback, self.magnitude, self.model.layers[1:]):
            torch.mul(m, layer.backprop_feedback().sign(), out=b)

    def compute_gradients(self, x, y, objective, live=None):
        if self.variant == "brsf":
            self.magnitude = self.draw_magnitudes()
        self.refresh()
        return super().compute_gradients(x, y, objective, live)

    def feedback_matrices(self):
        return self.feedback
