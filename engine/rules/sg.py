"""SG oracle: the same regression of B as node perturbation, but on the *true* ∂L/∂hᵢ.

The paper's (its autoencoder's "synthetic gradient" row); the solvers are NP's (regression.py),
so the lab's normalised SGD step is the default here too. Not local: its target is backprop's
own error, so it is a ceiling for learned feedback, not a candidate for the brain.

The ceiling of the method: what learned feedback reaches when its target is noise-free.
("Synthetic gradient" in the paper's sense; the target is backprop's error at each hidden site,
replayed from the training pass's own activations: see engine/reference.py.)
"""

from engine.reference import backprop_site_errors
from engine.rules.base import INDEPENDENT_NOISE, TRAIN_ON_NOISE, register
from engine.rules.learned import LearnedFeedback
from engine.rules.regression import REGRESSION_OPTIONS


@register
class SyntheticGradientOracle(LearnedFeedback):
    name = "sg"
    title = "SG: oracle-trained B"
    options = {**REGRESSION_OPTIONS, "train_on_noise": TRAIN_ON_NOISE, "independent_noise": INDEPENDENT_NOISE}
    summary = "oracle: B regressed on the true ∂L/∂h (the ceiling of learned feedback)"

    def learn_feedback(self, x, y, objective, result, live=None):
        target = backprop_site_errors(self.model, x, y, objective, result)
        self.regression.update(self.regression_inputs(result), target, (live or self.live).feedback_lr,
                               result.site_errors)
