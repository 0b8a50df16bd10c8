"""How close is a rule to backprop? One definition of each metric, per hidden layer.

Entry i (i = 1..N-1, input side first) describes hidden site i and the feedback matrix that
carries its error, B_{i+1} (layer-wise rules) or Bᵢ (direct rules). For a convolution, "Wᵀ"
is the forward kernel (the backward uses it transposed) and tensors are compared flattened.

- weight_angle_deg   angle between vec(B_{i+1}) and vec(W_{i+1}ᵀ)  (layer-wise rules only)
- relative_error     ‖W_{i+1}ᵀ − B_{i+1}‖_F / ‖W_{i+1}‖_F           (layer-wise rules only)
- sign_congruence    fraction of entries with sign(B_{i+1}) = sign(W_{i+1}ᵀ)
- signal_angle_deg   angle between the error the rule sends to hᵢ and backprop's for the same
                     upstream error: δ_{i+1}B_{i+1}ᵀ vs δ_{i+1}W_{i+1} (layer-wise); for direct
                     rules e Bᵢᵀ vs the true ∂L/∂hᵢ (same output error e), and so for a rule
                     without feedback (pnp) its λ̂ᵢ vs the true ∂L/∂hᵢ. Per-sample angles,
                     averaged over the batch, *not* folded into [0°, 90°] (the reference code
                     used one sample and folded).
- update_angle_deg   angle between the rule's ∂L/∂Wᵢ and backprop's on the same batch
- estimator_angle_deg, estimator_snr_db   (node perturbation) per-sample angle of λ̂ᵢ to the
                     true ∂L/∂hᵢ, batch mean; SNR = ‖g‖² / ‖λ̂ − g‖² over the batch, in dB
                     (NaN at a site left unperturbed this step).

Everything stays a tensor on the training device; the trainer syncs once per logged step.
In a population (engine/members.py) every metric is taken per member, on its own blocks.
"""

from __future__ import annotations

import math

import torch

from engine.reference import backprop_reference

from engine.metric_names import LAYER_METRICS  # noqa: F401  (the registry's order)
_EPS = 1e-12


def _rowwise_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between matching rows of two (rows × n) tensors; NaN where either row is
    zero (no direction, so no angle). Each row is first divided by its largest entry: the angle
    does not depend on scale, and tiny errors (saturated units) would otherwise underflow when
    squared and read as 90°."""
    def unit_scale(t):          # the scaled copy reuses |t|'s memory: weight-sized tensors
        scaled = t.abs()
        return torch.div(t, scaled.amax(dim=1, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny),
                         out=scaled)
    a, b = unit_scale(a), unit_scale(b)
    norms = a.norm(dim=1) * b.norm(dim=1)
    cos = a.mul_(b).sum(1) / norms
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
    return torch.where(norms > 0, angle, torch.full_like(angle, math.nan))


def _blocks(t: torch.Tensor, members: int) -> torch.Tensor:
    """Each member's block of a member-stacked tensor as one flat row: (P, block size)."""
    return t.reshape(members, -1)


def _one(value: torch.Tensor, members: int) -> torch.Tensor:
    """A single network's metric is a scalar; a population's, one per member."""
    return value[0] if members == 1 else value


def angle_deg(a: torch.Tensor, b: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Angle in degrees between two tensors seen as flat vectors; NaN if either is zero."""
    return _one(_rowwise_angle_deg(_blocks(a, members), _blocks(b, members)), members)


def mean_rowwise_angle_deg(a: torch.Tensor, b: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Mean over rows (samples) of the angle between matching rows, unfolded; rows without an
    angle (a zero error) are left out, and NaN when no row has one."""
    angles = _rowwise_angle_deg(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1))
    return _one(torch.nanmean(angles.view(members, -1), dim=1), members)


def relative_error(b: torch.Tensor, wt: torch.Tensor, members: int = 1) -> torch.Tensor:
    wt = _blocks(wt, members)
    return _one((wt - _blocks(b, members)).norm(dim=1) / wt.norm(dim=1).clamp_min(_EPS), members)


def sign_congruence(b: torch.Tensor, wt: torch.Tensor, members: int = 1) -> torch.Tensor:
    return _one((torch.sign(_blocks(b, members)) == torch.sign(_blocks(wt, members))).float().mean(1),
                members)


def snr_db(estimate: torch.Tensor, truth: torch.Tensor, members: int = 1) -> torch.Tensor:
    estimate = estimate.reshape(truth.shape)          # a conv site's estimate vs a flat gradient
    truth = _blocks(truth, members)
    noise = (_blocks(estimate, members) - truth).pow(2).sum(1).clamp_min(_EPS)
    return _one(10.0 * torch.log10(truth.pow(2).sum(1).clamp_min(_EPS) / noise), members)


@torch.no_grad()
def layer_metrics(model, rule, result, x, y, objective) -> dict[str, torch.Tensor]:
    """All metrics for every hidden layer, as {name: tensor of shape (N-1,)} ((N-1, P) for a
    population of P); NaN = not defined."""
    ref = backprop_reference(model, x, y, objective, result.masks, replay=result.pre)
    layers, p = model.layers, model.members
    nan = torch.full((p,) if p > 1 else (), math.nan, device=x.device)
    signals = rule.error_signals(result)
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in LAYER_METRICS}
    feedback = rule.feedback_matrices()                 # none at all for a rule without B (pnp)
    for i in range(len(layers) - 1):
        above = layers[i + 1]
        if rule.feedback_kind == "layerwise":
            b, wt = feedback[i], above.backprop_feedback()
            rows["weight_angle_deg"].append(angle_deg(b, wt, p))
            rows["relative_error"].append(relative_error(b, wt, p))
            rows["sign_congruence"].append(sign_congruence(b, wt, p))
            bp_signal = above.input_grad(result.deltas[i + 1], wt, result.input_shapes[i + 1])
        else:
            for k in ("weight_angle_deg", "relative_error", "sign_congruence"):
                rows[k].append(nan)
            bp_signal = ref.dh[i]
        rows["signal_angle_deg"].append(mean_rowwise_angle_deg(signals[i], bp_signal, p))
        rows["update_angle_deg"].append(angle_deg(result.weight_grads[i], ref.weight_grads[i], p))
        if result.estimates is not None and result.estimates[i] is not None:
            rows["estimator_angle_deg"].append(mean_rowwise_angle_deg(result.estimates[i], ref.dh[i], p))
            rows["estimator_snr_db"].append(snr_db(result.estimates[i], ref.dh[i], p))
        else:
            rows["estimator_angle_deg"].append(nan)
            rows["estimator_snr_db"].append(nan)
    return {k: torch.stack(v) for k, v in rows.items()}
