"""Networks whose backward pass a learning rule can redirect.

The one new piece is `FeedbackLinear`: an `nn.Linear` whose backward sends the error to its
input through a feedback matrix B instead of Wᵀ when one is attached. B is stored with the
shape of Wᵀ (in × out), as in the paper, so "B vs Wᵀ" is a literal comparison; for a batch of
row vectors the error reaching the layer's input is therefore g Bᵀ, where backprop's is g W.

The forward pass returns a `Trace` with every layer's input and pre-activation, so a rule can
ask autograd for the error δ at each layer, and it accepts noise to add to every hidden output
(node perturbation) and `taps` (direct feedback alignment routes the output error through them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": lambda a: a,
}


class FeedbackLinearFn(torch.autograd.Function):
    """y = x Wᵀ + b, whose backward returns g Bᵀ (not g W) as the input gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, feedback = ctx.saved_tensors
        grad_x = g @ feedback.T if ctx.needs_input_grad[0] else None
        grad_w = g.T @ x if ctx.needs_input_grad[1] else None
        grad_b = g.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


class FeedbackLinear(nn.Linear):
    """A linear layer with an optional feedback matrix (shape in × out, like Wᵀ)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        self.feedback: torch.Tensor | None = None   # owned by the learning rule

    def forward(self, x: torch.Tensor, use_feedback: bool = True) -> torch.Tensor:
        if self.feedback is None or not use_feedback:
            return F.linear(x, self.weight, self.bias)
        return FeedbackLinearFn.apply(x, self.weight, self.bias, self.feedback)


class Taps(Protocol):
    """Identity functions in the forward pass whose backward a rule may rewrite."""

    def hidden(self, i: int, h: torch.Tensor) -> torch.Tensor: ...
    def output(self, a: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Trace:
    out: torch.Tensor                 # network output ŷ (pre-softmax for cross-entropy)
    inputs: list[torch.Tensor]        # input of each layer: x, h₁, …, h_{N-1} (noisy in a noisy pass)
    pre: list[torch.Tensor]           # pre-activation of each layer: a₁, …, a_N (a_N = ŷ)
    hidden: list[torch.Tensor]        # h₁, …, h_{N-1} before noise is added


class MLP(nn.Module):
    """Fully connected net: `depth` hidden layers of `widths`, then a linear output layer."""

    def __init__(self, n_in: int, widths: list[int], n_out: int, activation: str = "sigmoid"):
        super().__init__()
        sizes = [n_in, *widths, n_out]
        self.sizes = sizes
        self.activation = activation
        self.act = ACTIVATION_FNS[activation]
        self.layers = nn.ModuleList(FeedbackLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    @property
    def n_hidden(self) -> int:
        return len(self.layers) - 1

    def forward(self, x: torch.Tensor, noise: list[torch.Tensor] | None = None,
                use_feedback: bool = True, taps: Taps | None = None) -> Trace:
        inputs, pre, hidden = [], [], []
        h = x
        for i, layer in enumerate(self.layers):
            inputs.append(h)
            a = layer(h, use_feedback=use_feedback)
            pre.append(a)
            if i == len(self.layers) - 1:
                if taps is not None:
                    a = taps.output(a)
                return Trace(out=a, inputs=inputs, pre=pre, hidden=hidden)
            h = self.act(a)
            hidden.append(h)
            if noise is not None:
                h = h + noise[i]
            if taps is not None:
                h = taps.hidden(i, h)
        raise AssertionError("unreachable")

    def hidden_shapes(self) -> list[int]:
        return self.sizes[1:-1]


MODELS = {"mlp": MLP}


def build_model(cfg, n_in: int, n_out: int) -> nn.Module:
    return MLP(n_in, cfg.widths(), n_out, cfg.activation)
