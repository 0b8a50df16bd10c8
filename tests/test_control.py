"""The one run loop (engine/control.py): commands between steps, from another thread."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from engine import RunConfig, Trainer
from engine.status import ACTIVE, FINAL, Status
from engine.control import Control, drive

TIMEOUT = 120          # generous: a loaded machine may take seconds per hundred steps


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


class Reports:
    """Every (status, step) the loop reports, with an event per status."""

    def __init__(self):
        self.seen: list[tuple[Status, int]] = []
        self.events = {s: threading.Event() for s in Status}

    def __call__(self, status, step):
        self.seen.append((status, step))
        self.events[status].set()

    def wait(self, status):
        assert self.events[status].wait(TIMEOUT), f"never {status}: {self.seen}"
        self.events[status].clear()


@pytest.fixture
def looped():
    """A long FA run in a thread under a Control; stopped and joined at teardown."""
    trainer = Trainer(RunConfig(rule="fa", steps=10**6, metric_interval=50))
    control, reports = Control(), Reports()
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault(
        "status", drive(trainer, control, report=reports)), daemon=True)
    worker.start()
    yield trainer, control, reports, worker, result
    control.stop()
    worker.join(TIMEOUT)


def test_pause_resume_and_stop_from_another_thread(looped):
    trainer, control, reports, worker, result = looped
    reports.wait(Status.RUNNING)
    _wait(lambda: trainer.step_count > 5, "the run did not step")
    control.pause()
    reports.wait(Status.PAUSED)
    paused_at = trainer.step_count
    time.sleep(0.2)
    assert trainer.status == Status.PAUSED and trainer.step_count == paused_at
    control.resume()
    reports.wait(Status.RUNNING)
    _wait(lambda: trainer.step_count > paused_at, "the run did not resume")
    control.stop()
    worker.join(TIMEOUT)
    assert not worker.is_alive() and result["status"] == Status.STOPPED == trainer.status
    assert reports.seen[-1] == (Status.STOPPED, trainer.step_count)


def test_step_to_pauses_at_the_target_and_stop_ends_a_paused_run(looped):
    trainer, control, reports, worker, result = looped
    control.pause()
    reports.wait(Status.PAUSED)
    target = trainer.step_count + 37
    control.step_to(target)
    _wait(lambda: reports.seen[-1] == (Status.PAUSED, target), f"did not rest at {target}")
    assert trainer.step_count == target
    control.stop()                              # a paused run wakes to see it
    worker.join(TIMEOUT)
    assert result["status"] == Status.STOPPED and trainer.step_count == target


def test_set_reaches_the_next_step_and_its_records():
    trainer = Trainer(RunConfig(rule="np", steps=100, metric_interval=10))
    commands: queue.SimpleQueue = queue.SimpleQueue()
    records = []

    def on_record(record):
        records.append(record)
        if record["step"] == 40:
            commands.put(("set", {"sigma": 0.05, "lr": 0.002}))

    assert drive(trainer, commands, on_record=on_record) == Status.FINISHED
    sigma = {r["step"]: r["sigma"] for r in records}
    assert sigma[40] == trainer.cfg.__class__().sigma and sigma[50] == 0.05
    assert trainer.optimizer.param_groups[0]["lr"] == 0.002 == trainer.cfg.lr


def test_live_holds_exactly_the_settings_that_may_change_live():
    import dataclasses

    from engine.config import LIVE_FIELDS
    from engine.live import Live
    assert [f.name for f in dataclasses.fields(Live)] == list(LIVE_FIELDS)


def test_a_live_value_reaches_the_rule_as_an_argument_of_its_step(monkeypatch):
    """`set` changes the trainer's `live` between steps, and the rule is handed it with each
    step: the σ the noise is drawn with and the feedback_lr the regression steps with are the
    ones the step's record carries; no copy of either is kept by the rule or its solver."""
    trainer = Trainer(RunConfig(rule="np", steps=30, metric_interval=10))
    rule, drawn, rates = trainer.rule, [], []
    sample_noise, update = rule.sample_noise, rule.regression.update
    monkeypatch.setattr(rule, "sample_noise",
                        lambda x, sigma, sites=None: (drawn.append(sigma), sample_noise(x, sigma, sites))[1])
    monkeypatch.setattr(rule.regression, "update", lambda inputs, targets, feedback_lr, *a, **k: (
        rates.append(feedback_lr), update(inputs, targets, feedback_lr, *a, **k))[1])
    for _ in range(10):
        trainer.step()
    trainer.set(sigma=0.05, feedback_lr=0.5)
    assert trainer.live.sigma == RunConfig().sigma                     # not before the next step
    record = [trainer.step() for _ in range(10)][-1]
    assert record["sigma"] == drawn[-1] == 0.05 and record["feedback_lr"] == rates[-1] == 0.5
    assert drawn[:10] == [RunConfig().sigma] * 10 and rates[:10] == [RunConfig().feedback_lr] * 10
    assert rule.live.sigma == RunConfig().sigma          # the rule's own default is not the run's


def test_a_budget_is_finished_and_a_partial_run_is_paused():
    trainer = Trainer(RunConfig(rule="bp", steps=30, metric_interval=10))
    reports = Reports()
    assert drive(trainer, steps=20, report=reports) == Status.PAUSED
    assert trainer.step_count == 20
    assert drive(trainer, report=reports) == Status.FINISHED and trainer.step_count == 30
    assert [s for s, _ in reports.seen] == [Status.RUNNING, Status.PAUSED, Status.RUNNING,
                                             Status.FINISHED]


def test_polling_every_few_steps_still_sees_every_command():
    trainer = Trainer(RunConfig(rule="bp", steps=10**6, metric_interval=50))
    commands: queue.SimpleQueue = queue.SimpleQueue()
    commands.put(("step", 13))
    commands.put(("stop", None))
    assert drive(trainer, commands, poll_every=8) == Status.STOPPED
    assert trainer.step_count == 0              # both read before the first step: stop wins


def test_an_unknown_command_is_an_error_not_ignored():
    trainer = Trainer(RunConfig(rule="bp", steps=10))
    commands: queue.SimpleQueue = queue.SimpleQueue()
    commands.put(("jump", 3))
    with pytest.raises(ValueError, match="unknown run command 'jump'"):
        drive(trainer, commands)
    assert trainer.status == Status.FAILED


def test_status_is_one_vocabulary_of_plain_words():
    assert ACTIVE.isdisjoint(FINAL)
    assert set(Status) == ACTIVE | FINAL | {Status.READY}
    assert Status.FAILED == "failed" and f"{Status.STOPPED}" == "stopped"
    assert Status("interrupted") in FINAL
