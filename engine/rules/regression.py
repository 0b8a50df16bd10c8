"""Learning B by linear regression: make the error sent through B predict a per-sample target.

Shared by node perturbation (target: the noisy estimate λ̂ᵢ) and the SG oracle (target: the
true gradient), in layer-wise form (input δ_{i+1}, through layer i+1's feedback) and direct
form (input: the output error e). Two solvers, as in the paper's reference code:

- "sgd":   B ← B − η_B · mean_t (B δ_t − λ_t) δ_tᵀ        (batch mean, so η_B ignores batch size)
- "ridge": V ← ρV + Σ δδᵀ,  S ← ρS + Σ λ δᵀ,  B = S (V + γI)⁻¹   (ρ = 1: cumulative, the paper's)

In row-vector form (δ: batch × n_{i+1}, λ: batch × n_i) the prediction is δ Bᵀ. For a
convolution the prediction is the transposed convolution of δ with B and the SGD step its
adjoint; ridge needs a plain matrix and is refused there.
"""

from __future__ import annotations

import torch


class FeedbackRegression:
    def __init__(self, feedback: list[torch.Tensor], maps: list, cfg):
        """`maps[i]` sends an error through `feedback[i]`: a layer, or a direct map (see dfa.py)."""
        self.feedback, self.maps = feedback, maps
        self.cfg = cfg                      # read at every update: feedback_lr may change live
        if cfg.feedback_mode == "ridge":
            self.gram = [torch.zeros(b.shape[1], b.shape[1], device=b.device) for b in feedback]
            self.cross = [torch.zeros_like(b) for b in feedback]

    @torch.no_grad()
    def update(self, inputs: list[torch.Tensor], targets: list[torch.Tensor],
               predictions: list[torch.Tensor] | None = None) -> None:
        """`predictions`, when given, are the current predictions (the errors the backward
        pass already sent through B), so they are not computed again."""
        if self.cfg.feedback_mode == "ridge":
            self._ridge(inputs, targets)
        else:
            self._sgd(inputs, targets, predictions or [None] * len(self.feedback))

    def _sgd(self, inputs, targets, predictions):
        for b, m, d, t, p in zip(self.feedback, self.maps, inputs, targets, predictions):
            prediction = m.input_grad(d, b, t.shape) if p is None else p
            residual = prediction - t.reshape(prediction.shape)
            b.sub_(m.feedback_grad(residual, d), alpha=self.cfg.feedback_lr / d.shape[0])

    def _ridge(self, inputs, targets):
        rho, gamma = self.cfg.ridge_forget, self.cfg.ridge_gamma
        for b, v, s, d, t in zip(self.feedback, self.gram, self.cross, inputs, targets):
            t = t.flatten(1)
            v.mul_(rho).addmm_(d.T, d)
            s.mul_(rho).addmm_(t.T, d)
            ridge = v + gamma * torch.eye(v.shape[0], device=v.device)
            b.copy_(torch.linalg.solve(ridge, s.T).T)     # B (V + γI) = S, V symmetric

    def state_dict(self) -> dict:
        if self.cfg.feedback_mode != "ridge":
            return {}
        return {"gram": [v.cpu() for v in self.gram], "cross": [s.cpu() for s in self.cross]}

    def load_state_dict(self, state: dict) -> None:
        for name in ("gram", "cross"):
            for mine, saved in zip(getattr(self, name, []), state.get(name, [])):
                mine.copy_(saved)
