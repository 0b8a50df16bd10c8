"""engine/optim.py: torch.optim's Adam and SGD, bit for bit, without importing torch._dynamo."""

import io
import subprocess
import sys
import textwrap

import pytest
import torch

from engine import optim
from engine.config import RunConfig
from engine.trainer import Trainer

# (ours, torch's, arguments): the optimisers Trainer._make_optimizer builds.
CASES = {"adam": (optim.Adam, torch.optim.Adam, dict(lr=1e-2)),
         "sgd": (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.0)),
         "sgd-momentum": (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9))}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))]   # where torch picks foreach


def _params(device="cpu"):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen).to(device).requires_grad_()
            for shape in [(4, 3), (4,), (2, 2)]]


def _grads(step: int, params):
    """The same gradients for both optimisers; some are None, so some steps skip a parameter
    and one parameter's state is only created at step 6."""
    gen = torch.Generator().manual_seed(1000 + step)
    grads = [torch.randn(p.shape, generator=gen).to(p.device) for p in params]
    if step % 3 == 0:
        grads[1] = None
    if step < 6:
        grads[2] = None
    return grads


def _take_steps(opt, params, steps):
    for step in steps:
        if step in (20, 35):                     # the trainer changes lr live like this
            opt.param_groups[0]["lr"] *= 0.5
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, _grads(step, params)):
            p.grad = g
        opt.step()


def _assert_same(ours, theirs, ours_params, their_params):
    for p, q in zip(ours_params, their_params):
        assert torch.equal(p, q)
        assert ours.state[p].keys() == theirs.state[q].keys()
        for key, value in ours.state[p].items():
            other = theirs.state[q][key]
            assert value.dtype == other.dtype and value.device == other.device, key
            assert torch.equal(value, other), key
    assert ours.state_dict()["param_groups"] == theirs.state_dict()["param_groups"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_steps_equal_torch_optim_bit_for_bit(case, device):
    ours_cls, torch_cls, kwargs = CASES[case]
    a, b = _params(device), _params(device)
    ours, theirs = ours_cls(a, **kwargs), torch_cls(b, **kwargs)
    assert isinstance(ours, torch_cls)
    for step in range(50):
        _take_steps(ours, a, [step])
        _take_steps(theirs, b, [step])
        _assert_same(ours, theirs, a, b)


def _via_file(obj, weights_only=True):
    buf = io.BytesIO()                           # as a checkpoint.pt goes through torch.save
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=weights_only)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
def test_state_dicts_load_both_ways_and_continue_identically(case, direction):
    ours_cls, torch_cls, kwargs = CASES[case]
    first_cls, second_cls = (torch_cls, ours_cls) if direction == "torch->ours" else (ours_cls, torch_cls)
    whole_params = _params()
    whole = torch_cls(whole_params, **kwargs)
    _take_steps(whole, whole_params, range(50))

    first_params = _params()
    first = first_cls(first_params, **kwargs)
    _take_steps(first, first_params, range(25))
    second_params = [p.detach().clone().requires_grad_() for p in first_params]
    second = second_cls(second_params, **{**kwargs, "lr": 123.0})   # lr comes from the state
    second.load_state_dict(_via_file(first.state_dict()))
    _take_steps(second, second_params, range(25, 50))
    _assert_same(second, whole, second_params, whole_params)


@pytest.mark.parametrize("overrides", [dict(), dict(optimizer="sgd", lr=0.05, momentum=0.9)])
def test_trainer_matches_torch_optim_and_resumes_its_old_checkpoints(overrides):
    """The trainer's steps equal torch.optim's, with a live lr change through `set`, and a
    checkpoint written when the trainer used torch.optim resumes exactly."""
    cfg = RunConfig(steps=30, metric_interval=10, eval_interval=30, **overrides)

    def with_torch_optim():
        t = Trainer(cfg)
        kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        t.optimizer = kind(t.model.parameters(), fused=True,        # as the trainer makes it
                           **({"lr": cfg.lr} if cfg.optimizer == "adam" else {"lr": cfg.lr, "momentum": cfg.momentum}))
        return t

    def run(t, steps):
        for _ in range(steps):
            if t.step_count == 12:
                t.set(lr=cfg.lr / 2)
            t.step()

    reference, ours = with_torch_optim(), Trainer(cfg)
    assert type(ours.optimizer) in (optim.Adam, optim.SGD)
    run(reference, 30)
    run(ours, 30)
    for p, q in zip(ours.model.parameters(), reference.model.parameters()):
        assert torch.equal(p, q)

    old = with_torch_optim()
    run(old, 15)
    resumed = Trainer(cfg)
    resumed.restore(_via_file(old.checkpoint(), weights_only=False))     # as --resume loads it
    run(resumed, 15)
    for p, q in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(p, q)


def test_a_training_step_does_not_import_torch_dynamo():
    """Importing torch._dynamo costs seconds at the start of every run; none of it is needed."""
    code = textwrap.dedent("""
        import sys
        from engine.config import RunConfig
        from engine.trainer import Trainer
        for cfg in (RunConfig(steps=1), RunConfig(steps=1, optimizer="sgd")):
            t = Trainer(cfg)
            t.step()
            t.restore(t.checkpoint())
        assert "torch._dynamo" not in sys.modules, "torch._dynamo was imported"
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
