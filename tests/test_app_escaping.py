"""Text from outside (a link's values, run folders and their files, sweep.json, messages that
quote them) reaches the page as literal text: never as markup, never as script.

Each pane is rendered as the browser gets it (Panel's markdown → HTML), parsed, and checked for
tags and attributes that only markup could have made, and for the payload as visible text.
"""

from __future__ import annotations

import html
import json
import os
import socket
from html.parser import HTMLParser

import pandas as pd
import panel as pn
import pytest

from engine.config import RunConfig
from engine.status import Status

from app.dashboard import Dashboard
from app.library import list_saved_runs
from app.run_status import display_name
from engine.host.runner import RunHandle
from app.safe_text import plain
from app.state import ConfigState

PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    '<svg onload="window.__xss=1">',
    "[x](javascript:window.__xss=1)",
    '"><script>window.__xss=1</script>',
    "<a href='javascript:window.__xss=1'>x</a>",
    "&lt;b&gt;entity&lt;/b&gt; **bold** _em_ `code` ~~gone~~ $$x$$ ![i](x.png)",
    "# heading",
    "- [ ] task | a | b |",
    "1. item",
    "<javascript:window.__xss=1> http://example.com",
]
IMG, SVG = PAYLOADS[0], PAYLOADS[1]
# What markdown makes of plain text, and what the trusted parts of a message use.
ALLOWED_TAGS = {"p", "strong", "em", "code", "br", "div", "span", "i", "svg", "line", "rect", "text"}


class _Parsed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.chunks.append(data)


def rendered(pane) -> _Parsed:
    """The pane's HTML as the browser's innerHTML receives it, parsed."""
    wire = pane._transform_object(pane.object)["object"]      # Panel escapes it once for the wire
    parsed = _Parsed()
    parsed.feed(html.unescape(wire))
    parsed.close()
    return parsed


def text_of(pane) -> str:
    return " ".join("".join(rendered(pane).chunks).split())


def assert_inert(pane) -> None:
    """No tag that plain text would not make, no script attributes, no links, no images, no math
    or bare links made in the browser."""
    parsed = rendered(pane)
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, (tag, attrs, pane.object)
        assert not any(name.startswith("on") or name in ("href", "src") for name in attrs), (tag, attrs)
    if isinstance(pane, pn.pane.Markdown):
        assert pane.disable_math and pane.renderer_options.get("linkify") is False


def shows(pane, text: str) -> bool:
    return " ".join(text.split()) in text_of(pane)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("CREDITLAB_RUNS", str(root))
    return root


def link(monkeypatch, query: dict[str, list[bytes]]) -> None:
    """Pretend the session was opened by a link with this query (what Tornado hands Panel)."""
    monkeypatch.setattr(type(pn.state), "session_args", property(lambda self: query))


def write_run(folder, config: dict | None = None, metrics=True) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**RunConfig(depth=1, width=4).to_dict(), **(config or {})}))
    if metrics:
        # (bytes: pyarrow cannot open a path that is not UTF-8)
        (folder / "metrics.parquet").write_bytes(pd.DataFrame({"step": [0, 10], "train_loss": [1.0, 0.5]}).to_parquet())


# ---------------------------------------------------------------- the helpers
@pytest.mark.parametrize("payload", PAYLOADS + ["a\n\n    code\n---", "\udcff\x00\u202e end"])
def test_markdown_text_shows_any_text_literally(payload):
    from app.safe_text import md_text, text_pane

    pane = text_pane(f"**Bold:** {md_text(payload)}")
    assert_inert(pane)
    assert [t for t, _ in rendered(pane).tags] == ["p", "strong"]
    assert text_of(pane) == "Bold: " + plain(payload)
    (plain(payload)).encode("utf-8")                  # the page's JSON can carry it


def test_markdown_text_leaves_ordinary_messages_as_they_were():
    from app.safe_text import md_text

    for message in ("lr='nan' is not allowed; it must be a finite number >= 0 and <= 1e+06",
                    "np σ=0.01 d2 w50-20 lr=0.001 ridge_gamma=0.5 warm-up 1,000 seed0",
                    "samples='abc' is not allowed; it must be an integer, in digits"):
        assert md_text(message) == message


def test_a_code_span_holds_any_text():
    from app.safe_text import md_code, text_pane

    for payload in PAYLOADS + ["``tick`` `"]:
        pane = text_pane(f"in {md_code(payload)} now")
        assert_inert(pane)
        assert text_of(pane) == f"in {plain(payload)} now"


# ---------------------------------------------------------------- a link's values
@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_setting_of_a_link_is_shown_as_text(monkeypatch, payload):
    fields = ConfigState.fields()
    link(monkeypatch, {name: [payload.encode()] for name in fields} | {"mode": [payload.encode()]})
    dash = Dashboard(sync_url=True)
    try:
        alert = dash.config_alert
        assert alert.visible
        assert_inert(alert)
        shown = text_of(alert)
        refused = [name for name in fields if f"{name}={payload!r}" in shown]
        # Every setting but width (free text, refused by the check after it) is named as unreadable.
        assert set(fields) - set(refused) <= {"width"}, set(fields) - set(refused)
        assert f"width={payload!r} is not allowed" in shown
    finally:
        dash.close()


def test_a_link_with_bytes_that_are_not_utf8_is_named_not_fatal(monkeypatch):
    link(monkeypatch, {"depth": [b"\xff<b>x</b>"], "mode": [b"\xff"]})
    dash = Dashboard(sync_url=True)
    try:
        assert_inert(dash.config_alert)
        assert shows(dash.config_alert, "depth='\\udcff<b>x</b>'")
    finally:
        dash.close()


def test_the_messages_of_start_show_a_typed_value_as_text():
    dash = Dashboard(sync_url=False)
    try:
        payload = PAYLOADS[0]
        dash.inputs["width"].value = payload
        assert_inert(dash.config_alert)
        assert shows(dash.config_alert, f"Setting not allowed: width={payload!r}")
        assert dash._on_start() is None
        assert_inert(dash.config_alert)
        assert shows(dash.config_alert, f"Not started: width={payload!r}")
    finally:
        dash.close()


# ---------------------------------------------------------------- runs: labels, errors, legend
def test_a_runs_label_and_error_are_text_in_the_status_the_alert_the_legend_and_the_list():
    dash = Dashboard(sync_url=False)
    try:
        payload = PAYLOADS[3]
        run = RunHandle(RunConfig(depth=1, width=4), label=payload)      # inert: never started
        run.status, run.error = Status.FAILED, PAYLOADS[0]
        dash.session.runs.append(run)
        dash.plots.add_run(run, display_name(run), 1, steps=10)
        dash.run_status.refresh()
        dash._refresh_run_list()
        for pane in (dash.status, dash.run_alert, dash.run_status.run_legend):
            assert_inert(pane)
        assert shows(dash.status, f"#{run.id} {payload}")
        assert shows(dash.run_alert, f"Run stopped: {PAYLOADS[0]}")
        assert shows(dash.run_status.run_legend, f"#{run.id} {payload}")
    finally:
        dash.close()


# ---------------------------------------------------------------- run folders
def test_run_folders_with_hostile_names_and_contents_are_listed_and_loaded_as_text(runs):
    write_run(runs / SVG)
    write_run(runs / "[x](javascript:window.__xss=1)", {"optimizer": IMG})
    write_run(runs / "rule-<i>x", {"rule": IMG})   # not a rule
    write_run(runs / "huge-pid")
    (runs / "huge-pid" / "summary.json").write_text(json.dumps({"status": "running", "pid": 2**80,
                                                                "host": socket.gethostname()}))
    write_run(runs / os.fsdecode(b"not-utf8-\xff"))
    write_run(runs / "broken", metrics=False)
    (runs / "broken" / "metrics.parquet").write_text(IMG)

    listed = list_saved_runs()
    assert len(listed) == 6
    for label in listed:
        label.encode("utf-8")                              # the page's JSON can carry each label
        assert label.isprintable()
    dash = Dashboard(sync_url=False)                        # the page is built, whatever is on disk
    try:
        for folder in listed.values():
            dash.saved_select.value = folder
            dash._on_load_saved()
            assert_inert(dash.run_alert)
            if dash.run_alert.visible:
                assert shows(dash.run_alert, f"Could not load {plain(folder)}"), text_of(dash.run_alert)
            dash.run_alert.visible = False
        # All but the unknown rule and the broken table (the folder that is not UTF-8 too, where
        # the engine's reader cannot open its path: then the alert names it, checked above).
        loaded = {run.label.rsplit(" [", 1)[-1] for run in dash.session.runs}
        assert {f"{SVG}]", "[x](javascript:window.__xss=1)]", "huge-pid]"} <= loaded
        assert not {"rule-<i>x]", "broken]"} & loaded
        assert_inert(dash.run_status.run_legend)
        assert shows(dash.run_status.run_legend, f"[{SVG}]")
        assert shows(dash.run_status.run_legend, IMG)
        for label in dash.compare.run_list.options:
            label.encode("utf-8")
    finally:
        dash.close()


# ---------------------------------------------------------------- sweeps
def write_sweep(root, folder: str, info: dict, trials: pd.DataFrame | None = None):
    path = root / "sweeps" / folder
    path.mkdir(parents=True)
    (path / "sweep.json").write_text(json.dumps(info))
    if trials is not None:
        trials.to_parquet(path / "trials.parquet")
    return path


def test_sweeps_with_hostile_ids_names_and_tables_show_as_text(runs):
    import holoviews as hv

    from app.sweep_view import SweepView

    trials = pd.DataFrame({"rule": ["np", "<b>fa</b>"], "sigma": [0.01, 0.02], "test_accuracy": [0.5, 0.6],
                           "seed": [0, 1], "status": ["finished", "finished"],
                           "run_id": [IMG, "r2"]})
    hostile = "{x} " + IMG
    write_sweep(runs, "a", {"sweep_id": hostile, "n_trials": "<b>2</b>", "varied": "sigma"}, trials)
    write_sweep(runs, "b", {"name": "no id"})
    write_sweep(runs, "c", {"sweep_id": ["not", "text"], "varied": [{"x": 1}, "$$x$$", "lr"]})
    write_sweep(runs, "d", {"sweep_id": "no status"}, pd.DataFrame({"sigma": [1.0]}))
    write_sweep(runs, "e", {"sweep_id": "../../outside"})
    view = SweepView(runs)                                 # built, whatever is on disk
    try:
        for sid in view.sweep_select.options.values():
            view.sweep_select.value = sid
            assert_inert(view.status)
            hv.render(view.plot.object)                   # the plot's title is drawn, not formatted
        for label in view.sweep_select.options:
            label.encode("utf-8")
        view.sweep_select.value = hostile
        view.x_select.value = "sigma"
        assert len(view.plot_data) == 2
        assert shows(view.status, hostile + ": 2 trials done")
        assert hv.render(view.plot.object).title.text.startswith(hostile)
        assert all(x.isidentifier() for x in view.x_select.options)
    finally:
        view.close()


def test_the_sweep_forms_messages_show_typed_text_as_text(runs):
    from app.sweep_view import SweepView

    view = SweepView(runs)
    try:
        view.form_steps.box.value = PAYLOADS[0]
        assert_inert(view.form_steps.message)
        assert shows(view.form_steps.message, f"steps={PAYLOADS[0]!r} is not allowed")
        view._on_start()
        assert view.handle is None
        assert_inert(view.form_message)
        assert shows(view.form_message, f"Not started: steps={PAYLOADS[0]!r}")
    finally:
        view.close()
