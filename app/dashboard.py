"""The live dashboard: every knob of a RunConfig, Start/Pause/Step/Stop, and plots that follow.

Data flows one way. A `RunHandle` trains in its own process and fills a bounded RecordBuffer; this
session's periodic callback *pulls* what is new (curves every 200 ms, heatmaps and status every
fifth batch) and sends it to the browser in one held batch, but not before the page has drawn
the last one (app/pace.py): a slow browser gets fewer, larger batches instead of a queue. Click
handlers only flip flags on the run, so they return at once however busy training is. Each
browser session builds its own Dashboard, so it owns its runs; they are stopped when the session
ends (or its tab has been gone a few seconds), from callbacks registered on this object, never
from main.py globals.

The page's parts each have their own module: the settings sidebar (app/sidebar.py), the run
buttons, status line and alerts (app/run_status.py), the plots and the pull that feeds them
(app/live_plots.py), and the "Compare and export" card (app/compare_view.py). This object lays
them out and wires them: what a changed setting does, what each button does to the session's
runs, the link in the address bar, the periodic pull, and the cleanup.

The same object renders in a notebook (`pn.extension(inline=True); Dashboard()`); what Panel's
notebook path needs beyond that is in app/notebook.py.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import panel as pn
import param

from engine.config import LIVE_FIELDS, RunConfig
from engine.errors import ConfigError
from engine.status import Status

from app.address_bar import AddressBar
from app.compare_view import CompareView
from app.curves import CURVE_MIN_WIDTH
from app.library import SavedRun, runs_root
from app.live_plots import LivePlots
from app.network_view import hidden_layers
from app.notebook import EchoFilter, FollowingPull, inline_markup, warm_runs
from app.pace import PagePace
from app.run_status import RunStatus, display_name, wrapping_row
from engine.host.runner import RunHandle, SessionRuns
from app.safe_text import md_text
from app.setting_groups import curve_sets, set_label, split_rows
from app.presets import PRESETS, STORY
from app.sidebar import ALL, SettingsSidebar
from app.state import ConfigState
from engine.values import format_width

CURVE_PERIOD_MS = 200          # 5 Hz for curves: smooth enough, cheap enough
SLOW_EVERY = 5                 # heatmaps and status: every 5th batch; the closed-tab check: every 5th pull
# The status line also goes with any batch that draws curves once it is this old: where the page
# answers slowly (JupyterLab's comm: a batch a second or more) every 5th batch left it ~1,300 steps
# behind the curves it sits above.
STATUS_MAX_AGE_S = 1.0
MAIN_MIN_WIDTH = CURVE_MIN_WIDTH + 24    # one curve plot and the grid's margins
ORPHAN_SECONDS = 3.0           # a session without a browser connection this long stops its runs

# The one curve each story step asks the class to watch: in story mode it sits beside the heatmaps
# (app/live_plots.py, show_focus). The angle of the error each layer gets for the three steps about
# feedback (pure NP's stays near 90°, FA's far from 0°, NP's falls); the accuracy for the two about training.
STORY_FOCUS = dict(zip(STORY, ("signal_angle_deg", "signal_angle_deg", "signal_angle_deg", "accuracy", "accuracy")))
DEFAULT_FOCUS = "signal_angle_deg"
HEADER = ("# creditlab: learning feedback weights by node perturbation\n"
          "Hidden layers learn the feedback B that carries their error; backprop would use Wᵀ. "
          "The question: does B come to look like Wᵀ?")
# Story mode keeps the title and drops the question (the heatmaps' heading asks it): the rows it
# frees keep the heatmaps and the step's curve on a 720 px projector.
STORY_HEADER = "## creditlab: learning feedback weights by node perturbation"
# The story's sentence (under the preset menu), read from the back of a lecture room; the All
# settings mode keeps the sidebar's own size.
STORY_NOTE_STYLES = {"font-size": "16px", "line-height": "1.35", "color": "#222"}

LIVE_NOTE = "σ and the learning rates change the running run at once; other settings apply at the next Start."


class Dashboard(pn.viewable.Viewer):
    """One session's lab bench: the controls, its runs, and the live plots."""

    state = param.ClassSelector(class_=ConfigState, doc="the set-up; mirrored in widgets and URL")

    def __init__(self, curve_period_ms: int = CURVE_PERIOD_MS, sync_url: bool | None = None, **params):
        params.setdefault("state", ConfigState())
        super().__init__(**params)
        served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
        self._served = served
        self.session = SessionRuns()
        self.controls = SettingsSidebar(state=self.state)
        self.plots = LivePlots(self.session, served)
        self.run_status = RunStatus(self.session, self.plots.curves)
        self.compare = CompareView(self.session, self.plots)
        self.address_bar = AddressBar()
        self.pace = PagePace()
        r = self.run_status
        for button, handler in ((r.start_button, self._on_start), (r.pause_button, self._on_pause),
                                (r.resume_button, self._on_resume), (r.step_button, self._on_step),
                                (r.stop_button, self._on_stop), (r.reset_button, self._on_reset),
                                (self.compare.saved_load, self._on_load_saved)):
            if not served:       # notebook: the pull moves to the thread of the click (app/notebook.py)
                button.on_click(lambda _event: self._callback.follow())
            button.on_click(handler)
        # The parts' widgets and plots under this object's names (notebooks and tests use them).
        self.preset, self.inputs, self.sidebar = self.controls.preset, self.controls.inputs, self.controls.layout
        self.curves, self.heatmaps = self.plots.curves, self.plots.heatmaps
        self.layer_select, self.heat_heading = self.plots.layer_select, self.plots.heat_heading
        self.status, self.config_alert, self.run_alert, self.note = r.status, r.config_alert, r.run_alert, r.note
        self.saved_select = self.compare.saved_select
        self._tick = 0                              # pulls
        self._batches = 0                           # pulls that went to the page
        self._clock = time.monotonic
        self._status_at = self._clock()             # when the status line was last refreshed
        self._connected_once = False
        self._orphan_since: float | None = None
        self._closed = False
        self._url_problem = ""                      # a link's unreadable values, until an edit
        self._note_styles = dict(self.controls.preset_note.styles or {})    # the sidebar's own
        self._build_layout()
        # `unreadable`: a number box whose text is not a number (the value kept, Start refused).
        self.state.param.watch(self._on_setting, ConfigState.fields() + ["unreadable"])
        self.state.param.watch(self._on_live_setting, list(LIVE_FIELDS))
        self.controls.mode.param.watch(lambda _event: self._write_url(), "value")
        self.controls.mode.param.watch(lambda _event: self._arrange_mode(), "value")
        self.controls.preset.param.watch(self._on_preset, "value")
        self.layer_select.param.watch(lambda _event: self._write_url(), "value")
        self._url_layer: int | None = None           # a link's heatmap layer, for the next Start
        if sync_url if sync_url is not None else served:
            self._read_url()
        self._sync_url = bool(sync_url if sync_url is not None else served)
        self._write_url()
        self._on_setting()
        if served:
            # Cleanup lives on this object: Bokeh clears main.py's globals when a session ends.
            pn.state.on_session_destroyed(self._on_session_destroyed)
            self._callback = pn.state.add_periodic_callback(self._pull, period=curve_period_ms)
        else:
            self._callback = FollowingPull(self._pull, curve_period_ms)
            warm_runs()           # what `panel serve` does at its start (app/app_hooks.py)

    def _build_layout(self) -> None:
        header = pn.pane.Markdown(STORY_HEADER, sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["creditlab-header"])
        self.header = header
        self._focus = DEFAULT_FOCUS
        r, p = self.run_status, self.plots
        self.main = pn.Column(
            header, self.address_bar, self.pace, r.buttons, r.status, r.note, r.config_alert, r.run_alert,
            r.run_legend, p.network.pane,
            # The central picture first: it is in view at 1280×720 without scrolling.
            pn.Row(p.heat_heading, p.layer_select, p.member_select, sizing_mode="stretch_width"),
            p.heatmap_grid,
            p.curves_heading,
            p.curve_grid,
            self.compare,
            # Beside the sidebar while one plot column fits, else below it (`live` wraps): a
            # notebook cell next to JupyterLab's file browser is narrower than the sidebar and a plot.
            sizing_mode="stretch_width", min_width=MAIN_MIN_WIDTH,
            styles={"flex": f"1 1 {MAIN_MIN_WIDTH}px", "width": "auto"},
        )
        # The sweep page lives in its own module (app/sweep_view.py); it reads runs/sweeps/.
        from app.sweep_view import SweepView
        self.sweep_view = SweepView(runs_root())
        live = wrapping_row(self.sidebar, self.main)
        self.layout = pn.Tabs(("Live run", live),
                              ("Sweeps", self.sweep_view), dynamic=True, sizing_mode="stretch_width")
        if not self._served:     # Panel's notebook comm path needs these two (app/notebook.py)
            self.main.append(EchoFilter())
            inline_markup(self.layout)
        self._arrange_mode()

    def _arrange_mode(self) -> None:
        """Story mode: the compact header, the step's curve beside the heatmaps, the story's sentence
        in large type; All settings: the page as it always was."""
        story = self.controls.mode.value != ALL
        self.header.object = STORY_HEADER if story else HEADER
        self.plots.show_focus(self._focus if story else None)
        self.controls.preset_note.styles = STORY_NOTE_STYLES if story else self._note_styles

    def _on_preset(self, event) -> None:
        # A story step brings its curve beside the heatmaps; a custom set-up keeps the last one.
        if event.new in STORY_FOCUS:
            self._focus = STORY_FOCUS[event.new]
            if self.controls.mode.value != ALL:
                self.plots.show_focus(self._focus)
        self._write_url()

    def __panel__(self):
        return self.layout

    # ================================================================ settings
    def _on_setting(self, *events) -> None:
        """Any setting changed: check it (inline message), describe the rule, update the URL."""
        self.controls.describe()
        cfg, error = self.state.checked()
        self._show_network(cfg)
        if events:
            self._url_problem = ""
        lines = [self._url_problem] + ([f"**Setting not allowed:** {md_text(error)}"] if error else [])
        self.config_alert.object = "\n\n".join(line for line in lines if line)
        self.config_alert.visible = bool(self.config_alert.object)
        self.run_status.start_button.disabled = False   # Start re-checks and explains; never a dead button
        run = self.session.current
        if run is not None and run.active:
            differs = [n for n in ConfigState.fields() if n not in LIVE_FIELDS
                       and _as_text(getattr(self.state, n)) != _as_text(getattr(run.cfg, n))]
            self.note.object = f"{LIVE_NOTE} (changed: {', '.join(differs)})" if differs else ""
            self.note.visible = bool(differs)
        if events:
            self.controls.edited()              # edited by hand: no longer the preset it was
        self._write_url()

    def _on_live_setting(self, *events) -> None:
        # A link or a preset sets several live fields in one batched update: one call, many events.
        run = self.session.current
        if run is None or not run.active:
            return
        try:
            run.set(**{event.name: event.new for event in events})
        except ConfigError as exc:
            self.config_alert.object = f"**Live change refused:** {md_text(exc)}"
            self.config_alert.visible = True

    def _show_network(self, cfg: RunConfig | None) -> None:
        """Draw the set-up's network while no run is shown (a run's stays until Reset); a set-up
        that is not valid (None) keeps the last picture."""
        if self.session.current is None and cfg is not None:
            self.plots.network.show_config(cfg)

    # ================================================================ the URL
    def _read_url(self) -> None:
        args = dict(pn.state.session_args or {})
        if _first(args.get("mode", b"")) == "all":      # a link to every setting, not the story
            self.controls.mode.value = ALL
        # A link to a story step names it: the step's sentence and curve come with its name.
        preset = _first(args.get("preset", b""))
        if preset in PRESETS:
            self.controls.preset.value = preset
        layer = _first(args.get("layer", b""))
        if isinstance(layer, str) and layer.isdigit() and int(layer) > 0:
            self._url_layer = int(layer)
        query = {k: v for k, v in args.items() if k in ConfigState.fields()}
        if not query:
            return
        bad = self.state.update_from_query(query)
        if bad:       # kept above any setting message until the user edits a setting
            self._url_problem = ("**The link has settings that cannot be read** (defaults used): "
                                 + ", ".join(md_text(f"{n}={_last(args[n])!r}") for n in bad))

    def _write_url(self) -> None:
        if not getattr(self, "_sync_url", False):
            return
        query = self.state.to_query()
        if self.controls.mode.value == ALL:
            query["mode"] = "all"
        if self.controls.preset.value in PRESETS:      # still exactly that preset (an edit drops it)
            query["preset"] = self.controls.preset.value
        options = self.layer_select.options
        top = max(options.values()) if isinstance(options, dict) and options else 0
        layer = self.layer_select.value or self._url_layer
        if layer and layer != top:                     # the top layer is where the maps open anyway
            query["layer"] = str(layer)
        self.address_bar.search = "?" + urlencode(query)

    # ================================================================ buttons
    def _on_start(self, _event=None) -> RunHandle | None:
        try:
            cfg = self.state.to_config()
        except ConfigError as exc:
            self.config_alert.object = f"**Not started:** {md_text(exc)}"
            self.config_alert.visible = True
            return None
        self.config_alert.visible = False
        self.run_alert.visible = False
        self.note.visible = False
        # The run's own process writes its folder (engine/host/saving.py): no disk work here.
        save_to = runs_root() if self.controls.save_runs.value else None
        run, dropped = self.session.launch(cfg, save_to=save_to)
        n_layers = hidden_layers(cfg)

        def plot_it():
            for old in dropped:
                self._forget(old)
            self.plots.add_run(run, display_name(run), n_layers, steps=cfg.steps)
            self.heatmaps.clear()
            self.run_status.refresh_legend()

        self.plots.edit(plot_it)
        self.plots.show_layers(n_layers)
        if self._url_layer and self._url_layer <= n_layers:       # a link's layer, once
            self.layer_select.value = self._url_layer
        self._url_layer = None
        self.plots.show_members(run)
        self.plots.network.show_config(cfg)
        self.run_status.restart_rate()
        self._refresh_run_list()
        self.run_status.refresh()
        return run

    def _on_pause(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.pause()
            self.run_status.refresh(expect=Status.PAUSED)

    def _on_resume(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.resume()
            self.run_status.refresh(expect=Status.RUNNING)

    def _on_step(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.step_interval()
            self.run_status.refresh(expect=Status.PAUSED)

    def _on_stop(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.stop()
            self.run_status.refresh(expect=Status.STOPPED)

    def _on_reset(self, _event=None) -> None:
        runs = self.session.clear()

        def clear_plots():
            for run in runs:
                self._forget(run)
            self.curves.clear()
            self.heatmaps.clear()
            self.plots.show_fillable()

        self.plots.edit(clear_plots)
        self.plots.clear_heading()
        self.plots.show_members(None)
        self._show_network(self.state.checked()[0])
        self.run_alert.visible = False
        self.note.visible = False
        self._refresh_run_list()
        self.run_status.ready()

    # ================================================================ comparison
    def _on_load_saved(self, _event=None) -> None:
        folder = self.saved_select.value
        if not folder:
            return
        try:
            saved = SavedRun(folder)
        except Exception as exc:          # a foreign or half-written folder: say so, keep serving
            self.run_alert.object = f"**Could not load {md_text(folder)}:** {md_text(f'{type(exc).__name__}: {exc}')}"
            self.run_alert.visible = True
            return
        if any(run.id == saved.id for run in self.session.runs):
            return
        dropped = self.session.add(saved)

        def plot_it():
            for old in dropped:
                self._forget(old)
            sets = curve_sets(saved.id, saved.cfg)         # a set per group of settings it compares
            for (key, group, members), rows in zip(sets, split_rows(saved.rows(), saved.cfg)):
                self.curves.add_run(key, set_label(display_name(saved), saved.cfg, group), saved.n_layers(),
                                    steps=saved.cfg.steps, members=members)
                self.curves.replace(key, rows)
            self.run_status.refresh_legend()
            self.plots.show_fillable()

        self.plots.edit(plot_it)
        self._refresh_run_list()

    def _forget(self, run) -> None:
        self.plots.forget(run)
        self.run_status.forget(run)

    def _refresh_run_list(self) -> None:
        self.compare.refresh_run_list()
        self.run_status.refresh_legend()

    def frame(self):
        """Every run of this session as one tidy table (what the downloads contain)."""
        return self.compare.frame()

    # ================================================================ the pull
    def _pull(self) -> None:
        """Move what the workers produced since last time into the plots, in one batch, once the
        page has drawn the last batch."""
        if self._closed:
            return
        self._tick += 1
        if self._tick % SLOW_EVERY == 0:
            self._check_orphaned()
        if not self.pace.ready():
            return
        self._batches += 1
        slow = self._batches % SLOW_EVERY == 0
        with pn.io.hold():
            drew = self.plots.pull(slow)
            now = self._clock()
            if slow or (drew and now - self._status_at >= STATUS_MAX_AGE_S):
                self.run_status.refresh()
                self._status_at = now
            else:
                self.run_status.refresh_if_changed()
            if drew:
                self.pace.mark_sent()
        if not self._served:
            pn.io.push_notebook(*self._bokeh_panes())

    def _bokeh_panes(self):
        return [p for p in self.main.select(pn.pane.Bokeh)]

    # ================================================================ cleanup
    def _check_orphaned(self) -> None:
        """Stop the runs of a session whose browser tab has gone (well before Bokeh reaps it)."""
        doc = pn.state.curdoc
        session = getattr(getattr(doc, "session_context", None), "_session", None)
        count = getattr(session, "connection_count", None)
        if count is None:
            return
        if count > 0:
            self._connected_once, self._orphan_since = True, None
        elif self._connected_once:
            self._orphan_since = self._orphan_since or time.time()
            if time.time() - self._orphan_since > ORPHAN_SECONDS:
                self.session.stop_all()

    def _on_session_destroyed(self, session_context) -> None:
        self.close()

    def close(self) -> None:
        """Stop every run of this session and the periodic pull."""
        self._closed = True
        self.session.stop_all()
        self.sweep_view.close()
        try:
            self._callback.stop()
        except Exception:
            pass


def _first(value):
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    return _text(value)


def _last(value):
    """The value of a query parameter given more than once that ConfigState reads: the last."""
    if isinstance(value, (list, tuple)) and value:
        value = value[-1]
    return _text(value)


def _text(value):
    # A link can carry bytes that are not UTF-8 ("%ff"): kept, as escapes, to be named.
    return value.decode(errors="surrogateescape") if isinstance(value, bytes) else value


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return format_width(list(value))
    return str(value)
