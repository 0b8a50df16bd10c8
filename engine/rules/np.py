"""Node perturbation learns the feedback (Lansdell, Prakash & Kording 2020) — the paper's rule.

Each step: a clean pass trains the forward weights through the current B (the output layer
with its exact gradient), then a noisy pass of the same batch with ξᵢ ~ N(0, σ²I) added to
every hidden output at once gives, per sample and hidden layer,

    λ̂ᵢ = (L̃ − L) ξᵢ / σ²          (antithetic: (L̃₊ − L̃₋)/2 · ξᵢ / σ²)

an estimate of ∂L/∂hᵢ that is unbiased to first order in σ. B_{i+1} is then regressed so that
B_{i+1} δ_{i+1} predicts λ̂ᵢ. Loss and accuracy are those of the clean pass.
"""

import torch

from engine.rules.base import LearningRule, register
from engine.rules.fa import random_feedback
from engine.rules.regression import FeedbackRegression


@register
class NodePerturbation(LearningRule):
    name = "np"
    summary = "node perturbation learns B (the paper): B δ regressed on (L̃ − L) ξ / σ²"
    learns_feedback = True

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = random_feedback(model, generator, self.device)
        if cfg.feedback_mode == "ridge":
            for b in self.feedback:          # the paper's ridge solution starts from B = 0
                b.zero_()
        self.regression = FeedbackRegression(self.feedback, cfg)
        self.attach_feedback(self.feedback)

    @classmethod
    def uses_noise(cls, cfg):
        return True

    def compute_gradients(self, x, y, objective):
        result = self.forward_backward(x, y, objective)      # clean pass: trains W, gives δ and L
        result.estimates = self.estimate(x, y, objective, result.loss)
        return result

    def learn_feedback(self, x, y, objective, result):
        self.regression.update(result.deltas[1:], result.estimates)

    @torch.no_grad()
    def estimate(self, x, y, objective, clean_loss):
        """λ̂ᵢ for every hidden layer from one noisy pass (two when antithetic)."""
        noise = self.sample_noise(x)
        noisy_loss = objective.per_sample(self.model(x, noise=noise, use_feedback=False).out, y)
        if self.cfg.antithetic:
            mirrored = objective.per_sample(
                self.model(x, noise=[-xi for xi in noise], use_feedback=False).out, y)
            change = 0.5 * (noisy_loss - mirrored)
        else:
            change = noisy_loss - clean_loss
        scale = (change / self.cfg.sigma ** 2).unsqueeze(1)
        return [scale * xi for xi in noise]

    def feedback_matrices(self):
        return self.feedback

    def state_dict(self):
        return {**super().state_dict(), "regression": self.regression.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.regression.load_state_dict(state.get("regression", {}))
