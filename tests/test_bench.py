"""The bench's floor rows are cost models, but they must compute what they claim: each is
checked here against its formula on one step, with per-sample quantities formed independently."""

import json

import pytest
import torch

from engine.bench import rules as bench
from engine.config import RunConfig

NET = {"name": "small", "model": "mlp", "widths": [8, 6], "batch": 16}


def _setup(floor_cls):
    data = bench.random_dataset(torch.device("cpu"))
    floor = floor_cls(NET, NET["batch"], data, RunConfig(lr=0.05, sigma=0.01), torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    for b in floor.feedback:                      # B ≠ 0, so that e Bᵀ is not trivially zero
        b.copy_(torch.randn(b.shape, generator=g))
    x, y = data.x_train[floor.order[:NET["batch"]]], data.y_train[floor.order[:NET["batch"]]]
    weights = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in floor.linears]
    return floor, x, torch.nn.functional.one_hot(y, bench.N_OUT).float(), weights, \
        [b.clone() for b in floor.feedback]


def _noise(widths, sigma):
    g = torch.Generator().manual_seed(0)          # the floors' own seed, the same draw order
    return [torch.empty(NET["batch"], w).normal_(0.0, sigma, generator=g) for w in widths]


def _loss(weights, x, t, noise=None):
    """Per-sample ½‖ŷ − t‖², the hidden outputs and the pre-activations."""
    h, hidden, pre = x, [], []
    for i, (w, c) in enumerate(weights):
        a = h @ w.T + c
        pre.append(a)
        if i == len(weights) - 1:
            break
        h = torch.sigmoid(a)
        hidden.append(h)
        if noise is not None:
            h = h + noise[i]
    return 0.5 * ((a - t) ** 2).sum(1), hidden, pre


def test_np_floor_learns_b_by_the_regression_on_lambda_hat():
    floor, x, t, weights, b0 = _setup(bench.NodePerturbationFloor)
    floor.step()
    w = [(a.requires_grad_(), c.requires_grad_()) for a, c in weights]
    losses, hidden, pre = _loss(w, x, t)
    # per-sample errors: each sample's loss depends on its own row only
    grads = torch.autograd.grad(losses.sum(), hidden + pre[1:])
    g_hat, deltas = grads[:2], grads[2:]
    noise = _noise(NET["widths"], floor.sigma)
    with torch.no_grad():
        change = _loss(weights, x, t, noise)[0] - losses
        for b, before, gh, xi, d in zip(floor.feedback, b0, g_hat, noise, deltas):
            lam = change[:, None] * xi / floor.sigma ** 2
            want = before - floor.FEEDBACK_LR * (gh - lam).T @ d / x.shape[0]
            torch.testing.assert_close(b, want, rtol=1e-4, atol=1e-6)


def test_np_dfa_floor_trains_w_by_direct_feedback_and_learns_b():
    floor, x, t, weights, b0 = _setup(bench.DirectNodePerturbationFloor)
    floor.step()
    losses, hidden, pre = _loss(weights, x, t)
    e = pre[-1] - t                                   # per-sample ∂L/∂ŷ
    noise = _noise(NET["widths"], floor.sigma)
    change = _loss(weights, x, t, noise)[0] - losses
    inputs = [x] + hidden
    for i, (b, before, xi) in enumerate(zip(floor.feedback, b0, noise)):
        g_hat = e @ before.T                          # the error B sends to site i
        lam = change[:, None] * xi / floor.sigma ** 2
        want = before - floor.FEEDBACK_LR * (g_hat - lam).T @ e / x.shape[0]
        torch.testing.assert_close(b, want, rtol=1e-4, atol=1e-6)
        # W_i's first SGD step (momentum buffer = gradient): the mean of (e Bᵢᵀ ⊙ σ') xᵀ
        delta = g_hat * hidden[i] * (1 - hidden[i])
        grad = delta.T @ inputs[i] / x.shape[0]
        torch.testing.assert_close(floor.linears[i].weight.detach(), weights[i][0] - 0.05 * grad,
                                   rtol=1e-4, atol=1e-6)


def test_the_population_bench_reports_model_steps_and_the_ratio_to_one_member(capsys):
    """`creditlab bench --population 1,3 --rules fa --quick`: every network, each size, the rate
    P / (seconds per step) and its ratio to P = 1 of the same rule, in one report."""
    from engine.cli.main import main

    assert main(["bench", "--population", "1,3", "--rules", "fa", "--quick", "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    for net in report["networks"]:
        rows = {r["population"]: r for r in net["rows"]}
        assert set(rows) == {1, 3} and rows[1]["ratio"] == 1.0
        for p, r in rows.items():
            assert r["model_steps_per_s"] == pytest.approx(p / (r["ms_per_step"] / 1e3))
            assert r["ratio"] == pytest.approx(r["model_steps_per_s"] / rows[1]["model_steps_per_s"])
