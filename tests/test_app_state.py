"""The dashboard's state objects, without a browser: config ↔ URL, presets, inline messages,
the RunHandle lifecycle, and that a session's cleanup really stops its worker threads."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from conftest import wait_until

from engine.config import RunConfig
from engine.rules import RULES

from app.dashboard import SLOW_EVERY, Dashboard
from app.library import SavedRun, list_saved_runs, runs_frame
from engine.host.runner import RunHandle, SessionRuns
from app.presets import PRESETS, preset_config
from app.state import ConfigState, parse_width
from engine.labels import run_label

TINY = dict(dataset="digits", depth=1, width=8, steps=400, metric_interval=10, eval_interval=100,
            device="cpu")


def wait_for(predicate, timeout=20.0):
    return wait_until(predicate, timeout, interval=0.02)


# --------------------------------------------------------------------------- config and URL
def test_state_covers_every_runconfig_field():
    assert ConfigState.fields() == list(RunConfig().to_dict())
    for name in ConfigState.fields():
        assert name in ConfigState.param


def test_url_round_trip_reproduces_the_config():
    cfg = RunConfig(rule="fa", depth=3, width=[30, 20, 10], activation="tanh", sigma=0.02, lr=0.05,
                    seed=7, freeze_forward=True, feedback_mode="ridge", steps=1234)
    state = ConfigState()
    state.set_config(cfg)
    url = "http://localhost:5006/app?" + urlencode(state.to_query())
    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    restored = ConfigState()
    assert restored.update_from_query(query) == []
    assert restored.to_config().to_dict() == cfg.to_dict()


def test_url_with_a_few_settings_keeps_the_rest_at_defaults():
    state = ConfigState()
    state.update_from_query({"rule": "dfa", "depth": "3", "width": "40", "sigma": "0.05"})
    cfg = state.to_config()
    assert (cfg.rule, cfg.depth, cfg.width, cfg.sigma) == ("dfa", 3, 40, 0.05)
    assert cfg.lr == RunConfig().lr


def test_unreadable_url_values_are_reported_not_applied():
    state = ConfigState()
    bad = state.update_from_query({"depth": "abc", "freeze_forward": "maybe", "seed": "3"})
    assert sorted(bad) == ["depth", "freeze_forward"]
    assert state.seed == 3 and state.depth == 2
    # garbage a widget cannot show is refused too: an unknown choice, a control character,
    # a number that overflows; a readable but bad value (steps=-1) is applied, then named
    bad = state.update_from_query({"width": "abc", "rule": "%00", "model": "\x00", "steps": "-1",
                                   "sigma": "1e999", "depth": "٣", "lr": "1_0"})
    assert sorted(bad) == ["depth", "lr", "model", "rule", "sigma"]   # read as the CLI reads them
    assert state.rule == "np" and state.sigma == 0.01 and state.steps == -1
    assert "steps=-1" in state.error() or "width='abc'" in state.error()


def test_rule_choices_come_from_the_registry():
    assert list(ConfigState.param.rule.objects) == list(RULES)
    dash = Dashboard(sync_url=False)
    try:
        assert sorted(dash.inputs["rule"].values) == sorted(RULES)
    finally:
        dash.close()


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_configs(name):
    cfg = preset_config(name).validate()
    state = ConfigState()
    state.apply_preset(name)
    assert state.to_config().to_dict() == cfg.to_dict()


def test_paper_presets_use_the_paper_mlp():
    for name in ("Paper MLP: NP", "Paper MLP: FA", "Paper MLP: BP"):
        cfg = preset_config(name)
        assert (cfg.depth, cfg.widths(), cfg.activation, cfg.loss) == (2, [50, 20], "sigmoid", "mse")
    assert preset_config("Learn B only (frozen W)").freeze_forward
    assert preset_config("Noise-only ablation (FA + noise)").train_on_noise


@pytest.mark.parametrize("changes, words", [
    ({"width": "abc"}, "width='abc' is not allowed"),
    ({"width": "50,20,10"}, "width has 3 entries but depth is 2"),
    ({"sigma": 0.0, "rule": "np"}, "sigma=0.0 is not allowed for rule 'np'"),
    ({"lr": -0.1}, "lr=-0.1 is not allowed"),
    ({"depth": 0}, "depth=0 is not allowed"),
    ({"rule": "nonsense"}, "rule='nonsense' is not allowed"),
])
def test_bad_values_give_the_one_line_message(changes, words):
    state = ConfigState()
    state.param.update(**changes)
    message = state.error()
    assert message is not None and words in message and "\n" not in message


def test_parse_width():
    assert parse_width("50") == 50
    assert parse_width(" 50, 20 ") == [50, 20]
    for bad in ("", "abc", "50,,20", "5.5"):
        with pytest.raises(Exception, match="width="):
            parse_width(bad)


def test_run_label_says_what_differs():
    assert run_label(RunConfig(rule="np", sigma=0.01, depth=2, width=50, seed=0)) == \
        "np σ=0.01 d2 w50 lr=0.001 seed0"
    assert "σ" not in run_label(RunConfig(rule="fa"))
    assert "w50-20" in run_label(RunConfig(width=[50, 20]))
    # every setting that applies and differs from its default is named; the rest are not
    paper = run_label(preset_config("Paper MLP: NP"))
    assert all(part in paper for part in ("ridge B", "warm-up 1,000", "paper init", " sgd "))
    assert paper != run_label(RunConfig(rule="np"))
    assert run_label(RunConfig(rule="np", noise_draws=4, ridge_gamma=0.5)) == \
        "np σ=0.01 d2 w50 lr=0.001 K=4 seed0"             # ridge_gamma does not apply to sgd B
    assert "ridge_gamma=0.5" in run_label(RunConfig(rule="np", feedback_mode="ridge", ridge_gamma=0.5))


# --------------------------------------------------------------------------- the run handle
def test_run_handle_lifecycle_start_pause_step_resume_stop():
    run = RunHandle(RunConfig(**{**TINY, "steps": 10_000_000})).start()
    wait_for(lambda: run.status == "running" and run.step_count > 20)
    run.pause()
    wait_for(lambda: run.status == "paused")
    paused_at = run.step_count
    time.sleep(0.2)
    assert run.step_count == paused_at                         # paused means paused
    run.step_interval()                                        # one logging interval
    wait_for(lambda: run.step_count >= paused_at + run.cfg.metric_interval)
    time.sleep(0.2)
    assert run.step_count == paused_at + run.cfg.metric_interval
    assert run.status == "paused"
    run.resume()
    wait_for(lambda: run.step_count > paused_at + 3 * run.cfg.metric_interval)
    run.stop()
    assert run.join(5)
    assert run.status == "stopped" and not run.alive
    records = run.buffer.records()
    assert records and records[-1]["step"] <= run.step_count


def test_run_finishes_and_reports_records():
    run = RunHandle(RunConfig(**TINY)).start()
    assert run.join(30)
    assert run.status == "finished" and run.step_count == TINY["steps"]
    version, matrices = run.buffer.latest_matrices()
    assert version > 0 and matrices[0]["B"].shape == matrices[0]["WT"].shape
    step, first = run.buffer.first_matrices()      # the "B at the start" map: before step 1
    assert step == 0 and first[0]["B"].shape == matrices[0]["B"].shape
    assert not (first[0]["B"] == matrices[0]["B"]).all(), "B at step 0 is not B after training"


def test_live_change_is_validated_recorded_and_applied():
    run = RunHandle(RunConfig(**{**TINY, "steps": 10_000_000})).start()
    wait_for(lambda: run.ready)
    with pytest.raises(Exception, match="sigma"):
        run.set(sigma=-1.0)
    with pytest.raises(Exception, match="cannot change during a run"):
        run.set(depth=3)
    run.set(lr=0.02)
    assert run.changes[-1]["name"] == "lr" and run.changes[-1]["new"] == 0.02
    wait_for(lambda: any(r["lr"] == 0.02 for r in run.buffer.records()))
    run.stop()
    assert run.join(5)


def test_diverging_run_says_so_and_stops():
    cfg = RunConfig(**{**TINY, "rule": "bp", "optimizer": "sgd", "lr": 1e6, "activation": "linear",
                       "steps": 100_000})
    run = RunHandle(cfg).start()
    assert run.join(30)
    assert run.status == "diverged"
    assert "diverged" in run.error


def test_session_cleanup_stops_every_run_process():
    session = SessionRuns(max_runs=3)
    long = RunConfig(**{**TINY, "steps": 10_000_000})
    runs = [session.launch(long)[0] for _ in range(2)]
    assert not runs[0].active or runs[0].join(5)        # a new Start stops the previous run
    wait_for(lambda: runs[1].status == "running")
    session.stop_all()
    assert all(run.join(5) for run in runs)
    assert not any(run.alive for run in runs)


def test_a_stop_that_comes_before_the_start_is_not_lost():
    """A session's stop_all() can reach a run between its creation and its start (a tab closed
    as Start was pressed): the run must then never train."""
    run = RunHandle(RunConfig(**{**TINY, "steps": 10_000_000}))
    run.stop()
    run.start()
    assert run.status == "stopped" and not run.alive and run.join(1)


def test_comparison_is_bounded():
    session = SessionRuns(max_runs=2)
    runs = [session.launch(RunConfig(**TINY))[0] for _ in range(3)]
    assert [r.id for r in session.runs] == [r.id for r in runs[1:]]
    session.stop_all()
    assert all(r.join(10) for r in runs)


# --------------------------------------------------------------------------- the dashboard object
def test_dashboard_start_pull_stop_and_close_without_a_browser():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    assert run is not None
    wait_for(lambda: len(run.buffer) > 3)
    dash._pull()
    assert dash.curves.length(run.id) > 0
    for _ in range(5):                     # the slow path: heatmaps and status
        dash._pull()
    assert dash.heatmaps.version > 0
    assert run.label in dash.status.object
    dash.close()                           # what on_session_destroyed calls
    assert run.join(5) and run.status == "stopped"


def test_dashboard_bad_value_shows_message_and_starts_nothing():
    dash = Dashboard(sync_url=False)
    try:
        dash.state.width = "abc"
        assert dash.config_alert.visible and "width='abc'" in dash.config_alert.object
        assert dash._on_start() is None
        assert dash.session.runs == []
    finally:
        dash.close()


def test_dashboard_live_sigma_change_is_marked_on_the_plots():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    try:
        wait_for(lambda: run.ready and run.step_count > 0)
        asked_at = run.step_count
        dash.state.sigma = 0.05
        # The marker comes from the records: at the first one that carries the new σ.
        wait_for(lambda: dash._pull() or dash.curves.changes.data["step"])
        assert dash.curves.changes.data["step"]            # a vertical marker where it changed
        assert "sigma" in dash.curves.changes.data["what"][0]
        step = dash.curves.changes.data["step"][0]
        assert step >= asked_at and run.buffer.records()[-1]["step"] >= step
        records = run.buffer.records()                     # (thinned when long: compare around)
        assert all(r["sigma"] == 0.05 for r in records if r["step"] >= step)
        assert all(r["sigma"] == 0.01 for r in records if r["step"] < step)
        assert "σ=0.05" in run.label and "σ=0.01" not in run.label   # the σ the run now uses
        wait_for(lambda: dash._pull() or "σ=0.05" in dash.run_status.run_legend.object)
        legend = dash.curves.figures["loss"].legend[0].items
        assert any("σ=0.05" in str(getattr(item.label, "value", item.label)) for item in legend)
        dash.state.sigma = -1.0                            # refused live, with the message
        assert dash.config_alert.visible and "sigma" in dash.config_alert.object
    finally:
        dash.close()
        run.join(5)


def test_several_live_settings_at_once_reach_the_run():
    """A link or a preset sets σ, lr and feedback_lr in one batched update (one callback with
    several events): every one of them reaches the running run."""
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    try:
        wait_for(lambda: run.ready)
        dash.state.param.update(sigma=0.02, lr=0.03, feedback_lr=0.7)
        assert {(c["name"], c["new"]) for c in run.changes} == {("sigma", 0.02), ("lr", 0.03), ("feedback_lr", 0.7)}
        # The run's records carry them (the handle's cfg stays the set-up it started with).
        wait_for(lambda: any((r["sigma"], r["lr"], r["feedback_lr"]) == (0.02, 0.03, 0.7)
                             for r in run.buffer.records()), 60)
        assert not dash.config_alert.visible
    finally:
        dash.close()
        run.join(5)


def test_export_and_loading_saved_runs(tmp_path, monkeypatch):
    run = RunHandle(RunConfig(**TINY)).start()
    assert run.join(30)
    frame = runs_frame([run])
    assert {"run", "step", "train_loss", "weight_angle_deg_1", "rule", "seed"} <= set(frame.columns)
    # A run folder as engine/runs/writer.py writes it: config.json + metrics.parquet.
    folder = tmp_path / "runs" / "20260101-np-seed0"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(run.cfg.to_dict()))
    frame.drop(columns=["run"]).to_parquet(folder / "metrics.parquet")
    monkeypatch.setenv("CREDITLAB_RUNS", str(tmp_path / "runs"))
    listed = list_saved_runs()
    assert list(listed.values()) == [str(folder)]
    saved = SavedRun(folder)
    assert saved.step_count == TINY["steps"] and saved.n_layers() == 1
    dash = Dashboard(sync_url=False)
    try:
        dash.saved_select.value = str(folder)
        dash._on_load_saved()
        assert dash.curves.has_run(saved.id) and dash.curves.length(saved.id) == len(frame)
        assert len(dash.frame()) == len(frame)
    finally:
        dash.close()


# ------------------------------------------------------------ the sidebar, from the Settings
def test_sidebar_shows_every_setting_under_its_group_with_its_label_and_doc():
    from engine.config import settings

    from app.sidebar import ALL

    dash = Dashboard(sync_url=False)
    try:
        dash.controls.mode.value = ALL          # (story mode, the default, puts most under "Advanced")
        texts = [getattr(o, "object", None) for o in dash.sidebar.objects]
        for name, s in settings().items():
            widget = dash.inputs[name]
            assert widget in dash.sidebar.objects and widget.label == s.label, name
            assert getattr(widget, "description", s.doc) == s.doc, name     # a checkbox has none
            heading = max(i for i, t in enumerate(texts) if isinstance(t, str) and t.startswith("####")
                          and i < dash.sidebar.objects.index(widget))
            assert texts[heading] == f"#### {s.group}", name
        assert dash.inputs["rule"].options["NP-DFA: node perturbation (learned direct B)"] == "np-dfa"
    finally:
        dash.close()


@pytest.mark.parametrize("changes, shown, hidden", [
    ({"rule": "bp"}, ["lr", "train_on_noise"], ["sigma", "feedback_lr", "noise_draws", "weight_decay"]),
    ({"rule": "bp", "train_on_noise": True}, ["sigma"], ["feedback_mode"]),
    ({"rule": "np"}, ["sigma", "feedback_lr", "feedback_normalize", "control_variate", "perturb"],
     ["ridge_gamma", "ridge_forget", "weight_decay", "train_on_noise", "teacher"]),
    ({"rule": "np", "feedback_mode": "ridge"}, ["ridge_gamma", "ridge_relative", "ridge_forget"],
     ["feedback_lr", "feedback_normalize", "control_variate"]),
    ({"rule": "sg"}, ["feedback_lr", "train_on_noise"], ["sigma", "noise_draws", "antithetic"]),
    ({"rule": "kp", "optimizer": "adam"}, ["weight_decay"], ["momentum", "feedback_lr"]),
    ({"dataset": "teacher"}, ["teacher"], []),
])
def test_only_the_settings_that_matter_are_shown(changes, shown, hidden):
    dash = Dashboard(sync_url=False)
    try:
        dash.state.param.update(**changes)
        for name in shown:
            assert dash.inputs[name].visible, name
        for name in hidden:
            assert not dash.inputs[name].visible, name
    finally:
        dash.close()


# ------------------------------------------------------------ number boxes: typed text, read strictly
@pytest.mark.parametrize("name, text, allowed, good", [
    ("lr", "nan", "it must be a finite number >= 0 and <= 1e+06", 0.01),
    ("lr", "inf", "it must be a finite number", 0.01),
    ("lr", "1e999", "it must be a finite number", 0.01),
    ("lr", "abc", "it must be a finite number", 0.01),
    ("sigma", "", "it must be a finite number", 0.02),
    ("depth", "1.5", "it must be an integer", 2),          # (2: the default width has 2 layers)
])
def test_a_number_box_refuses_what_is_not_a_number_and_start_refuses_too(name, text, allowed, good):
    """Bokeh's number inputs dropped "nan" in the browser: the old value stayed and Start ran with
    it. The box is text, read on the server: the message names it, the value stays, Start refuses."""
    dash = Dashboard(sync_url=False)
    try:
        before = getattr(dash.state, name)
        dash.inputs[name].value = text
        message = dash.config_alert.object
        assert dash.config_alert.visible and f"{name}={text!r} is not allowed; {allowed}" in message
        assert "\n" not in message
        assert getattr(dash.state, name) == before
        assert dash.inputs[name].value == text                 # the box keeps what was typed
        assert dash._on_start() is None and dash.session.runs == []
        assert f"Not started:** {name}={text!r}" in dash.config_alert.object
        dash.inputs[name].value = str(good)                    # fixed: applied, message gone
        assert getattr(dash.state, name) == good and not dash.config_alert.visible
    finally:
        dash.close()


def test_a_number_box_shows_values_set_from_code_and_they_replace_a_bad_entry():
    dash = Dashboard(sync_url=False)
    try:
        lr, depth = dash.inputs["lr"], dash.inputs["depth"]
        assert (lr.value, depth.value) == ("0.001", "2")
        lr.value = "nan"
        dash.preset.value = "Paper MLP: NP"                    # a preset: its lr, in the box
        assert lr.value == "0.05" and dash.state.unreadable == {} and not dash.config_alert.visible
        depth.value = "x"
        dash.state.set_config({"depth": 2})                    # the same value, set from code
        assert depth.value == "2" and dash.state.error() is None
        dash.state.update_from_query({"seed": "7", "sigma": "0.02"})     # a link
        assert (dash.inputs["seed"].value, dash.inputs["sigma"].value) == ("7", "0.02")
        lr.value = "1e-3"                                      # any spelling of a number
        assert dash.state.lr == 0.001 and lr.value == "1e-3"
    finally:
        dash.close()


def test_a_number_typed_into_a_live_box_reaches_the_running_run():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "rule": "np", "steps": 10_000_000}))
    run = dash._on_start()
    try:
        wait_for(lambda: run.ready)
        dash.inputs["lr"].value = "0.03"
        dash.inputs["sigma"].value = "nan"                     # refused: the run keeps its σ
        assert [(c["name"], c["new"]) for c in run.changes] == [("lr", 0.03)]   # σ kept its 0.01
        wait_for(lambda: any((r["lr"], r["sigma"]) == (0.03, 0.01) for r in run.buffer.records()), 60)
        assert "sigma='nan' is not allowed" in dash.config_alert.object
    finally:
        dash.close()
        run.join(5)


def test_saved_run_list_names_interrupted_and_unreadable_runs(tmp_path):
    import socket

    good = tmp_path / "20260101-000000-np-s0-aaaa"
    good.mkdir()
    (good / "config.json").write_text(json.dumps(RunConfig(**TINY).to_dict()))
    (good / "metrics.parquet").write_bytes(b"")
    # written by a process that has gone (pid 2**22 + 1 is above Linux's pid limit)
    (good / "summary.json").write_text(json.dumps({"status": "running", "steps": 1200,
                                                   "pid": 2**22 + 1, "host": socket.gethostname()}))
    bad = tmp_path / "20260101-000001-np-s0-bbbb"
    bad.mkdir()
    (bad / "config.json").write_text("[]")
    (bad / "metrics.parquet").write_bytes(b"")
    names = list(list_saved_runs(tmp_path))
    assert any(n.startswith(good.name) and n.endswith("(interrupted at step 1,200)") for n in names)
    assert f"{bad.name}: unreadable: config.json: holds an array, not a JSON object" in names


def test_status_line_shows_test_accuracy_and_a_steadier_train_accuracy():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 300, "eval_interval": 100}))
    run = dash._on_start()
    try:
        assert run.join(120)
        dash._pull()
        dash.run_status.refresh()
        line = dash.status.object
        test = run.buffer.last_eval()
        assert test["step"] == 300 and f"test accuracy {test['test_accuracy']:.1%}" in line, line
        assert "(last 10 logged batches)" in line, line
    finally:
        dash.close()


# ------------------------------------------------------------ story mode: a lesson on a projector
def test_the_story_presets_come_first_in_order_and_every_preset_has_one_sentence():
    from app.presets import PRESET_NOTES, STORY

    assert list(PRESETS)[:4] == list(STORY) and [n[:2] for n in STORY] == ["1.", "2.", "3.", "4."]
    for name in ["(custom)", *PRESETS]:
        note = PRESET_NOTES[name]
        assert note.endswith(".") and "\n" not in note and len(note) < 240, name
    fa, learn_b, np_trains, conv = (preset_config(name) for name in STORY)
    assert fa.rule == "fa"
    assert learn_b.to_dict() == preset_config("Learn B only (frozen W)").to_dict() and learn_b.freeze_forward
    assert np_trains.to_dict() == preset_config("Paper MLP: NP").to_dict()
    assert conv.model == "conv-small" and conv.dataset == "digits" and conv.rule == "np"


def test_story_mode_shows_the_lesson_settings_and_keeps_the_rest_bound_under_advanced():
    from app.sidebar import ALL, STORY, STORY_SETTINGS

    dash = Dashboard(sync_url=False)
    try:
        controls = dash.controls
        assert controls.mode.value == STORY                     # the default on first load
        top = dash.sidebar.objects
        assert top[:2] == [controls.mode, controls.preset] and controls.advanced in top
        assert top.index(controls.preset_note) == 2
        for name in STORY_SETTINGS:
            assert dash.inputs[name] in top, name
        assert controls.advanced.collapsed
        rest = [n for n in ConfigState.fields() if n not in STORY_SETTINGS]
        assert all(dash.inputs[n] in controls.advanced.objects for n in rest)
        dash.inputs["seed"].value = "5"                          # still bound, under Advanced
        assert dash.state.seed == 5
        controls.mode.value = ALL
        assert controls.advanced not in dash.sidebar.objects
        assert all(dash.inputs[n] in dash.sidebar.objects for n in ConfigState.fields())
        controls.mode.value = STORY
        assert dash.inputs["seed"] in controls.advanced.objects and dash.state.seed == 5
        assert dash.inputs["seed"].value == "5"
    finally:
        dash.close()


def test_a_preset_shows_its_sentence_and_a_hand_edit_makes_it_custom():
    from app.presets import PRESET_NOTES

    dash = Dashboard(sync_url=False)
    try:
        name = "1. Feedback alignment: B is random, fixed"
        dash.preset.value = name
        assert PRESET_NOTES[name] in dash.controls.preset_note.object
        assert dash.state.rule == "fa" and not dash.inputs["sigma"].visible      # FA has no noise
        dash.inputs["depth"].value = "3"
        dash.inputs["width"].value = "30"
        assert dash.preset.value == "(custom)"
        assert PRESET_NOTES["(custom)"] in dash.controls.preset_note.object
    finally:
        dash.close()


def test_the_conv_preset_hides_the_mlp_shape_and_start_lists_the_conv_layers():
    dash = Dashboard(sync_url=False)
    dash.preset.value = "4. Conv nets"
    run = None
    try:
        assert not dash.inputs["depth"].visible and not dash.inputs["width"].visible
        assert "conv 16" in dash.plots.network.pane.object          # the picture: its own layers
        dash.state.steps = 10_000_000
        run = dash._on_start()
        assert run is not None and len(dash.layer_select.options) == 3
        assert dash.curves._runs[run.id]["n_layers"] == 3
        wait_for(lambda: len(run.buffer) > 0, timeout=60)
        assert len(run.buffer.tail(1)[0]["layers"]) == 3        # the engine agrees: three hidden layers
    finally:
        dash.close()
        if run is not None:
            run.join(10)


def test_every_widget_with_a_tooltip_shows_its_settings_plain_doc():
    from engine.config import settings

    dash = Dashboard(sync_url=False)
    try:
        for name, s in settings().items():
            widget = dash.inputs[name]
            if "description" in widget.param:
                assert widget.description == s.doc, name
        assert dash.inputs["rule"].description and dash.inputs["width"].description
    finally:
        dash.close()


# ------------------------------------------------------------ the sweep form's integer boxes
def test_an_integer_box_names_a_bad_entry_instead_of_reverting_it():
    from app.int_box import IntBox

    box = IntBox("samples", "Samples", 6, start=1, end=48)
    box.box.value = "abc"
    assert box.value == 6 and box.error == "samples='abc' is not allowed; it must be an integer, in digits"
    assert box.message.visible and box.message.object == box.error and box.box.value == "abc"
    box.box.value = "100"
    assert box.value == 6 and "samples=100 is not allowed; it must be an integer >= 1 and <= 48" in box.error
    box.box.value = "12"
    assert box.value == 12 and box.error == "" and not box.message.visible
    box.box.value = "2.5"
    box.value = 3                                          # set from code: shown, message gone
    assert box.box.value == "3" and box.error == "" and not box.message.visible


def test_the_sweep_form_refuses_to_start_with_a_bad_integer(tmp_path):
    from app.sweep_view import SweepView

    view = SweepView(tmp_path)
    try:
        view.form_steps.box.value = "ten"
        view._on_start()
        assert view.handle is None
        assert view.form_message.object == "Not started: steps='ten' is not allowed; it must be an integer, in digits"
        assert view.form_steps.message.visible
    finally:
        view.close()


# --------------------------------------------------------------------------- pacing the page
def test_the_page_pace_holds_a_batch_until_the_last_one_is_drawn_and_rested(monkeypatch):
    from app import pace as pace_module
    from app.pace import PagePace

    now = [100.0]
    monkeypatch.setattr(pace_module.time, "monotonic", lambda: now[0])
    pace = PagePace(patience_s=5.0, rest=1.0)
    assert pace.ready()                       # a page whose script does not run is never waited on
    pace.mark_sent()
    assert pace.ready() and pace.sent == 1
    pace.answering = True                     # the script runs: from now on it is paced
    assert not pace.ready()                   # batch 1 waits for the page, before any answer
    now[0] += 0.3
    pace.param.update(took_ms=250.0, drawn=1)   # the page answers
    now[0] += 0.25
    pace.mark_sent()
    assert not pace.ready()                   # batch 2 out, not drawn yet
    now[0] += 0.9
    assert not pace.ready()
    pace.param.update(took_ms=600.0, drawn=2)   # the page painted it in 0.6 s of its own
    assert not pace.ready()                   # and rests as long as it worked
    now[0] += 0.59
    assert not pace.ready()
    now[0] += 0.02
    assert pace.ready()
    pace.mark_sent()
    now[0] += 4.99
    assert not pace.ready()
    now[0] += 0.02                            # no answer (a hidden tab paints no frames):
    assert pace.ready()                       # one batch per patience_s all the same


def test_a_dashboard_sends_nothing_while_the_page_draws_and_loses_no_record():
    dash = Dashboard(sync_url=False)
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    try:
        dash.pace.rest = 0.0                  # (the rest after a batch: the test above)
        new = lambda: run.buffer.since(0)[1] > dash.plots._cursors[run.id]   # noqa: E731
        wait_for(lambda: len(run.buffer) > 3)
        dash.pace.answering = True            # the page runs the pace's script: pacing is on
        dash._pull()
        assert dash.pace.sent == 1
        dash.pace.drawn = 1                   # the page has drawn batch 1
        wait_for(new)
        dash._pull()
        sent = dash.pace.sent
        assert sent == 2
        dash.pace.patience_s = 3600.0
        wait_for(new)
        before = dash.curves.length(run.id)
        for _ in range(20):
            dash._pull()
        assert dash.pace.sent == sent and dash.curves.length(run.id) == before   # held back
        dash.pace.drawn = sent
        dash._pull()
        assert dash.pace.sent == sent + 1 and dash.curves.length(run.id) > before
        records = [r["step"] for r in run.buffer.records()]
        assert list(dash.curves._runs[run.id]["curves"].data["step"]) == records[:dash.curves.length(run.id)]
    finally:
        dash.close()


def test_the_spare_curves_are_built_a_figure_at_a_time_and_a_new_run_takes_them():
    dash = Dashboard(sync_url=False)
    assert dash.curves.has_spare                      # made with the page, whole
    dash.state.set_config(RunConfig(**{**TINY, "steps": 10_000_000}))
    run = dash._on_start()
    try:
        assert not dash.curves.has_spare              # the run took it
        wait_for(lambda: len(run.buffer) > 3)
        counts = lambda: [len(f.renderers) for f in dash.curves.figures.values()]   # noqa: E731
        grown = []
        for _ in range(20 * SLOW_EVERY):
            before = counts()
            dash._pull()
            grown.append(sum(b != a for b, a in zip(before, counts())))
            if dash.curves.has_spare:
                break
        # One figure per slow pull: each change makes the page lay itself out again.
        assert dash.curves.has_spare and max(grown) == 1
        assert sum(grown) == len(dash.curves.figures)
        spare = dash.curves._spare
        assert spare["curves"].name.startswith("spare-")
        before = counts()
        second = dash._on_start()                     # the next run takes it, and no new renderers
        assert dash.curves._runs[second.id]["curves"] is spare["curves"]
        assert counts() == before
    finally:
        dash.close()
