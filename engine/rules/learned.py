"""The shared skeleton of the rules that *learn* B by regression: node perturbation (layer-wise
and DFA-form) and the SG oracle. It owns the feedback tensors, their regression and its saved
state; a subclass says only what the target is (`learn_feedback`).

Layer-wise feedback (`feedback_kind = "layerwise"`) stands for W_{i+1}ᵀ and carries δ_{i+1}
down one layer; direct feedback (`"direct"`, DFA-shaped) sends the output error e straight to
every hidden site. Under ridge, B starts from 0, as in the paper.

What is the paper's and what the lab added is in each rule's module (np.py, sg.py) and in
regression.py: cumulative ridge and the plain SGD step are the paper's solvers, the normalised
step (the default) and ridge's forgetting and relative γ are the lab's.
"""

from engine.rules.base import LearningRule
from engine.rules.dfa import DirectMap, DirectTaps, direct_random_feedback
from engine.rules.fa import random_feedback
from engine.rules.regression import REGRESSION_OPTIONS, FeedbackRegression


class LearnedFeedback(LearningRule):
    learns_feedback = True
    options = REGRESSION_OPTIONS

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        if self.feedback_kind == "direct":
            self.feedback = direct_random_feedback(model, self.generator, self.device)
            maps = [DirectMap(self.members)] * len(self.feedback)
            self.attach_feedback(None)            # the backward taps carry e (see `taps`)
        else:
            self.feedback = random_feedback(model, self.generator, self.device)
            maps = list(model.layers[1:])
            self.attach_feedback(self.feedback)
        if cfg.feedback_mode == "ridge":
            for b in self.feedback:
                b.zero_()
        self.regression = FeedbackRegression(self.feedback, maps, cfg, self.members)

    @property
    def direct(self) -> bool:
        return self.feedback_kind == "direct"

    def taps(self):
        """The backward pass's taps: direct feedback replaces each hidden site's error."""
        return DirectTaps(self.feedback, self.members) if self.direct else None

    def regression_inputs(self, result) -> list:
        """What each B is applied to: δ_{i+1} (layer-wise) or the output error (direct)."""
        return [result.deltas[-1]] * len(self.feedback) if self.direct else result.deltas[1:]

    def feedback_matrices(self):
        return self.feedback

    def state_dict(self):
        return {**super().state_dict(), "regression": self.regression.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.regression.load_state_dict(state.get("regression", {}))
