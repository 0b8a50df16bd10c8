"""Weight mirrors (engine/rules/wm.py): the conv form of the mirror step against its formula, and
B turning into Wᵀ, scale included, on a short digits run where FA's B stays at 90°."""

import pytest
import torch
import torch.nn.functional as F

from engine.config import RunConfig
from engine.layers import FeedbackConv2d, FeedbackLinear
from engine.networks import Block, FeedbackNet
from engine.rules import RULES
from engine.trainer import Trainer


def test_the_conv_mirror_step_is_the_noise_response_correlation_per_tap():
    torch.manual_seed(0)
    model = FeedbackNet([Block(FeedbackConv2d(2, 3, 3, padding=1), "tanh"),
                         Block(FeedbackConv2d(3, 4, 3, padding=1), "tanh"),
                         Block(FeedbackLinear(4 * 5 * 5, 6), flatten_input=True)], (2, 5, 5))
    eta, lam, n = 0.2, 2.0, 3
    cfg = RunConfig(rule="wm", model="conv-small", options={"mirror_lr": eta, "mirror_decay": lam})
    rule = RULES["wm"](model, cfg, torch.Generator().manual_seed(1))
    kernel = rule.feedback_matrices()[0].clone()
    state = rule.generator.get_state()
    rule.mirror([torch.Size((n, 2 * 25)), torch.Size((n, 3, 5, 5)), torch.Size((n, 100))][1:])
    rule.generator.set_state(state)
    xi = torch.randn(n, 3, 5, 5, generator=rule.generator.generators[0])
    conv = model.layers[1]
    response = F.conv2d(xi, conv.weight, None, padding=1)                        # W ξ, no bias
    patches = F.unfold(xi, 3, padding=1)                                         # n, 3·9, 25 positions
    corr = torch.einsum("nol,nfl->of", response.flatten(2), patches).view(4, 3, 3, 3)
    # per tap, the positions where it meets the input, not the padding: 5·5 at the centre, 4·4 at a corner
    taps = F.unfold(torch.ones(1, 1, 5, 5), 3, padding=1).sum(2).view(3, 3)
    assert taps[1, 1] == 25 and taps[0, 0] == 16
    torch.testing.assert_close(rule.feedback_matrices()[0], kernel + eta * (corr / taps / n - lam * kernel))


def _alignment(trainer) -> list[tuple[float, float, float]]:
    """Per layer above the first: ∠(B, Wᵀ) in degrees, ‖Wᵀ − cB‖/‖W‖ at the best scale c, and
    ‖Wᵀ − B‖/‖W‖ (scale included)."""
    out = []
    for b, layer in zip(trainer.rule.feedback_matrices(), trainer.model.layers[1:]):
        w, b = layer.backprop_feedback().detach().double(), b.detach().double()
        cos = (w * b).sum() / (w.norm() * b.norm())
        c = (w * b).sum() / (b * b).sum()
        out.append((torch.rad2deg(torch.arccos(cos)).item(), ((w - c * b).norm() / w.norm()).item(),
                    ((w - b).norm() / w.norm()).item()))
    return out


def _trained(rule: str, steps: int = 300):
    trainer = Trainer(RunConfig(rule=rule, dataset="digits", width=[50, 20], steps=steps,
                                metric_interval=steps, eval_interval=steps, device="cpu"))
    start = _alignment(trainer)
    for _ in range(steps):
        trainer.step()
    return start, _alignment(trainer), trainer.summary()


def test_mirrored_feedback_turns_into_W_transposed_on_a_short_digits_run():
    start, end, summary = _trained("wm")
    _, fa_end, _ = _trained("fa")
    for (a0, best0, rel0), (a1, best1, rel1), (fa_angle, _, _) in zip(start, end, fa_end):
        assert a0 > 80 and best0 > 0.95 and rel0 > 1.3          # a random B: orthogonal to Wᵀ
        # measured 9.9° / 6.5°, 0.17 / 0.11 at the best scale, 0.19 / 0.13 as it is
        assert a1 < 20 and best1 < 0.35 and rel1 < 0.4, end
        assert fa_angle > 70, fa_end                            # FA's B does not move: ≈ 90°
    assert summary["test_accuracy"] > 0.3                       # and the network learns through it


@pytest.mark.parametrize("variant", ["frsf", "brsf", "usf"])
def test_every_sign_symmetry_variant_keeps_W_s_signs_and_trains(variant):
    trainer = Trainer(RunConfig(rule="ss", dataset="digits", steps=200, metric_interval=200,
                                eval_interval=200, device="cpu", options={"ss_variant": variant}))
    for _ in range(200):
        trainer.step()
    for b, layer in zip(trainer.rule.feedback_matrices(), trainer.model.layers[1:]):
        # B took W's signs before the last step; that step flipped only the few weights near 0
        agree = (torch.sign(b) == torch.sign(layer.weight.T.detach())).double().mean()
        assert agree > 0.97, agree
    assert trainer.summary()["test_accuracy"] > 0.3
