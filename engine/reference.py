"""Backprop's answer for the same batch, computed off the training path.

Used by the metrics (what would backprop have sent?) and by the SG oracle (regress B on the
true gradient). It runs a separate clean forward pass with the true Wᵀ everywhere and asks
autograd for gradients with `torch.autograd.grad`, so it never touches `.grad`, never draws
from a random generator, and so cannot change training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Reference:
    weight_grads: list[torch.Tensor]   # ∂L/∂Wᵢ of the batch-mean loss, one per layer
    dh: list[torch.Tensor]             # per-sample true ∂L/∂hᵢ at each hidden site
    deltas: list[torch.Tensor]         # per-sample true δᵢ = ∂L/∂aᵢ for each layer


def backprop_reference(model, x, y, objective, masks=None) -> Reference:
    """Backprop on the clean network; pass the step's dropout `masks` to see the same network."""
    weights = [layer.weight for layer in model.layers]
    with torch.enable_grad():
        trace = model(x, masks=masks, use_feedback=False)
        loss = objective.per_sample(trace.out, y).sum()
        hidden_inputs = trace.inputs[1:]
        grads = torch.autograd.grad(loss, weights + hidden_inputs + trace.pre)
    n, k = len(weights), len(hidden_inputs)
    batch = x.shape[0]
    return Reference(weight_grads=[g / batch for g in grads[:n]],
                     dh=list(grads[n:n + k]), deltas=list(grads[n + k:]))
