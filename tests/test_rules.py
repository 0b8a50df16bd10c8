"""Each learning rule's backward pass against its hand-derived formula.

Notation as in engine/layers.py: a batch of row vectors, W of shape out × in, B of the shape
of Wᵀ (in × out). So backprop sends g W to a layer's input, and a feedback rule sends g Bᵀ.
"""

import copy

import pytest
import torch

from engine.layers import FeedbackLinear
from engine.reference import backprop_reference
from engine.rules import RULES

from conftest import dsig, manual_forward, setup

pytestmark = pytest.mark.usefixtures("float64")


def test_feedback_linear_input_gradient_is_g_times_B_transposed():
    layer = FeedbackLinear(5, 3)
    layer.feedback = torch.randn(5, 3)                   # shape of Wᵀ
    x = torch.randn(4, 5, requires_grad=True)
    g = torch.randn(4, 3)
    layer(x).backward(g)
    torch.testing.assert_close(x.grad, g @ layer.feedback.T)
    torch.testing.assert_close(layer.weight.grad, g.T @ x.detach())   # weights: exact gradient
    torch.testing.assert_close(layer.bias.grad, g.sum(0))
    assert not torch.allclose(x.grad, g @ layer.weight)                # and not backprop's



@pytest.mark.parametrize("feedback", [False, True])
def test_population_linear_layer_gradients_are_each_members_own(feedback):
    """A layer of 3 members stacked (W: (P·out, in), B: (P·in, out)): member k's rows go
    through its own W_k, and its gradients are g_kᵀ x_k, Σ g_k, and g_k B_kᵀ (g_k W_k without B)."""
    p, rows = 3, 4
    layer = FeedbackLinear(5, 2, members=p)
    if feedback:
        layer.feedback = torch.randn(p * 5, 2)
    x = torch.randn(p * rows, 5, requires_grad=True)
    g = torch.randn(p * rows, 2)
    out = layer(x)
    out.backward(g)
    for k in range(p):
        r, w = slice(k * rows, (k + 1) * rows), layer.weight[2 * k:2 * k + 2]
        torch.testing.assert_close(out[r], x[r] @ w.T + layer.bias[2 * k:2 * k + 2])
        torch.testing.assert_close(layer.weight.grad[2 * k:2 * k + 2], g[r].T @ x[r].detach())
        torch.testing.assert_close(layer.bias.grad[2 * k:2 * k + 2], g[r].sum(0))
        via = layer.feedback[5 * k:5 * k + 5].T if feedback else w
        torch.testing.assert_close(x.grad[r], g[r] @ via)

def test_bp_matches_plain_autograd_on_nn_sequential():
    model, rule, cfg, x, y, obj = setup("bp")
    seq = torch.nn.Sequential(*[m for layer in model.layers for m in (layer, torch.nn.Sigmoid())][:-1])
    res = rule.compute_gradients(x, y, obj)
    out = seq(x)
    loss = obj.per_sample(out, y).mean()
    grads = torch.autograd.grad(loss, [layer.weight for layer in model.layers])
    for mine, ref in zip(res.weight_grads, grads):
        torch.testing.assert_close(mine, ref)


def test_fa_hidden_errors_follow_the_hand_derived_recursion():
    model, rule, cfg, x, y, obj = setup("fa")
    res = rule.compute_gradients(x, y, obj)
    hs, as_ = manual_forward(model, x)
    e = hs[-1] - obj.targets(y)                              # δ_N for ½‖ŷ − y‖²
    B2, B3 = rule.feedback_matrices()
    d2 = dsig(as_[1]) * (e @ B3.T)
    d1 = dsig(as_[0]) * (d2 @ B2.T)
    n = x.shape[0]
    for got, delta, h in zip(res.weight_grads, (d1, d2, e), hs[:-1]):
        torch.testing.assert_close(got, delta.T @ h / n)
    for got, delta in zip(res.deltas, (d1, d2, e)):
        torch.testing.assert_close(got, delta)


def test_fa_with_B_equal_to_W_transposed_is_backprop():
    model, rule, cfg, x, y, obj = setup("fa", activation="tanh")
    for b, layer in zip(rule.feedback_matrices(), model.layers[1:]):
        b.copy_(layer.weight.T)
    res = rule.compute_gradients(x, y, obj)
    ref = backprop_reference(model, x, y, obj)
    for mine, true in zip(res.weight_grads, ref.weight_grads):
        torch.testing.assert_close(mine, true)


def test_fa_feedback_is_fixed_and_at_init_scale():
    model, rule, cfg, x, y, obj = setup("fa", widths=(200, 100))
    before = [b.clone() for b in rule.feedback_matrices()]
    rule.train_step(x, y, obj)
    for b, old, layer in zip(rule.feedback_matrices(), before, model.layers[1:]):
        assert torch.equal(b, old)
        # U(−1/√fan_in, 1/√fan_in), as nn.Linear's default weight init
        assert b.abs().max() <= layer.in_features ** -0.5
        assert b.std() == pytest.approx(layer.weight.std().item(), rel=0.1)


def test_dfa_sends_the_output_error_to_every_hidden_layer():
    model, rule, cfg, x, y, obj = setup("dfa", widths=(7, 5, 3))
    res = rule.compute_gradients(x, y, obj)
    hs, as_ = manual_forward(model, x)
    e = hs[-1] - obj.targets(y)
    deltas = [dsig(a) * (e @ b.T) for a, b in zip(as_[:-1], rule.feedback_matrices())] + [e]
    for got, want in zip(res.deltas, deltas):
        torch.testing.assert_close(got, want)
    for got, delta, h in zip(res.weight_grads, deltas, hs[:-1]):
        torch.testing.assert_close(got, delta.T @ h / x.shape[0])
    signals = rule.error_signals(res)
    for s, b in zip(signals, rule.feedback_matrices()):
        torch.testing.assert_close(s, e @ b.T)


def test_kp_feedback_receives_W_update_and_decays_to_W_transposed():
    cfg_kw = dict(optimizer="sgd", momentum=0.0, lr=0.05, weight_decay=0.1)
    model, rule, cfg, x, y, obj = setup("kp", **cfg_kw)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    w_old = [layer.weight.detach().clone() for layer in model.layers[1:]]
    b_old = [b.clone() for b in rule.feedback_matrices()]
    res = rule.compute_gradients(x, y, obj)
    raw = [g.clone() for g in res.weight_grads]        # includes KP's decay term λW
    rule.before_optimizer_step()
    opt.step()
    rule.after_optimizer_step()
    lam, eta = cfg.weight_decay, cfg.lr
    for i, (b, layer) in enumerate(zip(rule.feedback_matrices(), model.layers[1:])):
        grad_without_decay = raw[i + 1] - lam * w_old[i]
        # ΔB = −η(∇Wᵀ + λB): B gets W's gradient step (transposed) and its own decay
        torch.testing.assert_close(b, b_old[i] - eta * (grad_without_decay.T + lam * b_old[i]))
        # ΔW = −η(∇W + λW)
        torch.testing.assert_close(layer.weight.detach(), w_old[i] - eta * (grad_without_decay + lam * w_old[i]))
        # hence B − Wᵀ shrinks by exactly (1 − ηλ)
        torch.testing.assert_close(b - layer.weight.T, (1 - eta * lam) * (b_old[i] - w_old[i].T))


def test_kp_gap_shrinks_geometrically_under_adam_too():
    model, rule, cfg, x, y, obj = setup("kp", optimizer="adam", lr=0.01, weight_decay=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gap0 = [b - layer.weight.T for b, layer in zip(rule.feedback_matrices(), model.layers[1:])]
    for _ in range(3):
        rule.train_step(x, y, obj)
        rule.before_optimizer_step()
        opt.step()
        rule.after_optimizer_step()
    factor = (1 - cfg.lr * cfg.weight_decay) ** 3
    for g0, b, layer in zip(gap0, rule.feedback_matrices(), model.layers[1:]):
        torch.testing.assert_close(b - layer.weight.T, factor * g0.detach())


def test_sign_symmetry_feedback_has_the_sign_of_W_transposed():
    model, rule, cfg, x, y, obj = setup("ss")
    rule.compute_gradients(x, y, obj)
    for b, magnitude, layer in zip(rule.feedback_matrices(), rule.magnitude, model.layers[1:]):
        assert torch.equal(torch.sign(b), torch.sign(layer.weight.T))
        torch.testing.assert_close(b.abs(), magnitude)


def test_sign_symmetry_usf_is_the_sign_of_W_transposed_at_the_init_scale():
    model, rule, cfg, x, y, obj = setup("ss", options={"ss_variant": "usf"})
    rule.compute_gradients(x, y, obj)
    for b, layer in zip(rule.feedback_matrices(), model.layers[1:]):
        # B = s · sign(Wᵀ), s the RMS of U(±1/√fan_in): 1/√(3 fan_in)
        torch.testing.assert_close(b, (3 * layer.in_features) ** -0.5 * torch.sign(layer.weight.T))


def test_sign_symmetry_brsf_draws_its_magnitudes_afresh_for_every_batch():
    from engine.rules.fa import random_feedback

    model, rule, cfg, x, y, obj = setup("ss", options={"ss_variant": "brsf"})
    for _ in range(2):
        before = [b.abs().clone() for b in rule.feedback_matrices()]
        state = rule.generator.get_state()
        rule.compute_gradients(x, y, obj)
        rule.generator.set_state(state)
        drawn = random_feedback(model, rule.generator, "cpu")       # this batch's R, again
        for b, old, r, layer in zip(rule.feedback_matrices(), before, drawn, model.layers[1:]):
            torch.testing.assert_close(b, r.abs() * torch.sign(layer.weight.T))       # |R_t| ⊙ sign(Wᵀ)
            assert not torch.allclose(b.abs(), old)


def test_weight_mirror_step_is_the_decayed_correlation_of_noise_and_response():
    eta, lam = 0.3, 0.5
    model, rule, cfg, x, y, obj = setup("wm", options={"mirror_lr": eta, "mirror_decay": lam})
    res = rule.compute_gradients(x, y, obj)
    b2, b3 = rule.feedback_matrices()
    torch.testing.assert_close(rule.error_signals(res)[1], res.deltas[2] @ b3.T)   # errors go through B
    before = [b.clone() for b in (b2, b3)]
    state = rule.generator.get_state()
    rule.learn_feedback(x, y, obj, res)
    rule.generator.set_state(state)
    n = x.shape[0]
    for b, old, layer in zip(rule.feedback_matrices(), before, model.layers[1:]):
        xi = torch.randn(n, layer.in_features, generator=rule.generator.generators[0])   # the same noise
        response = xi @ layer.weight.T                                                   # W ξ, no bias
        # B ← B + η (ξᵀ y / n − λ B)
        torch.testing.assert_close(b, old + eta * (xi.T @ response / n - lam * old))


@pytest.mark.parametrize("antithetic", [False, True])
def test_np_estimate_averaged_over_draws_approaches_true_gradient(antithetic):
    model, rule, cfg, x, y, obj = setup("np", sigma=1e-3, antithetic=antithetic)
    clean = obj.per_sample(model(x, use_feedback=False).out, y)
    true = backprop_reference(model, x, y, obj).dh
    total = [torch.zeros_like(t) for t in true]
    angles = {}
    for draw in range(1, 4001):
        for acc, lam in zip(total, rule.estimate(x, y, obj, clean)):
            acc += lam
        if draw in (10, 100, 4000):
            flat_est = torch.cat([t.flatten() for t in total])
            flat_true = torch.cat([t.flatten() for t in true])
            cos = flat_est @ flat_true / (flat_est.norm() * flat_true.norm())
            angles[draw] = torch.rad2deg(torch.arccos(cos)).item()
    assert angles[10] > angles[100] > angles[4000]
    assert angles[4000] < 6.0, angles       # measured 2.6° (plain and antithetic alike)


def test_np_estimate_is_the_loss_change_times_noise_over_sigma_squared():
    model, rule, cfg, x, y, obj = setup("np", sigma=0.05)
    clean = obj.per_sample(model(x, use_feedback=False).out, y)
    state = rule.generator.get_state()
    lam = rule.estimate(x, y, obj, clean)
    rule.generator.set_state(state)
    noise = rule.sample_noise(x, rule.live.sigma)                    # the same draw again
    noisy = obj.per_sample(model(x, noise=noise, use_feedback=False).out, y)
    for got, xi in zip(lam, noise):
        torch.testing.assert_close(got, (noisy - clean)[:, None] * xi / cfg.sigma ** 2)


@pytest.mark.parametrize("normalize", [True, False])
def test_np_sgd_feedback_step_is_the_regression_gradient(normalize):
    model, rule, cfg, x, y, obj = setup("np", sigma=0.05, feedback_lr=0.3, feedback_mode="sgd",
                                        feedback_normalize=normalize)
    res = rule.compute_gradients(x, y, obj)
    before = [b.clone() for b in rule.feedback_matrices()]
    rule.learn_feedback(x, y, obj, res)
    n = x.shape[0]
    gain = 1 / (1 + 7 + 5)           # K / (K + N): NP's estimate is ~N times noisier than its signal
    for b, old, d, lam in zip(rule.feedback_matrices(), before, res.deltas[1:], res.estimates):
        grad = (d @ old.T - lam).T @ d
        # normalised: B ← B − η_B g Σ_t (B δ_t − λ̂_t) δ_tᵀ / Σ_t ‖δ_t‖²
        # plain (the reference code's): B ← B − η_B · mean_t (B δ_t − λ̂_t) δ_tᵀ
        if normalize:
            torch.testing.assert_close(b, old - cfg.feedback_lr * gain * grad / d.pow(2).sum())
        else:
            torch.testing.assert_close(b, old - cfg.feedback_lr * grad / n)


def test_np_ridge_feedback_is_the_exact_ridge_solution():
    model, rule, cfg, x, y, obj = setup("np", sigma=0.05, feedback_mode="ridge", ridge_gamma=0.1)
    deltas, lams = [[], []], [[], []]
    for _ in range(3):
        res = rule.compute_gradients(x, y, obj)
        rule.learn_feedback(x, y, obj, res)
        for i in range(2):
            deltas[i].append(res.deltas[i + 1])
            lams[i].append(res.estimates[i])
    for i, b in enumerate(rule.feedback_matrices()):
        d, lam = torch.cat(deltas[i]), torch.cat(lams[i])
        v = d.T @ d + cfg.ridge_gamma * torch.eye(d.shape[1])
        torch.testing.assert_close(b, lam.T @ d @ torch.linalg.inv(v))


def test_np_output_layer_uses_its_exact_gradient():
    model, rule, cfg, x, y, obj = setup("np")
    res = rule.compute_gradients(x, y, obj)
    ref = backprop_reference(model, x, y, obj)
    torch.testing.assert_close(res.weight_grads[-1], ref.weight_grads[-1])
    # ...while the hidden layers get theirs through the (random, not yet learned) B
    assert not torch.allclose(res.weight_grads[0], ref.weight_grads[0])


def test_sg_oracle_regresses_on_the_true_gradient():
    model, rule, cfg, x, y, obj = setup("sg", feedback_lr=0.3)
    res = rule.compute_gradients(x, y, obj)
    target = backprop_reference(model, x, y, obj).dh
    before = [b.clone() for b in rule.feedback_matrices()]
    rule.learn_feedback(x, y, obj, res)
    for b, old, d, t in zip(rule.feedback_matrices(), before, res.deltas[1:], target):
        # a noise-free target: the normalised step at full gain
        torch.testing.assert_close(b, old - cfg.feedback_lr * (d @ old.T - t).T @ d / d.pow(2).sum())


def test_noise_only_ablation_trains_on_the_noisy_net_but_reports_the_clean_loss():
    model, rule, cfg, x, y, obj = setup("fa", sigma=0.5, train_on_noise=True)
    clean_rule_cfg = copy.copy(cfg)
    clean_rule_cfg.train_on_noise = False
    res = rule.compute_gradients(x, y, obj)
    clean_loss = obj.per_sample(model(x, use_feedback=False).out, y)
    torch.testing.assert_close(res.loss, clean_loss)
    rule.cfg = clean_rule_cfg
    clean = rule.compute_gradients(x, y, obj)
    assert not torch.allclose(res.weight_grads[0], clean.weight_grads[0])


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_writes_finite_gradients_for_every_parameter(rule):
    model, r, cfg, x, y, obj = setup(rule, loss="ce", sigma=0.01)
    r.train_step(x, y, obj)
    for p in model.parameters():
        assert p.grad is not None and p.grad.shape == p.shape and torch.isfinite(p.grad).all()
