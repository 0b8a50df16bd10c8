"""Direct feedback alignment (Nøkland 2016): each hidden site gets the output error e through
its own fixed random matrix Bᵢ (units_i × n_out): ∂L/∂hᵢ := e Bᵢᵀ for a batch of row vectors
(reshaped to the site's shape in a conv net).

Autograd does the rest: a tap on the output records e = ∂L/∂a_N as the backward pass starts,
and a tap on each hidden output replaces the gradient arriving from above by e Bᵢᵀ.
"""

import torch

from engine.models import FeedbackLinear
from engine.rules.base import LearningRule, init_like, register


class _RecordError(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, taps):
        ctx.taps = taps
        return a.view_as(a)

    @staticmethod
    def backward(ctx, g):
        ctx.taps.error = g
        return g, None


class _InjectError(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, taps, feedback):
        ctx.taps, ctx.feedback, ctx.shape = taps, feedback, h.shape
        return h.view_as(h)

    @staticmethod
    def backward(ctx, g):
        # Autograd reaches this tap only after the output's, so the error is already recorded.
        return (ctx.taps.error @ ctx.feedback.T).view(ctx.shape), None, None


class DirectTaps:
    def __init__(self, feedback):
        self.feedback = feedback
        self.error = None

    def output(self, a):
        return _RecordError.apply(a, self)

    def hidden(self, i, h):
        return _InjectError.apply(h, self, self.feedback[i])


class DirectMap:
    """The map from the output error to a site, e ↦ e Bᵀ, in the interface of a layer's
    feedback (see engine/models.py), so the feedback regression treats both alike."""

    @staticmethod
    def input_grad(g, feedback, shape):
        return g @ feedback.T

    @staticmethod
    def feedback_grad(residual, g):
        return residual.flatten(1).T @ g

    regression_gain = FeedbackLinear.regression_gain
    solution_shape = FeedbackLinear.solution_shape
    regression_rows = FeedbackLinear.regression_rows
    feedback_from_solution = FeedbackLinear.feedback_from_solution


def direct_random_feedback(model, generator, device):
    n_out = model.sizes[-1]
    # Scale as if B_i were a layer from the output (fan-in n_out) down to site i.
    return [init_like(model.init, n_out, (n, n_out), generator, device) for n in model.sizes[1:-1]]


@register
class DirectFeedbackAlignment(LearningRule):
    name = "dfa"
    title = "DFA: direct feedback alignment"
    summary = "direct feedback alignment: output error to every hidden layer through fixed random Bᵢ"
    feedback_kind = "direct"

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = direct_random_feedback(model, generator, self.device)
        self.attach_feedback(None)

    def compute_gradients(self, x, y, objective):
        return self.forward_backward(x, y, objective, noisy=self.cfg.train_on_noise,
                                     taps=DirectTaps(self.feedback))

    def error_signals(self, result):
        e = result.deltas[-1]
        return [e @ b.T for b in self.feedback]

    def feedback_matrices(self):
        return self.feedback
