"""Feedback alignment (Lillicrap et al. 2016): a fixed random B in place of Wᵀ."""

from engine.rules.base import LearningRule, register, uniform_like_init


def random_feedback(model, generator, device):
    """One random matrix per layer above the first, shaped like Wᵀ, at W's init scale."""
    return [uniform_like_init(layer.in_features, (layer.in_features, layer.out_features), generator, device)
            for layer in model.layers[1:]]


@register
class FeedbackAlignment(LearningRule):
    name = "fa"
    summary = "feedback alignment: fixed random B at W's init scale"

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = random_feedback(model, generator, self.device)
        self.attach_feedback(self.feedback)

    def feedback_matrices(self):
        return self.feedback
