"""Backprop: the error travels down through the true Wᵀ. The reference every rule is measured against.

The paper's baseline. Locality: none to speak of; each feedback synapse *is* its forward twin
(weight transport), which is what every other rule here avoids.
"""

from engine.rules.base import LearningRule, register


@register
class Backprop(LearningRule):
    name = "bp"
    title = "BP: backprop"
    summary = "backprop: error sent down through the true Wᵀ"

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.attach_feedback(None)

    def feedback_matrices(self):
        # Views, not copies: backprop's "feedback" is Wᵀ itself (the kernel, for a conv),
        # so its angles are 0 by definition.
        return [layer.backprop_feedback() for layer in self.model.layers[1:]]

    def state_dict(self):
        return {"feedback": []}

    def load_state_dict(self, state):
        pass
