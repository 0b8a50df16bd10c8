"""Weight mirrors (Akrout, Wilson, Humphreys, Lillicrap & Tweed 2019, "Deep learning without weight
transport"). Not the paper's rule: a baseline the lab added, another route to B ≈ Wᵀ without
weight transport, beside Kolen-Pollack.

Training sends the error down through B, as FA does. After each step a *mirror* phase learns B:
each layer's input units are driven by noise of their own, ξ ~ N(0, I), independent of the data
and of every other layer, and the layer answers y = W ξ (its response, less the bias, which the
noise does not move). Each feedback synapse then changes by the product of the activities at its
two ends, with a decay:

    B ← B + η_M (ξᵀ y / n − λ B)          (B in × out like Wᵀ; n rows of noise, the batch size)

E[ξᵀ y / n] = E[ξᵀ ξ / n] Wᵀ = Wᵀ, so B relaxes to Wᵀ / λ at a rate η_M λ per step; at λ = 1 (the
default) B → Wᵀ itself, scale included. The noise has unit variance because the response is
linear in it: a σ² would only rescale η_M and λ. In a convolution B is the kernel and ξᵀ y the
correlation of the noise with the response over positions, divided for each kernel tap by the
positions where that tap meets the input rather than the zero padding, so that it estimates W at
every tap.

Locality: a feedback synapse reads only the activities of the two units it joins, during mirror
phases in which the layer's input is driven by noise that only that layer sees. It needs no
error, no loss and no signal from other layers, but it does need the mirror phase, in which the
forward pathway carries noise instead of data (the paper's "mirror mode", e.g. in sleep).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.layers import FeedbackConv2d, linear, to_channels, to_rows
from engine.rules.base import LearningRule, register
from engine.rules.fa import random_feedback
from engine.settings import option


@register
class WeightMirror(LearningRule):
    name = "wm"
    title = "WM: weight mirrors"
    summary = "weight mirrors (Akrout et al. 2019): B learns ξ·(Wξ)ᵀ from noise, decays, → Wᵀ"
    learns_feedback = True
    options = {
        **LearningRule.options,
        "mirror_lr": option(0.01, "wm: how far B moves towards its noise-driven estimate of Wᵀ in each "
                            "step's mirror phase (η_M)", label="Mirror learning rate (WM)",
                            low=0.0, high=1.0, metavar="ETA", step=0.005),
        "mirror_decay": option(1.0, "wm: the decay λ of B in the mirror phase: B settles at Wᵀ/λ",
                               label="Mirror decay λ (WM)", low=0.0, high=1e3, low_open=True,
                               metavar="L", step=0.1),
    }

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = random_feedback(model, self.generator, self.device)
        self.attach_feedback(self.feedback)
        self._counts: dict[int, torch.Tensor] = {}     # a conv layer's positions per tap

    def feedback_matrices(self):
        return self.feedback

    def learn_feedback(self, x, y, objective, result, live=None):
        """One mirror phase, after the step was measured (so its metrics describe the B that
        carried its errors)."""
        self.mirror(result.input_shapes[1:])

    @torch.no_grad()
    def mirror(self, input_shapes) -> None:
        """B ← (1 − η_M λ) B + η_M ξᵀ(Wξ)/n, layer by layer, input side first (a convolution's
        correlation divided per tap by its positions); each member's noise from its own stream.
        `input_shapes`: each layer's input shape, all members' rows."""
        eta, decay, p = self.cfg.mirror_lr, self.cfg.mirror_decay, self.members
        for i, (b, layer, shape) in enumerate(zip(self.feedback, self.model.layers[1:], input_shapes)):
            rows = shape[0] // p
            xi = self.generator.stack(lambda g: torch.randn((rows, *shape[1:]), generator=g,
                                                            device=b.device, dtype=b.dtype))
            response = _response(layer, xi)
            b.mul_(1.0 - eta * decay)
            if isinstance(layer, FeedbackConv2d):
                counts = self._counts.get(i)
                if counts is None or counts.shape != b.shape[-2:]:
                    counts = self._counts[i] = _tap_counts(layer, shape, response.shape, b)
                b.add_(layer.feedback_grad(xi, response).div_(counts), alpha=eta / rows)
            else:
                layer.add_feedback_grad(b, xi, response.mul_(eta / rows))


def _response(layer, xi: torch.Tensor) -> torch.Tensor:
    """W ξ: the layer's output for input ξ without its bias (each member through its own W)."""
    p = layer.members
    if isinstance(layer, FeedbackConv2d):
        out = F.conv2d(to_channels(xi, p), layer.weight, None, layer.stride, layer.padding, 1, layer.groups)
        return to_rows(out, p)
    return linear(xi, layer.weight, torch.zeros_like(layer.bias), p)


def _tap_counts(layer, in_shape, out_shape, like: torch.Tensor) -> torch.Tensor:
    """For each kernel tap (kh × kw), the output positions at which it meets the input and not
    the zero padding: its correlation sums W times that many products per sample."""
    per_axis = []
    for size, out, k, pad, stride in zip(in_shape[-2:], out_shape[-2:], layer.kernel_size,
                                         layer.padding, layer.stride):
        per_axis.append([sum(0 <= o * stride + t - pad < size for o in range(out)) for t in range(k)])
    rows, cols = (torch.tensor(c, dtype=like.dtype, device=like.device) for c in per_axis)
    return torch.outer(rows, cols).clamp_min_(1.0)
