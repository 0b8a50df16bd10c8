"""A pack of trials that differ only in consecutive seeds and member settings (σ, lr,
feedback_lr: spec.packs), trained as one population (engine/members.py: one process, one batched
step) and saved as if each had run alone.

Member k of a population is the single run of its own seed and settings (RunConfig.member_values),
so each trial keeps its own run folder, written by an ordinary RunWriter through a `MemberView`: the member's records,
summary and checkpoint in a single run's shapes (config.json with its own seed and seeds = 1,
metrics.parquet without a `member` column, summary.json without the population's mean, a
checkpoint.pt that `creditlab train --resume` and experiments.load_model read as the single
run's). Its row of the trials table is made as run_trial makes it.

A member that diverges ends as its single run would: the trainer notices it at the same logged
step and leaves it behind (engine/divergence.py), and its folder is closed there, "diverged" at
the step its run would name, while the others train on. A failure is another matter: a
population may fail where its members would not (P times the weights against the memory limits,
a summary's evaluation of P networks at once), so a pack that fails runs its trials again one by
one (run_trial), into fresh folders, each failing or not as it would alone.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.divergence import DivergedError
from engine.status import Status
from engine.errors import one_line
from engine.sweep.spec import population_config
from engine.sweep.trial import make_row, open_writer, run_trial, sweep_tag

# What a population's summary adds to a single run's (engine/trainer.py Trainer.summary)
POPULATION_KEYS = ("seeds", "test_accuracy_std", "test_loss_std", "members")


def run_pack(trials: list[dict], runs_root: str, sweep_id: str, threads: int | None = 1,
             flush_interval: float = 5.0) -> list[dict]:
    """Train a pack of trials (Trial.to_json() each, in the member order of the population
    spec.population_config makes of them) as one population; return their table rows, in
    order. Never raises for a trial's own failure: see the module's docstring. Ctrl-C saves
    every member as "stopped" and propagates."""
    whole = population_config([t["config"] for t in trials]) if len(trials) > 1 else None
    if whole is None:                   # spec.packs makes none such; never pack one
        return alone(trials, runs_root, sweep_id, threads, flush_interval)
    import torch

    from engine.runs.layout import SUMMARY_FILE
    from engine.runs.writer import atomic_write_json
    from engine.trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    root = Path(runs_root)
    started, cpu_started = time.time(), time.thread_time()
    try:
        members = [RunConfig.from_dict(t["config"]).validate() for t in trials]
        population = Population(Trainer(RunConfig.from_dict(whole)), members)
    except Exception:                          # each trial alone fails, or not, on its own
        return alone(trials, runs_root, sweep_id, threads, flush_interval)
    writers, ended = [], {}                    # member → its result, closed when it diverged

    def close_diverged(k: int, error: DivergedError) -> None:
        ended[k] = writers[k].close(Status.DIVERGED, error)

    status = Status.FINISHED
    try:
        for t, view in zip(trials, population.views):
            writers.append(open_writer(root, view, t, sweep_id, flush_interval))
        population.on_diverged = close_diverged
        try:
            status = population.trainer.run()
        except DivergedError:                  # the last members went: each ends as it would alone
            population.diverged(set(range(population.size)) - set(ended))
        population.finish(skip=set(ended))     # every other member's summary and checkpoint, or raise
    except Exception:                          # see the docstring
        discard(writers)
        return alone(trials, runs_root, sweep_id, threads, flush_interval)
    except BaseException:                      # Ctrl-C, worker shutdown: keep what was done
        for writer in writers:
            try:
                writer.close(Status.STOPPED)
            except Exception:
                pass
        raise
    # One process trained them together: each trial is charged its share of the time, so that
    # the table's sums are the sweep's cost, as they are unpacked.
    wall, cpu = (time.time() - started) / len(trials), (time.thread_time() - cpu_started) / len(trials)
    rows = []
    for k, (t, writer) in enumerate(zip(trials, writers)):
        try:
            result = ended[k] if k in ended else writer.close(status)
        except Exception as exc:               # recorded as run_trial records it
            result = {"status": Status.FAILED, "steps": population.trainer.step_count,
                      "error": one_line(exc)}
            atomic_write_json(writer.path / SUMMARY_FILE, {"run_id": writer.run_id, **result})
        result["wall_seconds"], result["cpu_seconds"] = wall, cpu
        charge(writer.path, wall)
        rows.append(make_row(t["config"], sweep_tag(t, sweep_id), result, writer.path))
    return rows


def charge(run_dir: Path, wall: float) -> None:
    """Record a member's share of the population's wall time in its summary.json (its writer wrote
    the whole population's), so that a table rebuilt from the run folders, as a resumed sweep or
    experiment rebuilds it, charges each trial what this pack's own table does."""
    from engine.runs.layout import SUMMARY_FILE
    from engine.runs.reader import try_read_json_object
    from engine.runs.writer import atomic_write_json

    summary = try_read_json_object(run_dir / SUMMARY_FILE)
    if summary is not None:
        atomic_write_json(run_dir / SUMMARY_FILE, {**summary, "wall_seconds": wall})


def alone(trials: list[dict], runs_root: str, sweep_id: str, threads: int | None,
          flush_interval: float) -> list[dict]:
    return [run_trial(t, runs_root, sweep_id, threads, flush_interval) for t in trials]


def discard(writers) -> None:
    """Remove the folders of a population that is run again member by member: they hold a
    partial run that the single runs replace, and a "running" summary no process would end."""
    for writer in writers:
        shutil.rmtree(writer.path, ignore_errors=True)


def member_record(record: dict, k: int) -> dict:
    """Member k's record in a single run's shape: the population's keys, in their order, with
    the member's values (its losses, accuracies and layers instead of the mean); no `members`."""
    mine = record["members"][k]
    return {key: mine.get(key, value) for key, value in record.items() if key != "members"}


class Population:
    """A population trainer and, for each member, the view a RunWriter writes it through."""

    def __init__(self, trainer, members: list[RunConfig]):
        self.trainer = trainer
        self.size = len(members)
        self.last: list[dict | None] = [None] * self.size      # each member's last record alive
        self.on_diverged = None                # called (member, DivergedError) as a member is left behind
        self._gone: set[int] = set()
        self.trainer.subscribe(self._remember)     # first: before any writer hears a record
        self.views = [MemberView(self, k, cfg) for k, cfg in enumerate(members)]
        self._template = None
        self._summary: tuple[int, dict] | None = None
        self._state: tuple[int, dict] | None = None
        self._final: list | None = None

    def _remember(self, record: dict) -> None:
        for k, member in enumerate(record["members"]):
            if math.isnan(member["diverged_step"]):
                self.last[k] = record
        self.diverged({k for k, step in enumerate(self.trainer.losses.at) if step is not None})

    def diverged(self, members: set[int]) -> None:
        """Hand each newly diverged member, with the error its single run would raise here, to
        `on_diverged`."""
        at = self.trainer.losses.at
        for k in sorted(members - self._gone):
            self._gone.add(k)
            if self.on_diverged is not None:
                self.on_diverged(k, DivergedError(at[k], self.trainer.divergence_hint(k)))

    def finish(self, skip: set[int] = frozenset()) -> None:
        """Every member's summary and checkpoint (but those in `skip`, closed already), before any
        member's folder is closed: one that cannot be made sends the whole pack to run alone,
        never half of it."""
        self._final = [None if k in skip else (self.summary(k), self.checkpoint(k)) for k in range(self.size)]

    def summary(self, k: int) -> dict:
        """Member k's Trainer.summary(): the population's, with the member's numbers."""
        if self._final is not None and self._final[k] is not None:
            return self._final[k][0]
        step = self.trainer.step_count
        if self._summary is None or self._summary[0] != step:
            self._summary = (step, self.trainer.summary())
        whole = self._summary[1]
        last = member_record(self.last[k], k) if self.last[k] else {"layers": []}
        mine = whole["members"][k]
        out = {key: value for key, value in whole.items() if key not in POPULATION_KEYS}
        out.update(test_accuracy=mine["test_accuracy"], test_loss=mine["test_loss"],
                   train_loss=last.get("train_loss", math.nan),
                   layers=[{"layer": i + 1, **layer} for i, layer in enumerate(last["layers"])])
        return out

    def checkpoint(self, k: int) -> dict:
        """Member k's Trainer.checkpoint(), as its single run would save it (its own copies)."""
        if self._final is not None and self._final[k] is not None:
            return self._final[k][1]
        step = self.trainer.step_count
        if self._state is None or self._state[0] != step:
            self._state = (step, self.trainer.checkpoint())
        return member_checkpoint({**self._state[1], "last_record": self.last[k]}, k, self.size, self.views[k].cfg,
                                 self.template())

    def template(self):
        """A single run of the members' settings, built once: what a member's state must fit."""
        if self._template is None:
            from engine.trainer import Trainer

            self._template = Trainer(self.views[0].cfg, dataset=self.trainer.data)
        return self._template


class MemberView:
    """Member k of a population as the single run it is, for a RunWriter: its config, records,
    summary and checkpoint; the steps, status and data are the population's."""

    def __init__(self, population: Population, k: int, cfg: RunConfig):
        self.population, self.k, self.cfg = population, k, cfg
        self.data = population.trainer.data

    @property
    def step_count(self) -> int:
        return self.population.trainer.step_count

    @property
    def status(self):
        return self.population.trainer.status

    def subscribe(self, callback, matrices: bool = False):
        # Records only: a RunWriter asks for no matrices, and the trainer's are member 0's. The
        # record that finds the member diverged is not its run's: that run stopped there.
        k = self.k

        def member(record):
            if math.isnan(record["members"][k]["diverged_step"]):      # NaN: not diverged
                callback(member_record(record, k))
        return self.population.trainer.subscribe(member)

    def unsubscribe(self, sub) -> None:
        self.population.trainer.unsubscribe(sub)

    def summary(self) -> dict:
        return self.population.summary(self.k)

    def checkpoint(self) -> dict:
        return self.population.checkpoint(self.k)


def member_checkpoint(state: dict, k: int, size: int, cfg: RunConfig, template) -> dict:
    """Member k of a population's checkpoint, in the single run's shapes.

    Members are stacked along the first axis of every tensor (engine/members.py), or have an axis
    of their own where the single run has none (a ridge solver's sums): each tensor is cut to the
    shape the single run `template` has there. The result is restored into `template`, which
    checks every shape, so a state that cannot be cut raises ValueError instead of being saved."""
    import torch

    params = [p.shape for p in template.model.parameters()]
    optimizer = state["optimizer"]
    out = {
        "config": cfg.to_dict(), "step": state["step"],
        "model": cut(state["model"], template.model.state_dict(), k, size),
        "optimizer": {**optimizer, "state": {
            i: {name: cut(v, torch.empty(params[int(i)], device="meta")
                          if isinstance(v, torch.Tensor) and v.dim() else v, k, size)
                for name, v in s.items()} for i, s in optimizer["state"].items()},
            # the population stepped at lr 1 where its members compare rates (optim.MemberRates)
            "param_groups": [{**g, "lr": cfg.lr} for g in copy.deepcopy(optimizer["param_groups"])]},
        "rule": cut(state["rule"], template.rule.state_dict(), k, size),
        "generators": {name: g[k].clone() for name, g in state["generators"].items()},
        "order": state["order"][k].clone(), "cursor": state["cursor"],
        "diverged_at": [state.get("diverged_at", [None] * size)[k]],
        "last_record": member_record(state["last_record"], k) if state.get("last_record") else None,
    }
    try:
        template.restore(out)
    except (RuntimeError, KeyError, IndexError, TypeError) as exc:   # load_state_dict's shape errors
        raise ValueError(f"member {k}'s state does not fit its single run: {one_line(exc)}") from None
    return out


def cut(value: Any, like: Any, k: int, size: int) -> Any:
    """Member k's part of `value` (tensors, nested in dicts and lists) with the shapes of `like`;
    values that are not tensors are the population's (a step count, a setting)."""
    import torch

    if isinstance(value, torch.Tensor):
        if not isinstance(like, torch.Tensor):
            raise ValueError(f"a tensor {tuple(value.shape)} where the single run has {type(like).__name__}")
        shape, want = tuple(value.shape), tuple(like.shape)
        if shape == want:                      # not stacked: shared by the members
            return value.clone()
        if want and shape == (size * want[0], *want[1:]):
            return value.reshape(size, want[0], *want[1:])[k].clone()
        if shape == (size, *want):
            return value[k].clone()
        raise ValueError(f"a tensor {shape} where the single run has {want} ({size} members)")
    if isinstance(value, dict):
        if not isinstance(like, dict) or set(value) != set(like):
            raise ValueError("a state whose keys are not the single run's")
        return {key: cut(v, like[key], k, size) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        if not isinstance(like, (list, tuple)) or len(value) != len(like):
            raise ValueError("a list of another length than the single run's")
        return type(value)(cut(v, w, k, size) for v, w in zip(value, like))
    return value
