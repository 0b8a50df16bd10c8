"""Direct feedback alignment (Nøkland 2016): the paper's CIFAR baseline (its learned form is
`np-dfa`). Locality: the output error e must reach every hidden layer directly, through fixed
random synapses; nothing is learned.

Each hidden site gets the output error e through
its own fixed random matrix Bᵢ (units_i × n_out): ∂L/∂hᵢ := e Bᵢᵀ for a batch of row vectors
(reshaped to the site's shape in a conv net).

Autograd does the rest: each hidden output enters the layer above it detached (backprop's
error to it would only be discarded, and it is the costliest product of the backward), and a
tap on the output takes e = ∂L/∂a_N as the backward pass starts and sends e Bᵢᵀ to every
hidden output.
"""

import torch

from engine.layers import add_outer_products, times_transposed
from engine.rules.base import LearningRule, init_like, register


class _DirectFeedback(torch.autograd.Function):
    """The identity on the output a_N, joined to every hidden site: its backward takes the
    output error e = ∂L/∂a_N and sends e Bᵢᵀ to each site i, the only error the site receives."""

    @staticmethod
    def forward(ctx, taps, a, *sites):
        ctx.taps, ctx.feedback, ctx.shapes = taps, list(taps.feedback), [h.shape for h in sites]
        return a.view_as(a)

    @staticmethod
    def backward(ctx, e):
        p = ctx.taps.members
        sent = [times_transposed(e, b, p).view(shape) for b, shape in zip(ctx.feedback, ctx.shapes)]
        ctx.taps.sent = sent
        return (None, e, *sent)


class DirectTaps:
    """Each hidden site enters the layer above it detached, so backprop's error δ_{i+1} W_{i+1}
    is never formed (it would be thrown away), and the output's tap sends every site its e Bᵢᵀ.
    One tap per pass; the sites are taken in order, input side first. After the backward,
    `sent` holds the errors e Bᵢᵀ it sent (of the batch-mean loss, like autograd's),
    so that neither the metrics nor B's regression form them again."""

    def __init__(self, feedback, members: int = 1):
        self.feedback, self.members = feedback, members
        self.sent: list[torch.Tensor] | None = None
        self.sites: list[torch.Tensor] = []

    def output(self, a):
        return _DirectFeedback.apply(self, a, *self.sites)

    def hidden(self, i, h):
        assert i == len(self.sites), "hidden sites are tapped in order, input side first"
        self.sites.append(h)
        return h.detach()


class DirectMap:
    """The map from the output error to a site, e ↦ e Bᵀ, in the interface of a layer's
    feedback (see engine/layers.py), so the feedback regression treats both alike."""

    def __init__(self, members: int = 1):
        self.members = members

    def input_grad(self, g, feedback, shape):
        return times_transposed(g, feedback, self.members)

    def add_feedback_grad(self, feedback, residual, g) -> None:
        add_outer_products(feedback, residual.flatten(1), g, members=self.members)

    @staticmethod
    def regression_gain() -> int:
        return 1

    def solution_shape(self, feedback):
        return feedback.shape[0] // self.members, feedback.shape[1]

    @staticmethod
    def regression_rows(g, target):
        return g, target.flatten(1)

    @staticmethod
    def feedback_from_solution(solution, feedback):
        return solution


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
        self.feedback = direct_random_feedback(model, self.generator, self.device)
        self.attach_feedback(None)

    def compute_gradients(self, x, y, objective, live=None):
        return self.forward_backward(x, y, objective, noisy=self.cfg.train_on_noise,
                                     taps=DirectTaps(self.feedback, self.members), live=live)

    def feedback_matrices(self):
        return self.feedback
