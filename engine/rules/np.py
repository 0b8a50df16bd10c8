"""Node perturbation learns the feedback (Lansdell, Prakash & Kording 2020) — the paper's rule.

Each step: a clean pass trains the forward weights through the current B (the output layer
with its exact gradient), then a noisy pass of the same batch with ξᵢ ~ N(0, σ²I) added to
every hidden output at once gives, per sample and hidden layer,

    λ̂ᵢ = (L̃ − L) ξᵢ / σ²          (antithetic: (L̃₊ − L̃₋)/2 · ξᵢ / σ²)

an estimate of ∂L/∂hᵢ that is unbiased to first order in σ. B_{i+1} is then regressed so that
B_{i+1} δ_{i+1} predicts λ̂ᵢ. Loss and accuracy are those of the clean pass.
"""

import torch

from engine.config import ConfigError
from engine.models import FeedbackConv2d
from engine.rules.base import LearningRule, register
from engine.rules.dfa import DirectFeedbackAlignment, DirectMap, DirectTaps, direct_random_feedback
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
        self.regression = learned_feedback(self.feedback, list(model.layers[1:]), cfg)
        self.attach_feedback(self.feedback)

    @classmethod
    def uses_noise(cls, cfg):
        return True

    def compute_gradients(self, x, y, objective):
        result = self.forward_backward(x, y, objective)      # clean pass: trains W, gives δ and L
        result.estimates = self.estimate(x, y, objective, result.loss, result.masks,
                                         result.first_hidden)
        return result

    def learn_feedback(self, x, y, objective, result):
        self.regression.update(result.deltas[1:], result.estimates, result.site_errors)

    @torch.no_grad()
    def estimate(self, x, y, objective, clean_loss, masks=None, first_hidden=None):
        """λ̂ᵢ for every hidden site from one noisy pass (two when antithetic).

        The noisy pass reuses the clean pass's dropout masks, so L̃ − L is caused by the node
        noise alone (independent masks let dropout noise leak into the estimate)."""
        noise = self.sample_noise(x)

        def loss_with(n):
            out = self.model(x, noise=n, masks=masks, use_feedback=False, first_hidden=first_hidden).out
            return objective.per_sample(out, y)

        if self.cfg.antithetic:
            change = 0.5 * (loss_with(noise) - loss_with([-xi for xi in noise]))
        else:
            change = loss_with(noise) - clean_loss
        scale = change / self.cfg.sigma ** 2
        return [scale.view(-1, *[1] * (xi.dim() - 1)) * xi for xi in noise]

    def feedback_matrices(self):
        return self.feedback

    def state_dict(self):
        return {**super().state_dict(), "regression": self.regression.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.regression.load_state_dict(state.get("regression", {}))


def learned_feedback(feedback, maps, cfg) -> FeedbackRegression:
    """The regression that learns `feedback`; ridge starts from B = 0, as in the paper."""
    if cfg.feedback_mode == "ridge":
        if any(isinstance(m, FeedbackConv2d) for m in maps):
            raise ConfigError("feedback_mode='ridge' is not allowed for convolutional layers; "
                              "use feedback_mode='sgd'")
        for b in feedback:
            b.zero_()
    return FeedbackRegression(feedback, maps, cfg)


@register
class NodePerturbationDirect(NodePerturbation):
    """The paper's CIFAR form: feedback from the output error e straight to every hidden site
    (DFA-shaped Bᵢ), learned by node perturbation: Bᵢ ← Bᵢ − β (Bᵢ e − λ̂ᵢ) eᵀ."""

    name = "np-dfa"
    summary = "node perturbation learns direct feedback Bᵢ from the output error (the paper's CIFAR form)"
    feedback_kind = "direct"

    def __init__(self, model, cfg, generator):
        LearningRule.__init__(self, model, cfg, generator)
        self.feedback = direct_random_feedback(model, generator, self.device)
        self.regression = learned_feedback(self.feedback, [DirectMap] * len(self.feedback), cfg)
        self.attach_feedback(None)

    def compute_gradients(self, x, y, objective):
        result = self.forward_backward(x, y, objective, taps=DirectTaps(self.feedback))
        result.estimates = self.estimate(x, y, objective, result.loss, result.masks,
                                         result.first_hidden)
        return result

    def learn_feedback(self, x, y, objective, result):
        e = result.deltas[-1]
        self.regression.update([e] * len(self.feedback), result.estimates)

    error_signals = DirectFeedbackAlignment.error_signals
