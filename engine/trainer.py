"""The training loop, step by step, and the training-state records it publishes.

`Trainer` owns the data, model, rule and optimiser of one run and takes one step at a time
(`step()`); the run loop that pauses, resumes and stops it is engine/control.py's `drive`
(`run()` is that loop with no commands). σ and the learning rates may be changed with `set()`;
a change takes effect before the next step.

Every `metric_interval` steps it computes the alignment metrics and publishes a compact
record (a plain dict of floats) to its subscribers; every `eval_interval` steps the record
also carries the clean test loss and accuracy. Subscribers that ask for matrices also get the
latest B and Wᵀ of each layer as float32 CPU copies. The hot path never syncs with the device
except at those logged steps.

With P = cfg.members() > 1 it trains a population (engine/members.py): `seeds` members for each
value of σ, member k being the single run of its seed and σ; a record gives each member under
"members" and their mean (NaN-aware) at the top level. A member that diverges is left behind
(engine/divergence.py): NaN in the records from then on, its `diverged_step` named; the run
stops, with DivergedError, only when every member has.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import torch

from engine.allocator import keep_freed_memory
from engine.config import LIVE_FIELDS, RunConfig
from engine.live import Live
from engine.errors import ConfigError
from engine.status import Status
from engine.control import drive
from engine.data.dataset import Dataset
from engine.data.registry import load_dataset
from engine.divergence import DivergedError, LossWatch
from engine.members import Streams, mean, mean_record, split, std
from engine.memory import NetworkSize, check_run_fits
from engine.metrics import LAYER_METRICS, layer_metrics
from engine.networks import build_model, fully_connected_sizes
from engine.objective import Objective
from engine.optim import SGD, Adam, MemberRates
from engine.rules import RULES
from engine.values import format_numbers

EVAL_CHUNK = 1000          # test samples per forward pass when evaluating


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is not allowed: no CUDA device is available; use auto or cpu")
    return torch.device(name)


class Subscriber:
    """A callback for records, and whether it wants the B / Wᵀ matrices with them."""

    def __init__(self, callback: Callable[[dict], None], matrices: bool = False):
        self.callback, self.matrices = callback, matrices


class Trainer:
    def __init__(self, cfg: RunConfig, dataset: Dataset | None = None):
        self.cfg = copy.deepcopy(cfg).validate()
        keep_freed_memory()             # a step's temporaries reuse memory instead of page-faulting
        self.device = resolve_device(self.cfg.device)
        cfg = self.cfg
        self.data = (dataset or load_dataset(cfg.dataset, cfg)).to(self.device)
        # Before the weights exist: a network or batch the device cannot hold is one line now, not
        # seconds of allocation and then an out-of-memory kill (or a swapping machine). A conv
        # net's few weights are built first, to find its shapes.
        self.members = cfg.members()
        self.member_settings = cfg.member_values()     # seed and compared settings, for records
        self.seeds = [m["seed"] for m in self.member_settings]
        sizes = fully_connected_sizes(cfg, self.data)
        if sizes is not None:
            self._check_fits(NetworkSize.of_sizes(sizes))
        # Each member's weights are drawn from the global RNG seeded with its seed, in a fork, so
        # callers' RNG state is untouched.
        self.model = build_model(cfg, self.data, self.seeds).to(self.device)
        if sizes is None:
            self._check_fits(self.model)
        self.generator = Streams.seeded(self.seeds, self.device, offset=1)
        self.batch_generator = Streams.seeded(self.seeds, self.device, offset=2)
        # An autoencoder's target is its own input: a regression, whatever the labels are.
        self.autoencoding = cfg.model == "autoencoder"
        task = "regression" if self.autoencoding else self.data.task
        self.objective = Objective(cfg.loss, task, self.data.n_out)
        # The rule reads cfg's fixed settings; the live ones come with each step (`self.live`).
        self.rule = RULES[cfg.rule](self.model, self.cfg, self.generator)
        self.live = Live.of(self.cfg)
        self.optimizer = self._make_optimizer()
        self._params = list(self.model.parameters())
        self._rates = MemberRates(self.live.lr, self._params) if isinstance(self.live.lr, tuple) else None
        self.step_count = 0
        self._order = torch.empty(self.members, 0, dtype=torch.long, device=self.device)   # per member
        self._cursor = 0
        self.losses = LossWatch(self.members, self.device)     # who diverged, from which step
        self._last_record: dict | None = None
        self._pending: dict[str, Any] = {}
        self._subscribers: list[Subscriber] = []
        self.shown_member = 0           # whose B and Wᵀ the subscribers get ("member" command)
        self.status = Status.READY      # kept by the run loop (engine/control.py)
        self.started_at = time.time()

    # ------------------------------------------------------------ set-up
    def _check_fits(self, network) -> None:
        """ConfigError, one line, when a step of `network` (a model, or a NetworkSize before it is
        built) would not fit on the device."""
        check_run_fits(self.cfg, RULES[self.cfg.rule], network, self.device,
                       eval_rows=min(EVAL_CHUNK, len(self.data.x_test)))

    def _make_optimizer(self) -> torch.optim.Optimizer:
        # engine.optim's classes are torch.optim's, bit for bit, interchangeable state dicts, but
        # no torch._dynamo import (seconds) on first use. Fused: one kernel per parameter, not ~10
        # (Adam, 32 members of 784-50-20-10: 0.7 ms a step, not 6.4; one member: 0.07, not 0.22).
        params, lr = list(self.model.parameters()), 1.0 if isinstance(self.live.lr, tuple) else self.live.lr
        if self.cfg.optimizer == "adam":
            return Adam(params, lr=lr, fused=True)
        return SGD(params, lr=lr, momentum=self.cfg.momentum, fused=True)

    def subscribe(self, callback: Callable[[dict], None], matrices: bool = False) -> Subscriber:
        sub = Subscriber(callback, matrices)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    # ------------------------------------------------------- live control
    def set(self, **changes: Any) -> None:
        """Change live settings (σ, lr, feedback_lr); they take effect before the next step."""
        checked = {name: self.cfg.check_live_change(name, value) for name, value in changes.items()}
        # One assignment, so a set() from another thread is never half seen by the next step.
        self._pending = {**self._pending, **checked}

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        for name, value in pending.items():
            setattr(self.cfg, name, value)          # the run's setup, as checkpoints and summaries say it
        self.live = Live.of(self.cfg)                # what the next steps are given
        if "lr" in pending:
            for group in self.optimizer.param_groups:
                group["lr"] = self.live.lr

    @property
    def forward_frozen(self) -> bool:
        return self.cfg.freeze_forward or self.step_count < self.cfg.warmup_steps

    # ------------------------------------------------------------ training
    def _epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """A new epoch's order for one member: a fresh permutation, made on the device."""
        n, bs = self.data.x_train.shape[0], self.cfg.batch_size
        order = torch.randperm(n, generator=generator, device=self.device)
        while order.numel() < bs:      # batch larger than the training set
            order = torch.cat([order, torch.randperm(n, generator=generator, device=self.device)])
        return order

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of every member (its own order through the data), stacked."""
        bs = self.cfg.batch_size
        if self._cursor + bs > self._order.shape[1]:
            self._order = torch.stack([self._epoch_order(g) for g in self.batch_generator.generators])
            self._cursor = 0
        idx = self._order[:, self._cursor:self._cursor + bs].reshape(-1)
        self._cursor += bs
        # index_select, not x_train[idx]: the same rows, a third of advanced indexing's time
        x = self.data.x_train.index_select(0, idx)
        return x, (x if self.autoencoding else self.data.y_train.index_select(0, idx))

    def step(self) -> dict | None:
        """One training step. Returns the record when this step was logged, else None."""
        self._apply_pending()
        x, y = self._next_batch()
        s = self.step_count + 1
        logged = (s % self.cfg.metric_interval == 0 or s % self.cfg.eval_interval == 0
                  or s == self.cfg.steps)
        for p in self._params:          # optimizer.zero_grad(set_to_none=True), minus its profiler scope
            p.grad = None
        result = self.rule.compute_gradients(x, y, self.objective, self.live)
        # Measure before anything moves, so metrics describe the step that was taken.
        metrics = layer_metrics(self.model, self.rule, result, x, y, self.objective) if logged else None
        self.rule.learn_feedback(x, y, self.objective, result, self.live)
        self.rule.before_optimizer_step()
        if not self.forward_frozen:
            self._rates.step(self.optimizer) if self._rates else self.optimizer.step()
        self.rule.after_optimizer_step(self.live)
        self.step_count = s
        self.losses.log(result.loss, s)
        if not logged:
            return None
        self.losses.check()
        if not self.losses.alive:
            self.status = Status.DIVERGED
            at = self.losses.at
            where = "" if self.members == 1 else f"in all {self.members} members, the last at step {max(at)}"
            raise DivergedError(min(at), self.divergence_hint(), where)
        record = self._record(y, result, metrics,
                              evaluate=(s % self.cfg.eval_interval == 0 or s == self.cfg.steps))
        self._publish(record)
        return record

    def divergence_hint(self, member: int | None = None) -> str:
        """What to lower: the forward step, and the feedback step where B is learnt by SGD (at
        `member`'s values, as its single run would say, when one is named)."""
        cfg, sgd = self.cfg, self.cfg.optimizer == "sgd"
        who = {} if member is None else self.member_settings[member]
        lower = [f"{name} (now {format_numbers(who.get(name, getattr(cfg, name)))})" for name in ("lr", "feedback_lr")
                 if name == "lr" or ("feedback_mode" in self.rule.options and cfg.feedback_mode == "sgd")]
        if sgd and cfg.momentum > 0:
            lower.append(f"momentum (now {cfg.momentum:g})")
        return "lower " + " or ".join(lower) + (", or use optimizer adam" if sgd else "")

    def run(self, steps: int | None = None, on_record: Callable[[dict], None] | None = None) -> Status:
        """Train until `steps` more steps are done (default: up to cfg.steps), with no commands:
        `drive(self, control)` is the same loop under a `Control`. Returns FINISHED (or PAUSED
        when `steps` ended before the budget); raises DivergedError."""
        return drive(self, steps=steps, on_record=on_record)

    # ------------------------------------------------------------ records
    @torch.no_grad()
    def evaluate(self, split: str = "test") -> tuple[float, float]:
        """Clean loss (mean per sample) and accuracy on a whole split, the members' mean;
        accuracy NaN for regression."""
        losses, accs = self.evaluate_members(split)
        return mean(losses), mean(accs)

    @torch.no_grad()
    def evaluate_members(self, split: str = "test") -> tuple[list[float], list[float]]:
        """Each member's clean loss (mean per sample) and accuracy on a whole split."""
        x, y = (self.data.x_test, self.data.y_test) if split == "test" else (self.data.x_train, self.data.y_train)
        y, p = (x if self.autoencoding else y), self.members
        # In chunks: a conv net's activations for a whole test set would not fit in memory.
        losses, corrects = [], []
        for start in range(0, x.shape[0], EVAL_CHUNK):
            chunk_x, chunk_y = x[start:start + EVAL_CHUNK], y[start:start + EVAL_CHUNK]
            if p > 1:                   # every member sees the whole split
                chunk_x = chunk_x.repeat(p, *[1] * (chunk_x.dim() - 1))
                chunk_y = chunk_y.repeat(p, *[1] * (chunk_y.dim() - 1))
            out = self.model(chunk_x, use_feedback=False).out
            losses.append(self.objective.per_sample(out, chunk_y).view(p, -1))
            correct = self.objective.correct(out, chunk_y)
            corrects.append(None if correct is None else correct.view(p, -1))
        loss = torch.cat(losses, 1).mean(1)
        acc = (torch.cat(corrects, 1).mean(1) if corrects[0] is not None
               else torch.full_like(loss, math.nan))
        losses, accs = torch.stack([loss, acc]).tolist()
        for k, step in enumerate(self.losses.at):      # a diverged network has no accuracy
            if step is not None:
                losses[k] = accs[k] = math.nan
        return losses, accs

    def _record(self, y, result, metrics: dict[str, torch.Tensor], evaluate: bool) -> dict:
        p = self.members
        loss = result.loss.view(p, -1).mean(1)
        correct = self.objective.correct(result.out, y)
        acc = correct.view(p, -1).mean(1) if correct is not None else torch.full_like(loss, math.nan)
        table = torch.stack([metrics[k] for k in LAYER_METRICS]).view(len(LAYER_METRICS), -1, p)
        scalars_v, table_v = torch.stack([loss, acc]).tolist(), table.tolist()   # this step's syncs
        test_loss = test_acc = [math.nan] * p
        if evaluate:
            test_loss, test_acc = self.evaluate_members("test")
        gone, nan = self.losses.at, math.nan
        members = [{"train_loss": scalars_v[0][k], "train_accuracy": scalars_v[1][k],
                    "test_loss": test_loss[k], "test_accuracy": test_acc[k],
                    "layers": [{name: table_v[m][i][k] for m, name in enumerate(LAYER_METRICS)}
                               for i in range(table.shape[1])]}
                   if gone[k] is None else      # a diverged member measures nothing
                   {"train_loss": nan, "train_accuracy": nan, "test_loss": nan, "test_accuracy": nan,
                    "layers": [dict.fromkeys(LAYER_METRICS, nan) for _ in range(table.shape[1])]}
                   for k in range(p)]
        summary = members[0] if p == 1 else mean_record(members)
        record: dict[str, Any] = {
            "step": self.step_count,
            "time": time.time() - self.started_at,
            **{k: v for k, v in summary.items() if k != "layers"},
            "forward_frozen": self.forward_frozen,
            **{name: getattr(self.cfg, name) for name in LIVE_FIELDS},
            "layers": summary["layers"],
        }
        if p > 1:
            record["members"] = [{"member": k, **who, **m, "diverged_step": nan if gone[k] is None else gone[k]}
                                 for k, (who, m) in enumerate(zip(self.member_settings, members))]
        self._last_record = record
        return record

    def matrices(self, member: int = 0) -> list[dict[str, Any]]:
        """Float32 CPU copies of one member's feedback B and the Wᵀ it stands for (None where it has none)."""
        def as_matrix(t):
            if self.members > 1:
                t = split(t, self.members)[member]
            # Conv kernels (out, in, kh, kw) are shown like a linear Wᵀ: (in·kh·kw) × out.
            t = t.detach().float()
            return (t.flatten(1).T if t.dim() == 4 else t).cpu().numpy().copy()

        kind, above = self.rule.feedback_kind, self.model.layers[1:]
        feedback = [None] * len(above) if kind == "none" else self.rule.feedback_matrices()   # pnp: no B
        return [{"layer": i + 1, "member": member, "B": None if b is None else as_matrix(b),
                 "WT": None if kind == "direct" else as_matrix(layer.backprop_feedback())}
                for i, (b, layer) in enumerate(zip(feedback, above))]

    def _publish(self, record: dict) -> None:
        if not self._subscribers:
            return
        mats = self.matrices(self.shown_member) if any(s.matrices for s in self._subscribers) else None
        for sub in list(self._subscribers):
            sub.callback({**record, "matrices": mats} if sub.matrices else record)

    def summary(self) -> dict[str, Any]:
        """The final state in the CLI's --json shape; for a population, the members' mean and
        standard deviation, and each member."""
        last = self._last_record or {"layers": []}
        members = last.get("members") or [last]
        if last.get("step") == self.step_count and not any(math.isnan(m["test_loss"]) for m in members):
            # the last record evaluated these very weights: the test set is not gone through again
            losses, accs = [m["test_loss"] for m in members], [m["test_accuracy"] for m in members]
        else:
            losses, accs = self.evaluate_members("test")
        summary = {"rule": self.cfg.rule, "dataset": self.cfg.dataset, "steps": self.step_count,
                   "status": self.status, "test_accuracy": mean(accs), "test_loss": mean(losses),
                   "train_loss": last.get("train_loss", math.nan),
                   "dataset_meta": dict(self.data.meta),
                   "layers": [{"layer": i + 1, **layer} for i, layer in enumerate(last["layers"])]}
        if self.members > 1:
            records = last.get("members") or [{}] * self.members
            summary.update(seeds=self.members, test_accuracy_std=std(accs), test_loss_std=std(losses),
                           members=[{"member": k, **who, "test_accuracy": a, "test_loss": loss,
                                     "train_loss": r.get("train_loss", math.nan), "diverged_step": gone}
                                    for k, (who, a, loss, r, gone)
                                    in enumerate(zip(self.member_settings, accs, losses, records, self.losses.at))])
        return summary

    # ------------------------------------------------------------ checkpoint
    def checkpoint(self) -> dict[str, Any]:
        """Everything `restore` needs to continue exactly where this run is (between steps):
        weights, optimiser, the rule's feedback and solver state, both random generators and
        the position in the epoch's batch order."""
        return {"config": self.cfg.to_dict(), "step": self.step_count,
                "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "rule": self.rule.state_dict(),
                "generators": {"rule": self.generator.get_state(),
                               "batch": self.batch_generator.get_state(),
                               **({"noise": self.rule.noise.get_state()}
                                  if self.rule.noise is not self.generator else {})},
                # a single run's order is one row, saved as it always was
                "order": (self._order[0] if self.members == 1 else self._order).cpu(),
                "cursor": self._cursor,
                "diverged_at": list(self.losses.at),
                "last_record": self._last_record}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from `checkpoint()`'s state: the next step is the one the saved run would
        have taken (same batches, same noise), so a resumed run's history equals an
        uninterrupted one's. ValueError when the state's batch order cannot be this run's."""
        order, cursor = state["order"], int(state["cursor"])
        n = self.data.x_train.shape[0]
        if isinstance(order, torch.Tensor) and order.dim() == 1 and self.members == 1:
            order = order.unsqueeze(0)
        if (not isinstance(order, torch.Tensor) or order.dim() != 2 or order.shape[0] != self.members
                or order.dtype != torch.long or not 0 <= cursor <= order.shape[1]
                or (order.numel() and not 0 <= int(order.min()) <= int(order.max()) < n)):
            raise ValueError(f"its batch order is not one over this run's {n} training samples "
                             f"for {self.members} member(s)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rule.load_state_dict(state["rule"])
        self.step_count = int(state["step"])
        at = state.get("diverged_at", [None] * self.members)    # absent before it was kept
        if (not isinstance(at, list) or len(at) != self.members
                or not all(s is None or (type(s) is int and 0 < s <= self.step_count) for s in at)):
            raise ValueError(f"its diverged members are not {self.members} steps (or None) "
                             f"up to step {self.step_count}")
        self.losses.restart(at)
        self.generator.set_state(state["generators"]["rule"])     # ValueError: another member count
        self.batch_generator.set_state(state["generators"]["batch"])
        if self.rule.noise is not self.generator:
            if "noise" not in state["generators"]:
                raise ValueError("it holds no state of the independent noise streams")
            self.rule.noise.set_state(state["generators"]["noise"])
        self._order = order.to(self.device)
        self._cursor = cursor
        self._last_record = state.get("last_record")

