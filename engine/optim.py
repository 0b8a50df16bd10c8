"""torch.optim's Adam and SGD, minus the import of torch._dynamo on first use.

Outside torch.compile, torch.optim wraps a few methods in decorators whose only eager-mode
effect is to `import torch._dynamo` (seconds) the first time they run: `add_param_group`,
`zero_grad`, `state_dict` and `load_state_dict` are wrapped in `torch._disable_dynamo`, and
each `step` in `_use_grad_for_differentiable`, which also calls `torch._dynamo.graph_break()`.
These subclasses call the functions those decorators wrap, so everything else is torch's own
code: the same defaults and param_groups, the same lazily created state ('step',
'exp_avg', 'exp_avg_sq', 'momentum_buffer'), the same call of the functional `adam`/`sgd`
(which picks foreach on CUDA just as torch.optim does), and state dicts that load both ways
between these and torch.optim's classes.
"""

from __future__ import annotations

import functools
import inspect

import torch


def _undecorated(method):
    """The function under torch's decorators (all of them use functools.wraps).

    If a torch version stops exposing it, this returns the method itself: still correct,
    only the import comes back (tests/test_optim.py checks for it)."""
    return inspect.unwrap(method)


def _step_without_dynamo(torch_step):
    body = _undecorated(torch_step)

    @functools.wraps(body)
    def step(self, closure=None):
        # What _use_grad_for_differentiable does around the body, without the graph breaks
        # (which only matter while torch.compile traces).
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return body(self, closure)
    return step


class _WithoutDynamo:
    add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
    zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)
    state_dict = _undecorated(torch.optim.Optimizer.state_dict)
    load_state_dict = _undecorated(torch.optim.Optimizer.load_state_dict)


class Adam(_WithoutDynamo, torch.optim.Adam):
    step = _step_without_dynamo(torch.optim.Adam.step)


class SGD(_WithoutDynamo, torch.optim.SGD):
    step = _step_without_dynamo(torch.optim.SGD.step)


class MemberRates:
    """Each member of a population updated at its own learning rate, by one optimiser.

    Adam's and SGD's updates are their lr times a direction that does not depend on lr (Adam's
    m̂/(√v̂ + ε), SGD's momentum buffer), so an optimiser run at lr = 1 and each member's change
    then scaled by its rate is the member's own run, optimiser state included. The change is
    taken at lr = 1, not at the smallest rate, so that it is as large as it gets against the
    weight it is subtracted from (no digits lost to cancellation)."""

    def __init__(self, rates: tuple[float, ...], params: list[torch.Tensor]):
        from engine.members import per_member
        self.params = params
        self.scales = [per_member(rates, p) for p in params]

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer) -> None:
        before = [p.clone() for p in self.params]
        optimizer.step()
        for p, old, scale in zip(self.params, before, self.scales):
            p.sub_(old).mul_(scale).add_(old)
