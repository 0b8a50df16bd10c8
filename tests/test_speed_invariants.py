"""The shortcuts of the hot path give what the long way gives, bit for bit.

Each fast path of a training step (see docs/performance.md) is checked against the computation
it replaces: the replayed backprop reference against a second forward pass, direct feedback's
detached sites against backprop's error thrown away, one-pass Gaussian noise against randn · σ,
the trainer's device-side loss log against the first non-finite step; a step reuses freed
memory instead of page-faulting, and between logged steps nothing waits for the device.
"""

import math
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from engine.config import RunConfig
from engine.data.dataset import Dataset
from engine.networks import Block, FeedbackNet, conv_small, mlp
from engine.layers import FeedbackConv2d, FeedbackLinear
from engine.objective import Objective
from engine.reference import backprop_reference, backprop_site_errors
from engine.rules import RULES
from engine.rules.base import _gaussian
from engine.divergence import LOSS_LOG, DivergedError
from engine.trainer import Trainer


def _rule(name, model, **kw):
    cfg = RunConfig(rule=name, sigma=0.05, **kw)
    return RULES[name](model, cfg, torch.Generator().manual_seed(1))


def _dropout_net():
    """Conv → pool → FC with dropout → FC: every kind of block the replay walks through."""
    return FeedbackNet([Block(FeedbackConv2d(1, 3, 3, padding=1), "tanh", pool=2),
                        Block(FeedbackLinear(3 * 4 * 4, 12), "relu", dropout=0.3, flatten_input=True),
                        Block(FeedbackLinear(12, 9), "linear", dropout=0.5),
                        Block(FeedbackLinear(9, 4))], (1, 8, 8))


NETS = {
    "mlp-sigmoid": lambda: mlp(10, [8, 7], 4, "sigmoid"),
    "mlp-tanh-deep": lambda: mlp(10, [9, 8, 6], 4, "tanh"),
    "conv-small": lambda: conv_small((1, 8, 8), 4, "tanh"),
    "conv-dropout": _dropout_net,
}


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("rule", ["sg", "np", "fa", "np-dfa"])
def test_replayed_reference_is_the_full_reference_bit_for_bit(net, rule, loss):
    torch.manual_seed(0)
    model = NETS[net]()
    r = _rule(rule, model, loss=loss)
    x, y = torch.rand(7, model.sizes[0]), torch.randint(0, 4, (7,))
    obj = Objective(loss, "classification", 4)
    res = r.compute_gradients(x, y, obj)
    full = backprop_reference(model, x, y, obj, res.masks)
    fast = backprop_reference(model, x, y, obj, res.masks, replay=res.pre)
    for name in ("weight_grads", "dh", "deltas"):
        for a, b in zip(getattr(full, name), getattr(fast, name), strict=True):
            assert torch.equal(a, b), name
    for a, b in zip(full.dh, backprop_site_errors(model, x, y, obj, res), strict=True):
        assert torch.equal(a, b)


def test_site_errors_fall_back_to_the_full_reference_when_the_trained_pass_was_noisy():
    torch.manual_seed(0)
    model = mlp(10, [8, 7], 4, "sigmoid")
    r = _rule("sg", model, train_on_noise=True)
    x, y = torch.rand(5, 10), torch.randint(0, 4, (5,))
    obj = Objective("mse", "classification", 4)
    res = r.compute_gradients(x, y, obj)
    assert res.pre is None                       # the noisy pass's activations are not the clean net's
    for a, b in zip(backprop_reference(model, x, y, obj).dh, backprop_site_errors(model, x, y, obj, res)):
        assert torch.equal(a, b)


class _CountUses(TorchDispatchMode):
    """How many matrix products read each weight's memory (W or a view of it, such as Wᵀ)."""

    def __init__(self, weights):
        super().__init__()
        self.uses = {w.data_ptr(): 0 for w in weights}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            for a in args:
                if isinstance(a, torch.Tensor) and a.data_ptr() in self.uses:
                    self.uses[a.data_ptr()] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("rule", ["dfa", "np-dfa"])
def test_direct_feedback_never_forms_backprops_error_to_a_hidden_site(rule):
    """W_{i+1} is read once per pass, by the forward product: backprop's error δ_{i+1} W_{i+1}
    to hidden site i (the only other product that reads it) is never formed."""
    from engine.rules.dfa import DirectTaps
    torch.manual_seed(0)
    model = mlp(10, [8, 7], 4, "sigmoid")
    r = _rule(rule, model)
    x, y = torch.rand(5, 10), torch.randint(0, 4, (5,))
    obj = Objective("mse", "classification", 4)
    weights = [layer.weight for layer in model.layers]
    with _CountUses(weights) as count:
        r.forward_backward(x, y, obj, taps=DirectTaps(r.feedback))
    assert list(count.uses.values()) == [1, 1, 1]


@pytest.mark.parametrize("net", ["mlp-sigmoid", "conv-small"])
def test_direct_feedback_is_formed_once_per_step_and_is_each_sites_error(net):
    """The tap's e Bᵢᵀ is the error each site received (per sample: batch × the mean loss's),
    and a whole NP-DFA step, control variate and regression included, reads each Bᵢ in that one
    product only."""
    torch.manual_seed(0)
    model = NETS[net]()
    r = _rule("np-dfa", model, control_variate=True, feedback_mode="sgd")
    x, y = torch.rand(6, model.sizes[0]), torch.randint(0, 4, (6,))
    obj = Objective("mse", "classification", 4)
    before = [b.clone() for b in r.feedback]
    with _CountUses(r.feedback) as count:
        res = r.train_step(x, y, obj)
    assert list(count.uses.values()) == [1] * len(r.feedback)
    e = res.deltas[-1]
    for got, b in zip(res.site_errors, before, strict=True):
        torch.testing.assert_close(got.flatten(1), e @ b.T)
    assert r.error_signals(res) is res.site_errors
    assert not any(torch.equal(b, old) for b, old in zip(r.feedback, before))      # B did learn


def test_direct_feedback_gradients_are_the_injected_errors_through_the_layer_below():
    """Against the formula the old tap computed: δᵢ = (e Bᵢᵀ) ⊙ σ'(aᵢ), ∂L/∂Wᵢ = δᵢᵀ hᵢ₋₁ / n."""
    torch.manual_seed(0)
    model = mlp(10, [8, 7], 4, "sigmoid")
    r = _rule("dfa", model)
    x, y = torch.rand(6, 10), torch.randint(0, 4, (6,))
    obj = Objective("mse", "classification", 4)
    res = r.compute_gradients(x, y, obj)
    e = res.mean_deltas[-1]
    hs, h = [x], x
    for layer in model.layers[:-1]:
        h = torch.sigmoid(layer(h, use_feedback=False))
        hs.append(h)
    for i, (layer, b) in enumerate(zip(model.layers[:-1], r.feedback)):
        delta = torch.ops.aten.sigmoid_backward(e @ b.T, hs[i + 1])
        assert torch.equal(res.mean_deltas[i], delta)
        torch.testing.assert_close(layer.weight.grad, delta.T @ hs[i])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(128, 256), (9, 7), (12, 16), (3, 5), (1, 1), (4, 3, 8, 8), (2, 8)])
def test_one_pass_noise_is_randn_times_sigma(shape, dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        for sigma in (0.01, 0.3, 1e-6):
            a = torch.randn(shape, generator=torch.Generator().manual_seed(3)) * sigma
            b = _gaussian(shape, sigma, torch.Generator().manual_seed(3), "cpu")
            assert b.dtype == a.dtype and torch.equal(a, b)
    finally:
        torch.set_default_dtype(old)


def test_per_sample_errors_are_scaled_on_demand_and_index_like_a_list():
    torch.manual_seed(0)
    model = mlp(10, [8, 7], 4, "sigmoid")
    r = _rule("np", model)
    x, y = torch.rand(6, 10), torch.randint(0, 4, (6,))
    res = r.compute_gradients(x, y, Objective("mse", "classification", 4))
    want = [g * 6 for g in res.mean_deltas]
    assert len(res.deltas) == 3
    assert torch.equal(res.deltas[-1], want[-1]) and res.deltas[-1] is res.deltas[2]
    assert all(torch.equal(a, b) for a, b in zip(res.deltas[1:], want[1:], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(res.deltas, want, strict=True))
    with pytest.raises(IndexError):
        res.deltas[3]


def test_one_hot_codes_follow_the_labels_and_the_default_dtype():
    obj = Objective("mse", "classification", 3)
    y = torch.tensor([0, 2, 1])
    assert obj.targets(y) is obj.targets(y)
    y[0] = 1                                       # changed in place: new codes
    assert obj.targets(y)[0].tolist() == [0.0, 1.0, 0.0]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert obj.targets(y).dtype == torch.float64
    finally:
        torch.set_default_dtype(old)
    assert obj.targets(torch.tensor([2, 2, 2])).tolist() == [[0.0, 0.0, 1.0]] * 3


_SYNCS = ("_local_scalar_dense", "is_nonzero", "equal", "item")


class _Ops(TorchDispatchMode):
    """The names of the ops dispatched, and where in Python each host sync came from."""

    def __init__(self):
        super().__init__()
        self.names, self.syncs = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.names.append(name)
        if name in _SYNCS:
            self.syncs.append((name, [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()]))
        return func(*args, **(kwargs or {}))


def test_one_hot_codes_take_no_host_sync_and_equal_one_hot():
    y = torch.randint(0, 10, (128,), generator=torch.Generator().manual_seed(0))
    with _Ops() as ops:
        codes = Objective("mse", "classification", 10).targets(y)
    assert torch.equal(codes, torch.nn.functional.one_hot(y, 10).float())
    assert "_local_scalar_dense" not in ops.names, ops.names      # .item(): a GPU stall per step


@pytest.mark.parametrize("model", ["mlp", "conv-small"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_an_unlogged_step_never_waits_for_the_device(rule, model):
    """No .item(), bool() or int() of a tensor between logged steps: on a GPU each is a stall
    that idles the device until everything queued has run."""
    cfg = RunConfig(rule=rule, model=model, dataset="digits", steps=10, metric_interval=10,
                    eval_interval=10, batch_size=8)
    trainer = Trainer(cfg)
    trainer.step()
    with _Ops() as ops:
        assert trainer.step() is None
    # Adam reads its step counters with .item(), but torch keeps them on the CPU for a model on
    # any device (unless capturable or fused), so those read no device memory.
    ours = [(name, stack[-3:]) for name, stack in ops.syncs
            if not any(os.sep + os.path.join("torch", "optim") + os.sep in f for f in stack)]
    assert not ours, ours


@pytest.mark.parametrize("labels, dtype", [([0, 3], torch.int64), ([-1, 1], torch.int64),
                                           ([0.0, 1.0], torch.float32)])
def test_a_dataset_refuses_labels_outside_its_classes(labels, dtype):
    from engine.errors import ConfigError
    y = torch.tensor(labels, dtype=dtype)
    with pytest.raises(ConfigError, match=r"labels must be int64 class indices in \[0, 3\)"):
        Dataset("bad", torch.zeros(2, 4), y, torch.zeros(2, 4), torch.tensor([0, 1]), n_in=4,
                n_out=3, task="classification")


def _random_data(n=64):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n + 16, 8, generator=g), torch.randint(0, 3, (n + 16,), generator=g)
    return Dataset("random", x[:n], y[:n], x[n:], y[n:], n_in=8, n_out=3, task="classification")


@pytest.mark.parametrize("bad_step", [1, 37, LOSS_LOG, LOSS_LOG + 1, 2 * LOSS_LOG + 5])
def test_the_first_non_finite_step_is_reported_across_the_device_log(bad_step):
    cfg = RunConfig(rule="fa", depth=1, width=5, batch_size=4, steps=10 ** 6, device="cpu",
                    metric_interval=200, eval_interval=400)
    trainer = Trainer(cfg, dataset=_random_data())
    compute = trainer.rule.compute_gradients

    def poisoned(x, y, objective, live):
        result = compute(x, y, objective, live)
        if trainer.step_count + 1 >= bad_step:
            result.loss = result.loss.clone().fill_(math.inf if bad_step % 2 else math.nan)
        return result
    trainer.rule.compute_gradients = poisoned
    with pytest.raises(DivergedError) as info:
        for _ in range(200):
            trainer.step()
    assert info.value.step == bad_step
    assert trainer.step_count == 200                # raised at the first logged step, as before


_FAULTS_PER_STEP = """
import resource
from engine.config import RunConfig
from engine.trainer import Trainer
t = Trainer(RunConfig(rule="np", dataset="digits", width=[256, 256], batch_size=128, steps=10**6,
                      metric_interval=10**9, eval_interval=10**9, device="cpu"))
for _ in range(20):
    t.step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    t.step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_training_step_reuses_freed_memory_instead_of_page_faulting():
    """NP's per-step 128 KiB temporaries must come from malloc's heap, not fresh mmaps: without
    engine/allocator.py a step on 256-wide layers took 300–800 minor page faults (new zeroed
    pages), with it about none. Glibc's own threshold setting (the control) turns it off."""
    def faults(**env):
        out = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], env={**os.environ, **env},
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return float(out.stdout.split()[-1])

    tuned = faults()
    untuned = faults(MALLOC_MMAP_THRESHOLD_="131072")
    assert tuned < 20 < 100 < untuned, (tuned, untuned)
