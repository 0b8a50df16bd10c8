"""Learning B by linear regression: make the error sent through B predict a per-sample target.

Shared by node perturbation (target: the noisy estimate λ̂ᵢ) and the SG oracle (target: the
true gradient), in layer-wise form (input δ_{i+1}, through layer i+1's feedback) and direct
form (input: the output error e). Two solvers:

- "sgd":   B ← B − η_B · Σ_t (B δ_t − λ_t) δ_tᵀ / Σ_t c‖δ_t‖²        (normalised LMS: the lab's, the default)
           B ← B − η_B · mean_t (B δ_t − λ_t) δ_tᵀ                    (feedback_normalize off: the
                                                                     reference code's plain step, on the mean)
- "ridge": V ← ρV + Σ δδᵀ,  S ← ρS + Σ λ δᵀ,  B = S (V + γI)⁻¹   (ρ = 1: cumulative, the paper's)

Normalised LMS divides the step by the batch's own input energy (c = 1 for a linear map, kh·kw
for a convolution, whose every δ entry feeds kh·kw patches). That bounds the step by the largest
curvature of the regression for every layer whatever its scale, so one η_B ∈ (0, 1] suits the
first conv layer and the top FC layer alike; unnormalised, the curvature differs by orders of
magnitude between them and no single rate works.

Ridge keeps V and S in float64 whatever the model's dtype: they are sums over up to 10⁶ steps,
and float32's 7 digits lose the newest batches' contribution as the sums grow (the top layer's
error then rises again after ~30k steps). Each step's products are formed in the model's dtype
(one batch is short) and added to the float64 sums; B is solved by Cholesky. With
`ridge_relative`, γ scales with the data: γ · tr(V)/n, a fixed fraction of the mean eigenvalue.

In row-vector form (δ: batch × n_{i+1}, λ: batch × n_i) the prediction is δ Bᵀ. A map exposes
its regression as rows of features and targets (`regression_rows`) and turns the solution back
into its feedback tensor (`feedback_from_solution`): for a convolution each row is one position
of one sample, its features the patch of δ around it, shared by every input channel, so the Gram
is (C_out·kh·kw)² however many input channels there are.

A population's members regress their own B on their own rows: one normalisation, one V and S,
one solve per member (V and S carry a leading member axis; the solves are batched).
"""

from __future__ import annotations

import torch

from engine.members import per_member, split
from engine.settings import option

_TINY = 1e-30
FEEDBACK_MODES = ("sgd", "ridge")


def _sgd(cfg) -> bool:
    return cfg.feedback_mode == "sgd"


def _ridge(cfg) -> bool:
    return cfg.feedback_mode == "ridge"


# The settings of B's regression, read by every rule that learns B this way (NP, NP-DFA, SG).
# feedback_lr, the SGD solver's rate, is a RunConfig field: it can change live.
REGRESSION_OPTIONS = {
    "feedback_mode": option("sgd", "how B learns: small sgd steps, or an exact ridge-regression fit to the "
                            "examples seen so far", label="Feedback learning", choices=FEEDBACK_MODES),
    "feedback_normalize": option(
        True, "sgd B: each step is divided by the size of the layer's inputs, so one rate suits every "
        "layer", label="Normalised SGD step (scale-free)", when=_sgd,
        off="sgd: the plain step, not divided by the batch's input energy (by default it is, so "
            "that one rate suits every layer)"),
    "ridge_gamma": option(0.1, "ridge B: how strongly the fit is pulled towards B = 0 (γ)", label="Ridge γ",
                          low=1e-12, high=1e12, metavar="G", step=0.01, when=_ridge),
    "ridge_relative": option(False, "ridge B: γ counts relative to the layer inputs' mean size (tr(V)/n), "
                             "not absolutely", label="Ridge γ relative to tr(V)/n", when=_ridge),
    "ridge_forget": option(1.0, "ridge B: how much older examples still count (1: all alike, as in the "
                           "paper; < 1 forgets them, to follow a changing W)", label="Ridge forgetting",
                           low=0.0, high=1.0, low_open=True, metavar="RHO", step=0.01, when=_ridge),
}


def _products(a: torch.Tensor, b: torch.Tensor, members: int) -> torch.Tensor:
    """aᵀ b of each member's rows, as (P, a's columns, b's columns)."""
    if members == 1:
        return (a.T @ b).unsqueeze(0)
    return torch.bmm(split(a, members).transpose(1, 2), split(b, members))


def _rate(feedback_lr: float | tuple[float, ...], rows: torch.Tensor):
    """The step's rate: one number, or each member's on its rows of `rows`."""
    return per_member(feedback_lr, rows) if isinstance(feedback_lr, tuple) else feedback_lr


class FeedbackRegression:
    def __init__(self, feedback: list[torch.Tensor], maps: list, cfg, members: int = 1):
        """`maps[i]` sends an error through `feedback[i]`: a layer, or a direct map (see dfa.py);
        `members`: the population's P, whose blocks are stacked in every tensor."""
        self.feedback, self.maps, self.members = feedback, maps, members
        self.cfg = cfg                      # its fixed settings; feedback_lr comes with each update
        if cfg.feedback_mode == "ridge":
            self.gram, self.cross = [], []
            for b, m in zip(feedback, maps):
                n_out, n_features = m.solution_shape(b)
                self.gram.append(torch.zeros(members, n_features, n_features, dtype=torch.float64,
                                             device=b.device))
                self.cross.append(torch.zeros(members, n_out, n_features, dtype=torch.float64,
                                              device=b.device))
            self._eye = [torch.eye(v.shape[1], dtype=torch.float64, device=v.device) for v in self.gram]

    @torch.no_grad()
    def update(self, inputs: list[torch.Tensor], targets: list[torch.Tensor | None], feedback_lr: float,
               predictions: list[torch.Tensor] | None = None, gain: float = 1.0) -> None:
        """Regress each feedback tensor on its (input, target) pairs of this batch. A target of
        None leaves that site alone (a site that was not perturbed this step). `predictions`,
        when given, are the current predictions (the errors the backward pass already sent
        through B), so they are not computed again. `feedback_lr` is the step's (it may change
        live); `gain` scales the normalised SGD step (a noisy target wants a smaller one); the
        plain step and ridge ignore both."""
        predictions = predictions or [None] * len(self.feedback)
        for i, (d, t, p) in enumerate(zip(inputs, targets, predictions)):
            if t is None:
                continue
            if self.cfg.feedback_mode == "ridge":
                self._ridge(i, d, t)
            else:
                self._sgd(i, d, t, p, feedback_lr, gain)

    def _sgd(self, i, d, t, prediction, feedback_lr, gain):
        b, m = self.feedback[i], self.maps[i]
        if prediction is None:
            prediction = m.input_grad(d, b, t.shape)
        residual = prediction - t.reshape(prediction.shape)
        # The step's one factor scales the residual (batch-sized), so that B takes the summed
        # product in place: no B-sized temporaries.
        p = self.members
        if self.cfg.feedback_normalize:
            if p == 1:
                flat = d.reshape(-1)
                energy = torch.dot(flat, flat)
            else:                  # each member's own input energy, as a column over its rows
                energy = split(d, p).flatten(1).pow(2).sum(1).repeat_interleave(d.shape[0] // p)
                energy = energy.view(-1, *[1] * (residual.dim() - 1))
            c = m.regression_gain()
            if c != 1:
                energy = energy * c
            residual.mul_((-_rate(feedback_lr, residual) * gain) / energy.clamp_min(_TINY))
        else:                      # the reference code's step, as it stands: no gain
            residual.mul_(-_rate(feedback_lr, residual) / (d.shape[0] // p))
        m.add_feedback_grad(b, residual, d)                       # summed over the batch

    def _ridge(self, i, d, t):
        m, v, s = self.maps[i], self.gram[i], self.cross[i]
        features, target = m.regression_rows(d, t)
        rho = self.cfg.ridge_forget
        if rho != 1.0:
            v.mul_(rho)
            s.mul_(rho)
        p = self.members
        v.add_(_products(features, features, p).double())
        s.add_(_products(target, features, p).double())
        b, solution = self.feedback[i], self.solve(i)
        if p == 1:
            b.copy_(m.feedback_from_solution(solution[0], b))
        else:
            split(b, p).copy_(m.feedback_from_solution(solution, split(b, p)))

    def ridge_gamma(self, i: int) -> torch.Tensor | float:
        """The γ added to V's diagonal at site i (data-scaled when `ridge_relative`), per member."""
        gamma = self.cfg.ridge_gamma
        if self.cfg.ridge_relative:
            v = self.gram[i]
            return (gamma * torch.diagonal(v, dim1=1, dim2=2).sum(1) / v.shape[1] + _TINY).view(-1, 1, 1)
        return gamma

    def solve(self, i: int) -> torch.Tensor:
        """S (V + γI)⁻¹ in float64 for every member, (P, outputs, features), by Cholesky
        (V + γI is symmetric positive definite)."""
        v, s = self.gram[i], self.cross[i]
        chol, _ = torch.linalg.cholesky_ex(v + self.ridge_gamma(i) * self._eye[i])
        # B (V + γI) = S  ⇔  (V + γI) Bᵀ = Sᵀ; cholesky_ex: no host sync to check the factor
        return torch.cholesky_solve(s.transpose(1, 2), chol).transpose(1, 2)

    def state_dict(self) -> dict:
        if self.cfg.feedback_mode != "ridge":
            return {}
        # one member's sums without the member axis, as a single run has always saved them
        squeeze = (lambda t: t[0]) if self.members == 1 else (lambda t: t)
        return {"gram": [squeeze(v).cpu() for v in self.gram], "cross": [squeeze(s).cpu() for s in self.cross]}

    def load_state_dict(self, state: dict) -> None:
        for name in ("gram", "cross"):
            for mine, saved in zip(getattr(self, name, []), state.get(name, [])):
                mine.copy_(saved.view_as(mine))
