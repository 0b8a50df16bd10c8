"""Pure node perturbation: each hidden layer's forward weights are trained by node perturbation's
estimate of its own error, with no feedback weights at all. The baseline that answers "why learn
B at all?": an unbiased estimate whose noise grows with the number of perturbed units.

What is whose:
- the literature's: node perturbation as a rule for the forward weights, ΔWᵢ ∝ −(L̃ − L) ξᵢ hᵢ₋₁ᵀ/σ²,
  and its slowdown against gradient descent, which grows with the number of perturbed units
  (Werfel, Xie & Seung 2005, in linear networks); the estimate itself is the paper's,
  λ̂ᵢ = (L̃ − L) ξᵢ/σ² of one noise draw with every hidden layer perturbed at once, the clean
  loss of the same sample as the baseline (np.py's NodeNoise, shared with np);
- the lab's: the rule in this form, in any network here (conv nets too), its output layer trained
  by its exact gradient as in every rule here, and the estimator's options `noise_draws` (K draws
  averaged), `antithetic` and `perturb="cycle"`, as for np. No control variate: it needs B.

Locality: each hidden unit needs its own noise ξᵢ, its input hᵢ₋₁ and one scalar broadcast to
the whole network, the loss change L̃ − L; no error travels down any synapse, so there is no weight
transport and no feedback pathway to learn. The output layer needs the output error, as in every
rule. K draws replay each sample K times; "cycle" needs every layer to know whose turn it is.

Each step: a clean pass gives L and the output layer's exact gradient; each hidden output enters
the layer above it detached, so no layer's error reaches the one below it. The noisy pass gives
λ̂ᵢ, sent into hidden site i as its error: δᵢ = f′(aᵢ) ⊙ λ̂ᵢ, ∂L/∂Wᵢ = δᵢ hᵢ₋₁ᵀ (batch mean). The
error the rule sends to site i is λ̂ᵢ itself, so its signal angle to backprop's is the estimate's:
for one draw at a layer of N units perturbed alone, cos ≈ √(2/(πN)) (≈ 83° for N = 50); the other
layers' noise, when they are perturbed too, widens it (≈ 88° for the 50 units of 64-50-20-10), and
K draws divide the variance only by K. A site left unperturbed this step (cycle) gets no gradient.
"""

import torch

from engine.rules.base import LearningRule, StepResult, register
from engine.rules.np import NOISE_OPTIONS, NodeNoise


class SiteTaps:
    """Each hidden site enters the layer above it detached (no error goes down through any
    weights); the sites are kept, to receive their estimates as errors in the backward."""

    def __init__(self):
        self.sites: list[torch.Tensor] = []
        self.sent: list[torch.Tensor] | None = None

    def hidden(self, i, h):
        self.sites.append(h)
        return h.detach()

    def output(self, a):
        return a


@register
class PureNodePerturbation(NodeNoise, LearningRule):
    name = "pnp"
    title = "Pure NP: forward weights trained by the noisy estimate itself (no B)"
    summary = "pure node perturbation: each hidden layer's W follows its own estimate (L̃ − L) ξ / σ², no B"
    options = NOISE_OPTIONS
    # No feedback: the metrics compare the error it sends (λ̂) with the true ∂L/∂hᵢ, as for direct
    # rules, and the heatmaps show Wᵀ beside "B: none".
    feedback_kind = "none"

    def feedback_matrices(self):
        return []

    def state_dict(self):
        return {**super().state_dict(), "cycle": self._cycle}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._cycle = int(state.get("cycle", 0))

    def compute_gradients(self, x, y, objective, live=None):
        model, batch = self.model, x.shape[0] // self.members
        masks = model.sample_masks(x.shape[0], self.generator, x.device)
        taps = SiteTaps()
        trace = model(x, masks=masks, taps=taps)                  # clean pass
        loss = objective.per_sample(trace.out, y)
        first_hidden = trace.hidden[0].detach()
        estimates = self.estimate(x, y, objective, loss.detach(), masks, first_hidden,
                                  sigma=(live or self.live).sigma)
        # Each site's error of the batch-mean loss: λ̂ᵢ / batch (0 where unperturbed this step).
        sent = [torch.zeros_like(h) if lam is None else lam.view_as(h) / batch
                for h, lam in zip(taps.sites, estimates)]
        weights = [layer.weight for layer in model.layers]
        biases = [layer.bias for layer in model.layers]
        mean_loss = loss.sum() / batch
        n = len(weights)
        grads = torch.autograd.grad([mean_loss, *taps.sites], weights + biases + trace.pre,
                                    grad_outputs=[torch.ones_like(mean_loss), *sent])
        for p, g in zip(weights + biases, grads[:2 * n]):
            p.grad = g
        return StepResult(loss=loss.detach(), out=trace.out.detach(), weight_grads=[w.grad for w in weights],
                          mean_deltas=list(grads[2 * n:]), mean_site_errors=sent, masks=masks,
                          input_shapes=[t.shape for t in trace.inputs], first_hidden=first_hidden,
                          estimates=estimates, pre=[a.detach() for a in trace.pre], members=self.members)
