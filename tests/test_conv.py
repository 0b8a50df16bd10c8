"""Conv nets, dropout and the direct (DFA-form) rules against their hand-derived formulas."""

import pytest
import torch
import torch.nn.functional as F

from engine.config import RunConfig
from engine.networks import Block, FeedbackNet, conv_small
from engine.layers import FeedbackConv2d, FeedbackLinear
from engine.objective import Objective
from engine.reference import backprop_reference
from engine.rules import RULES


pytestmark = pytest.mark.usefixtures("float64")


def tiny_conv(dropout=0.0):
    """conv 3×3 (4 ch, pool 2) → conv 3×3 (6 ch, pool 3/2 pad 1) → FC 12 → 5 outputs, 8×8 input."""
    torch.manual_seed(0)
    blocks = [Block(FeedbackConv2d(2, 4, 3, padding=1), "tanh", pool=2),
              Block(FeedbackConv2d(4, 6, 3, padding=1), "tanh", pool=3, pool_stride=2, pool_padding=1),
              Block(FeedbackLinear(6 * 2 * 2, 12), "tanh", dropout=dropout, flatten_input=True),
              Block(FeedbackLinear(12, 5))]
    return FeedbackNet(blocks, (2, 8, 8))


def setup(rule, dropout=0.0, **kw):
    model = tiny_conv(dropout)
    cfg = RunConfig(rule=rule, activation="tanh", loss="ce", **kw)
    r = RULES[rule](model, cfg, torch.Generator().manual_seed(1))
    x = torch.rand(6, 2 * 8 * 8)
    y = torch.randint(0, 5, (6,))
    return model, r, cfg, x, y, Objective("ce", "classification", 5)


def test_conv_fa_input_gradient_is_the_transposed_convolution_with_B():
    layer = FeedbackConv2d(3, 5, 3, padding=1)
    layer.feedback = torch.randn_like(layer.weight)
    x = torch.randn(2, 3, 7, 7, requires_grad=True)
    g = torch.randn(2, 5, 7, 7)
    layer(x).backward(g)
    torch.testing.assert_close(x.grad, F.conv_transpose2d(g, layer.feedback, padding=1))
    w = layer.weight.detach().requires_grad_()
    (F.conv2d(x.detach(), w, None, padding=1) * g).sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad)          # kernel: exact gradient
    torch.testing.assert_close(layer.bias.grad, g.sum((0, 2, 3)))


def test_conv_fa_with_B_equal_to_W_is_backprop():
    model, rule, cfg, x, y, obj = setup("fa")
    for b, layer in zip(rule.feedback_matrices(), model.layers[1:]):
        b.copy_(layer.backprop_feedback())
    res = rule.compute_gradients(x, y, obj)
    for mine, true in zip(res.weight_grads, backprop_reference(model, x, y, obj).weight_grads):
        torch.testing.assert_close(mine, true)


def test_conv_fa_hidden_error_goes_through_the_random_kernel():
    model, rule, cfg, x, y, obj = setup("fa")
    res = rule.compute_gradients(x, y, obj)
    b2 = rule.feedback_matrices()[0]                      # feedback kernel of the second conv
    signal = F.conv_transpose2d(res.deltas[1], b2, padding=1)
    # the first conv's δ is f′(a₁) ⊙ (max-pool backward of the signal): redo the local ops by hand
    a1 = F.conv2d(x.view(6, 2, 8, 8), model.layers[0].weight, model.layers[0].bias, padding=1)
    a1.requires_grad_()
    pooled = F.max_pool2d(torch.tanh(a1), 2)
    (d1,) = torch.autograd.grad(pooled, a1, signal)
    torch.testing.assert_close(res.deltas[0], d1)
    torch.testing.assert_close(rule.error_signals(res)[0], signal)


def test_conv_dfa_sends_the_output_error_to_every_site():
    model, rule, cfg, x, y, obj = setup("dfa")
    res = rule.compute_gradients(x, y, obj)
    e = res.deltas[-1]
    torch.testing.assert_close(e, F.softmax(res.out, 1) - F.one_hot(y, 5))      # ∂CE/∂ŷ
    a1 = F.conv2d(x.view(6, 2, 8, 8), model.layers[0].weight, model.layers[0].bias, padding=1)
    a1.requires_grad_()
    site1 = F.max_pool2d(torch.tanh(a1), 2)
    injected = (e @ rule.feedback_matrices()[0].T).view_as(site1)
    (d1,) = torch.autograd.grad(site1, a1, injected)
    torch.testing.assert_close(res.deltas[0], d1)
    assert [b.shape for b in rule.feedback_matrices()] == [(64, 5), (24, 5), (12, 5)]


def test_np_dfa_regresses_direct_feedback_on_the_estimate():
    model, rule, cfg, x, y, obj = setup("np-dfa", sigma=0.05, feedback_lr=0.2)
    res = rule.compute_gradients(x, y, obj)
    before = [b.clone() for b in rule.feedback_matrices()]
    rule.learn_feedback(x, y, obj, res)
    e = res.deltas[-1]
    gain = 1 / (1 + 64 + 24 + 12)       # K / (K + N perturbed units)
    for b, old, lam in zip(rule.feedback_matrices(), before, res.estimates):
        # Bᵢ ← Bᵢ − β g Σ_t (Bᵢ e_t − λ̂ᵢ,t) e_tᵀ / Σ_t ‖e_t‖²   (normalised step)
        expected = old - cfg.feedback_lr * gain * (e @ old.T - lam.flatten(1)).T @ e / e.pow(2).sum()
        torch.testing.assert_close(b, expected)


def test_conv_layerwise_feedback_step_is_the_adjoint_of_the_transposed_convolution():
    model, rule, cfg, x, y, obj = setup("np", sigma=0.05, feedback_lr=0.2)
    layer = model.layers[1]
    b = rule.feedback_matrices()[0].clone().requires_grad_()
    d = torch.randn(6, 6, 4, 4)
    target = torch.randn(6, 4, 4, 4)
    loss = 0.5 * (layer.input_grad(d, b, target.shape) - target).pow(2).sum()
    (auto,) = torch.autograd.grad(loss, b)
    residual = layer.input_grad(d, b.detach(), target.shape) - target
    torch.testing.assert_close(layer.feedback_grad(residual, d), auto)


@pytest.mark.parametrize("rule", ["np", "np-dfa"])
def test_np_estimates_in_a_conv_net_approach_each_sites_own_true_gradient(rule):
    model, r, cfg, x, y, obj = setup(rule, sigma=1e-3)
    clean = obj.per_sample(model(x, use_feedback=False).out, y)
    true = backprop_reference(model, x, y, obj).dh
    total = [torch.zeros_like(t) for t in true]
    angles = {}
    for draw in range(1, 3001):
        for acc, lam in zip(total, r.estimate(x, y, obj, clean)):
            acc += lam.reshape(acc.shape)
        if draw in (300, 3000):
            angles[draw] = [torch.rad2deg(torch.arccos(
                (est.flatten() @ t.flatten()) / (est.norm() * t.norm()))).item()
                for est, t in zip(total, true)]
    # The error falls like 1/√draws at every site; a site paired with another site's noise
    # would stay near 90°. Measured: 63°, 31°, 13° after 300 draws; 33°, 11°, 5° after 3000.
    for few, many in zip(angles[300], angles[3000]):
        assert many < 0.7 * few and many < 40.0, angles


def test_clean_and_noisy_passes_share_one_dropout_mask():
    model, rule, cfg, x, y, obj = setup("np", dropout=0.5, sigma=1e-7)
    res = rule.compute_gradients(x, y, obj)
    assert res.masks is not None and res.masks[2] is not None
    # with vanishing noise the loss change vanishes too: no dropout noise leaks into L̃ − L
    lam = rule.estimate(x, y, obj, res.loss, res.masks)
    noisy = obj.per_sample(model(x, noise=[torch.zeros(6, *s) for s in model.hidden_shapes()],
                                 masks=res.masks, use_feedback=False).out, y)
    torch.testing.assert_close(noisy, res.loss)
    other = model.sample_masks(6, torch.Generator().manual_seed(99), "cpu")
    assert not torch.equal(other[2], res.masks[2])
    assert all(torch.isfinite(t).all() for t in lam)
    # and the reference gradient sees the same network the rule trained
    ref = backprop_reference(model, x, y, obj, res.masks)
    torch.testing.assert_close(res.weight_grads[-1], ref.weight_grads[-1])


def test_bp_on_conv_has_zero_angles_and_conv_metrics_are_defined():
    from engine.metrics import layer_metrics
    for rule, zero in (("bp", True), ("fa", False)):
        model, r, cfg, x, y, obj = setup(rule)
        res = r.compute_gradients(x, y, obj)
        m = layer_metrics(model, r, res, x, y, obj)
        assert m["weight_angle_deg"].shape == (3,)
        assert torch.isfinite(m["signal_angle_deg"]).all()
        assert (m["signal_angle_deg"].abs().max() < 1e-3) == zero


def test_conv_small_shapes_for_fashion_mnist():
    net = conv_small((1, 28, 28), 10, "tanh")
    assert net.hidden_shapes() == [(16, 14, 14), (32, 7, 7), (128,)]
    assert net(torch.rand(3, 784)).out.shape == (3, 10)
