"""Node perturbation learns the feedback (Lansdell, Prakash & Kording 2020): the paper's method,
run by default with the lab's estimator and solver, not the paper's.

What is whose:
- the paper's: every hidden unit perturbed at once, the plain estimate λ̂ = (L̃ − L) ξ/σ² of one
  noise draw, B regressed on it by cumulative ridge from B = 0 (its MNIST solver), or by the
  plain SGD step (its autoencoder's: `feedback_normalize` off). `feedback_mode="ridge"` is the
  one switch to all of it, as the control variate applies to the SGD solver only
  (app/presets.py: PAPER_ESTIMATOR, the "NP, the paper's estimator" preset; engine/paper.py's
  Fig. 2 rows);
- the lab's, and the defaults: the normalised SGD step scaled by K/(K + N) (regression.py,
  `step_gain`) and the control variate with its learnt weight c (below); the options
  `noise_draws` (K draws averaged), `antithetic`, `perturb="cycle"` and `independent_noise` (a
  noise stream per seed and σ, base.py); ridge's forgetting and relative γ.

Locality: the paper's estimator needs at each hidden unit its own noise ξᵢ and one scalar
broadcast to the whole network, the loss change L̃ − L; B_{i+1}'s regression needs δ_{i+1} and
λ̂ᵢ at the two ends of each feedback synapse (ridge also solves with the Gram of δ_{i+1} over the
layer, not synapse by synapse). The control variate needs more: its scalar L̃ − L − c Σⱼ ξⱼ·ĝⱼ
sums each unit's noise times the error its feedback sends it over the whole network, a second
network-wide sum, and c is learnt from the history of both. K draws replay each sample K times;
"cycle" needs every layer to know whose turn it is.

Each step: a clean pass trains the forward weights through the current B (the output layer
with its exact gradient), then a noisy pass of the same batch with ξᵢ ~ N(0, σ²I) added to
every hidden output at once gives, per sample and hidden layer,

    λ̂ᵢ = (L̃ − L) ξᵢ / σ²          (antithetic: (L̃₊ − L̃₋)/2 · ξᵢ / σ²)

an estimate of ∂L/∂hᵢ that is unbiased to first order in σ. B_{i+1} is then regressed so that
B_{i+1} δ_{i+1} predicts λ̂ᵢ. Loss and accuracy are those of the clean pass.

With `control_variate` (SGD B), the errors ĝᵢ = B_{i+1} δ_{i+1} that B already sends predict
the change ξ·ĝ, and only the rest is correlated with the noise:

    λ̂ᵢ = (L̃ − L − c Σⱼ ξⱼ·ĝⱼ) ξᵢ / σ² + c ĝᵢ

still unbiased (ĝ and c do not depend on this step's ξ). At c = 1 its variance is that of
g − ĝ in place of g's: it falls as B learns, so the regression converges instead of stalling
at the estimate's noise floor. c ∈ [0, 1] is the variance-minimising weight, learnt from the
earlier batches (ControlVariateWeight): ≈ 0 while B's errors are junk, → 1 as B learns.
Globally it is a prediction error: the loss change minus the change the feedback expected.
"""

import torch

from engine.members import split
from engine.rules.base import INDEPENDENT_NOISE, register
from engine.rules.learned import LearnedFeedback
from engine.rules.regression import REGRESSION_OPTIONS
from engine.settings import option

PERTURB = ("all", "cycle")
# How NP draws and uses its noise (the pure estimate's rule shares them).
NOISE_OPTIONS = {
    "antithetic": option(False, "each noise is used twice, as ξ and as −ξ, so that much of it cancels",
                         label="Antithetic noise (ξ, −ξ)"),
    "noise_draws": option(1, "np: noisy passes per example and step, averaged (K times less variance, K "
                          "times the work)", label="Noise draws per sample (K)", low=1, high=1024, metavar="K"),
    "perturb": option("all", "np: add noise to all hidden layers at once, or to one layer per step in turn "
                      "(cycle: no other layer's noise in its estimate)",
                      label="Perturb layers (all / one per step)", choices=PERTURB),
    "independent_noise": INDEPENDENT_NOISE,
}
CONTROL_VARIATE = option(
    True, "np with sgd B: first subtract the loss change that B already predicts (ξ·Bδ), so the "
    "estimate gets less noisy as B learns", label="Subtract B's predicted change (ξ·Bδ)",
    when=lambda cfg: cfg.feedback_mode == "sgd",
    off="np with sgd B: the paper's plain estimate (L̃ − L) ξ/σ² (by default the change that B's errors "
        "predict, ξ·Bδ, is subtracted first: the estimate's variance then falls as B learns)")


class NodeNoise:
    """Node perturbation's noisy passes and its estimate λ̂ᵢ of every hidden site's error, mixed
    into a LearningRule: np and np-dfa regress B on it, pnp (pnp.py) trains W on it directly.
    The control variate (`predictions`) needs the rule's `cv_weight` (np's)."""

    _cycle = 0                              # perturb="cycle": the next site to perturb

    @classmethod
    def uses_noise(cls, cfg):
        return True

    @torch.no_grad()
    def estimate(self, x, y, objective, clean_loss, masks=None, first_hidden=None, predictions=None,
                 weight=None, sigma=None):
        """λ̂ᵢ for every hidden site from the step's noisy passes (None for a site left
        unperturbed this step, under perturb="cycle").

        `predictions` ĝᵢ make it the control-variate estimate, with `weight` c:
        λ̂ᵢ = (L̃ − L − c Σⱼ ξⱼ·ĝⱼ) ξᵢ/σ² + c ĝᵢ. By default c is the variance-minimising weight
        learnt from the earlier batches (see ControlVariateWeight).

        With noise_draws K > 1 the batch is repeated K times in one noisy pass and λ̂ is the
        mean of the K estimates per sample (variance ÷ K). The noisy pass reuses the clean
        pass's dropout masks, so L̃ − L is caused by the node noise alone (independent masks let
        dropout noise leak into the estimate). `sigma`: the step's σ (default: `self.live`'s)."""
        sigma = self.live.sigma if sigma is None else sigma
        k, batch, p = self.cfg.noise_draws, x.shape[0], self.members
        if k > 1:
            x, y, clean_loss = _repeat(x, k, p), _repeat(y, k, p), _repeat(clean_loss, k, p)
            masks = None if masks is None else [None if m is None else _repeat(m, k, p) for m in masks]
            first_hidden = None if first_hidden is None else _repeat(first_hidden, k, p)
        noise = self.sample_noise(x, sigma, self.perturbed_sites())

        def loss_with(n):
            out = self.model(x, noise=n, masks=masks, use_feedback=False, first_hidden=first_hidden).out
            return objective.per_sample(out, y)

        if self.cfg.antithetic:
            change = 0.5 * (loss_with(noise) - loss_with([None if xi is None else -xi for xi in noise]))
        else:
            change = loss_with(noise) - clean_loss
        if predictions is not None:             # the change that B's errors ĝ predict: ξ·ĝ
            predictions = [None if xi is None else _repeat(g.reshape(batch, *xi.shape[1:]), k, p)
                           for xi, g in zip(noise, predictions)]
            predicted = None
            for xi, g in zip(noise, predictions):
                if xi is not None:
                    dot = (xi * g).flatten(1).sum(1)
                    predicted = dot if predicted is None else predicted.add_(dot)
            if weight is None:
                weight = self.cv_weight.value()
                self.cv_weight.observe(change, predicted)      # after: c uses earlier batches only
                if p > 1:                                      # each member's c, on its rows
                    weight = weight.repeat_interleave(change.shape[0] // p)
            change = change - weight * predicted
        if isinstance(sigma, tuple):            # a σ per member: each on its member's rows
            sigma = torch.tensor(sigma, dtype=change.dtype, device=change.device)
            sigma = sigma.repeat_interleave(change.shape[0] // p)
        scale = change / sigma ** 2
        estimates = []
        for i, xi in enumerate(noise):
            if xi is None:
                estimates.append(None)
                continue
            column = [1] * (xi.dim() - 1)
            s = scale.view(-1, *column)
            # λ̂ᵢ = s ξᵢ (+ c ĝᵢ): one fused multiply-add per site
            if predictions is None:
                lam = s * xi
            else:
                c = weight.view(-1, *column) if isinstance(weight, torch.Tensor) and weight.dim() else weight
                lam = torch.addcmul(c * predictions[i], s, xi)
            if k > 1:               # each member's K draws of a sample, averaged
                lam = lam.view(p, k, batch // p, *lam.shape[1:]).mean(1).view(batch, *lam.shape[1:])
            estimates.append(lam)
        return estimates

    def perturbed_sites(self) -> list[int]:
        """The hidden sites that get noise this step: all of them, or one in turn ("cycle"),
        which removes the other layers' noise from each estimate's variance."""
        n = len(self.model.hidden_shapes())
        if self.cfg.perturb == "cycle":
            site = self._cycle % n
            self._cycle += 1
            return [site]
        return list(range(n))


@register
class NodePerturbation(NodeNoise, LearnedFeedback):
    name = "np"
    title = "NP: node perturbation (learned B)"
    options = {**REGRESSION_OPTIONS, **NOISE_OPTIONS, "control_variate": CONTROL_VARIATE}
    summary = "node perturbation learns B (the paper): B δ regressed on (L̃ − L) ξ / σ²"

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self._cycle = 0                     # perturb="cycle": the next site to perturb
        self.cv_weight = ControlVariateWeight(self.device, self.members)

    def state_dict(self):
        return {**super().state_dict(), "cycle": self._cycle, "cv_weight": self.cv_weight.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._cycle = int(state.get("cycle", 0))
        self.cv_weight.load_state_dict(state.get("cv_weight", {}))

    def compute_gradients(self, x, y, objective, live=None):
        result = self.forward_backward(x, y, objective, taps=self.taps())   # clean pass: W, δ, L
        result.estimates = self.estimate(x, y, objective, result.loss, result.masks,
                                         result.first_hidden, self.predictions(result),
                                         sigma=(live or self.live).sigma)
        return result

    def predictions(self, result):
        """ĝᵢ = the error B sends to each hidden site, the control variate; None when off, and
        under ridge, whose full-step solve would amplify a wrong early ĝ N-fold each step."""
        if self.cfg.control_variate and self.cfg.feedback_mode == "sgd":
            return self.error_signals(result)
        return None

    def learn_feedback(self, x, y, objective, result, live=None):
        self.regression.update(self.regression_inputs(result), result.estimates, (live or self.live).feedback_lr,
                               result.site_errors, self.step_gain(result.estimates))

    def step_gain(self, estimates) -> float:
        """The SGD step relative to a noise-free target's: K / (K + N).

        λ̂ᵢ = (ξ·g) ξᵢ / σ² has E‖λ̂ᵢ − gᵢ‖² = nᵢ‖g‖² + ‖gᵢ‖², about N times the signal ‖gᵢ‖²
        when the N perturbed units share the gradient evenly (K draws divide it by K). An LMS
        step's excess error grows with that noise, so NP takes its steps N/K times smaller than
        the SG oracle's: then one feedback_lr serves both, and networks of any size."""
        sizes = self.model.sizes[1:-1]                      # units at each hidden site
        perturbed = sum(n for n, lam in zip(sizes, estimates) if lam is not None)
        k = self.cfg.noise_draws
        return k / (k + perturbed)


class ControlVariateWeight:
    """The weight c ∈ [0, 1] of the control variate ξ·ĝ that minimises the estimate's variance:
    the regression coefficient of the loss change on the predicted change, c* = E[ΔL p]/E[p²],
    from exponentially weighted sums over earlier batches (so c does not depend on this
    batch's ξ and λ̂ stays unbiased). While B's errors are junk, c ≈ 0 and the estimate is the
    paper's; as B learns, c → 1. A full weight on a wrong early ĝ would instead multiply the
    estimate's noise with B's error, which made deep narrow nets diverge."""

    DECAY = 0.99                 # about the last 100 batches

    def __init__(self, device, members: int = 1):
        # (Σ ΔL p, Σ p²) per member in float64: one update per step (sums over 10⁵⁺ steps)
        self.members = members
        self.sums = torch.zeros(2, members, dtype=torch.float64, device=device)
        self.cross, self.power = self.sums[0], self.sums[1]         # views of it, (P,) each

    def value(self) -> torch.Tensor:
        """Each member's c, (P,)."""
        return (self.cross / self.power.clamp_min(1e-300)).clamp(0.0, 1.0).float()

    def observe(self, change: torch.Tensor, predicted: torch.Tensor) -> None:
        predicted = predicted.double()
        if self.members == 1:
            both = torch.stack((change.double(), predicted))
            self.sums[:, 0].addmv_(both, predicted, beta=self.DECAY)   # decay, then add (ΔL·p, p·p)
            return
        p = split(predicted, self.members)
        both = torch.stack((split(change.double(), self.members) * p, p * p))   # (2, P, rows)
        self.sums.mul_(self.DECAY).add_(both.sum(2))

    def state_dict(self) -> dict:
        return {"cross": self.cross.clone().cpu(), "power": self.power.clone().cpu()}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.cross.copy_(state["cross"])
            self.power.copy_(state["power"])


def _repeat(t: torch.Tensor, k: int, members: int = 1) -> torch.Tensor:
    """k copies of each member's batch, stacked along the batch dimension within its block."""
    if k == 1:
        return t
    if members == 1:
        return t.repeat(k, *[1] * (t.dim() - 1))
    return split(t, members).repeat(1, k, *[1] * (t.dim() - 1)).view(-1, *t.shape[1:])


@register
class NodePerturbationDirect(NodePerturbation):
    """The paper's CIFAR form: feedback from the output error e straight to every hidden site
    (DFA-shaped Bᵢ), learned by node perturbation: Bᵢ ← Bᵢ − β (Bᵢ e − λ̂ᵢ) eᵀ (the paper's plain
    step; by default the lab's normalised step and control variate, as for np). Locality: as
    np's, and the output error e must reach every hidden layer, as in DFA."""

    name = "np-dfa"
    title = "NP-DFA: node perturbation (learned direct B)"
    summary = "node perturbation learns direct feedback Bᵢ from the output error (the paper's CIFAR form)"
    feedback_kind = "direct"
