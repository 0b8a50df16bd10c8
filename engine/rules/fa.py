"""Feedback alignment (Lillicrap et al. 2016): a fixed random B in place of Wᵀ.

The paper's baseline, and what every rule that learns B starts from. In a convolution the error
goes down through the transposed convolution with a fixed random kernel instead of the forward
one. Locality: none beyond the error arriving from the layer above; B never learns."""

from engine.rules.base import LearningRule, init_like, register


def random_feedback(model, generator, device):
    """One random tensor per layer above the first, shaped like what it stands for (Wᵀ, or the
    kernel of a convolution), at the forward weights' init scale; one per member, stacked."""
    return [init_like(model.init, layer.fan_in(), layer.feedback_shape(), generator, device)
            for layer in model.layers[1:]]


@register
class FeedbackAlignment(LearningRule):
    name = "fa"
    title = "FA: feedback alignment"
    summary = "feedback alignment: fixed random B at W's init scale"

    def __init__(self, model, cfg, generator):
        super().__init__(model, cfg, generator)
        self.feedback = random_feedback(model, self.generator, self.device)
        self.attach_feedback(self.feedback)

    def feedback_matrices(self):
        return self.feedback
