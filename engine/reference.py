"""Backprop's answer for the same batch, computed off the training path.

Used by the metrics (what would backprop have sent?) and by the SG oracle (regress B on the
true gradient). It runs a separate clean forward pass with the true Wᵀ everywhere and asks
autograd for gradients with `torch.autograd.grad`, so it never touches `.grad`, never draws
from a random generator, and so cannot change training. `backprop_site_errors` gives the same
errors at the hidden sites from the training pass's activations, with no second forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Reference:
    weight_grads: list[torch.Tensor]   # ∂L/∂Wᵢ of the batch-mean loss, one per layer
    dh: list[torch.Tensor]             # per-sample true ∂L/∂hᵢ at each hidden site
    deltas: list[torch.Tensor]         # per-sample true δᵢ = ∂L/∂aᵢ for each layer


def backprop_reference(model, x, y, objective, masks=None, replay=None) -> Reference:
    """Backprop on the clean network; pass the step's dropout `masks` to see the same network.

    `replay`: the pre-activations of the step's own clean pass (`StepResult.pre`, taken before
    any weight moved): the same answer, bit for bit, from the backward alone (see
    FeedbackNet.forward)."""
    weights = [layer.weight for layer in model.layers]
    with torch.enable_grad():
        trace = model(x, masks=masks, use_feedback=False, replay=replay, replay_weights=True)
        loss = objective.per_sample(trace.out, y).sum()
        hidden_inputs = trace.inputs[1:]
        grads = torch.autograd.grad(loss, weights + hidden_inputs + trace.pre)
    n, k = len(weights), len(hidden_inputs)
    batch = x.shape[0] // model.members               # samples per member
    return Reference(weight_grads=[g.div_(batch) for g in grads[:n]],     # fresh: divided in place
                     dh=list(grads[n:n + k]), deltas=list(grads[n + k:]))


def backprop_site_errors(model, x, y, objective, result) -> list[torch.Tensor]:
    """`backprop_reference(model, x, y, objective, result.masks).dh`, bit for bit, for the step
    `result` describes (before any weight moved), from the backward alone and without the weight
    gradients: it replays the clean pass's own activations from block 1's output up, through Wᵀ
    (see FeedbackNet.forward). Falls back to the full reference when the pass that trained was
    not the clean network (the noise-only ablation)."""
    if result.pre is None or result.first_hidden is None:
        return backprop_reference(model, x, y, objective, result.masks).dh
    start = result.first_hidden.detach().requires_grad_()
    with torch.enable_grad():
        trace = model(x, masks=result.masks, use_feedback=False, first_hidden=start,
                      replay=result.pre)
        loss = objective.per_sample(trace.out, y).sum()
        return list(torch.autograd.grad(loss, trace.inputs))
