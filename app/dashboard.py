"""The live dashboard: every knob of a RunConfig, Start/Pause/Step/Stop, and plots that follow.

Data flows one way. A `RunHandle` trains in its own process and fills a bounded RecordBuffer; this
session's periodic callback *pulls* what is new (curves every 200 ms, heatmaps and status every
second) and sends it to the browser in one held batch. Click handlers only flip flags on the run,
so they return at once however busy training is. Each browser session builds its own Dashboard,
so it owns its runs; they are stopped when the session ends (or its tab has been gone a few
seconds), from callbacks registered on this object, never from main.py globals.

The same object renders in a notebook (`pn.extension(inline=True); Dashboard()`).
"""

from __future__ import annotations

import html
import time
from urllib.parse import urlencode
from typing import Any

import panel as pn
import param

from engine.config import LIVE_FIELDS, ConfigError, applies, settings
from engine.control import ACTIVE, Status
from engine.data import DATASETS
from engine.rules import RULES
from engine.stream import flatten_record

from app.address_bar import AddressBar
from app.library import (SavedRun, list_saved_runs, runs_frame, runs_root, to_csv_bytes,
                         to_parquet_bytes)
from app.plots import CURVE_MIN_WIDTH, HEATMAP_KEYS, HEATMAP_MIN_WIDTH, CurvePlots, Heatmaps
from app.runner import BUFFER_CAPACITY, RunHandle, SessionRuns
from app.state import PRESETS, ConfigState, format_width, read_number

CURVE_PERIOD_MS = 200          # 5 Hz for curves: smooth enough, cheap enough
SLOW_EVERY = 5                 # heatmaps, status and the closed-tab check: every 5th pull (1 Hz)
ORPHAN_SECONDS = 3.0           # a session without a browser connection this long stops its runs

LIVE_NOTE = "σ and the learning rates change the running run at once; other settings apply at the next Start."

HEAT_HELP = ("Same pattern of red and blue in *B now* and *Wᵀ now* = B has learned backprop's "
             "feedback. Each map has its own colour scale (written under its title), so compare "
             "patterns, not shades; in the right-hand map white = the same colour in both.")
CURVES_HELP = ("Colour = run; solid = layer 1 (input side), dashed = layer 2, dotted = layer 3. "
               "Under each title: what a good value is.")


class Dashboard(pn.viewable.Viewer):
    """One session's lab bench: the controls, its runs, and the live plots."""

    state = param.ClassSelector(class_=ConfigState, doc="the set-up; mirrored in widgets and URL")

    def __init__(self, curve_period_ms: int = CURVE_PERIOD_MS, sync_url: bool | None = None, **params):
        params.setdefault("state", ConfigState())
        super().__init__(**params)
        self.session = SessionRuns()
        self.curves = CurvePlots()
        self.heatmaps = Heatmaps()
        self._cursors: dict[Any, int] = {}          # run id → RecordBuffer cursor
        self._changes_seen: dict[Any, int] = {}     # run id → live changes already drawn
        self._status_seen: dict[Any, str] = {}
        self._tick = 0
        self._rate = (0.0, 0, 0.0)                  # (time, step, steps/s) for the status line
        self._connected_once = False
        self._orphan_since: float | None = None
        self._closed = False
        self._applying_preset = False
        self._url_problem = ""                      # a link's unreadable values, until an edit
        self._legend_signature: tuple = ()
        self._build_widgets()
        self._build_layout()
        # `unreadable`: a number box whose text is not a number (the value kept, Start refused).
        self.state.param.watch(self._on_setting, ConfigState.fields() + ["unreadable"])
        self.state.param.watch(self._on_live_setting, list(LIVE_FIELDS))
        served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
        self._served = served
        if sync_url if sync_url is not None else served:
            self._read_url()
        self._sync_url = bool(sync_url if sync_url is not None else served)
        self._write_url()
        self._on_setting()
        if served:
            # Cleanup lives on this object: Bokeh clears main.py's globals when a session ends.
            pn.state.on_session_destroyed(self._on_session_destroyed)
        self._callback = pn.state.add_periodic_callback(self._pull, period=curve_period_ms)

    # ================================================================ widgets
    def _build_widgets(self) -> None:
        s, w = self.state, pn.widgets
        self.preset = w.Select(label="Preset (the paper's set-ups)",
                               options=["(custom)"] + list(PRESETS), value="(custom)")
        self.preset.param.watch(self._on_preset, "value")
        self.inputs: dict[str, Any] = {name: _widget(s, name) for name in ConfigState.fields()}
        self.rule_summary = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#444"},
                                             margin=(0, 10))
        self.dataset_summary = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#444"},
                                                margin=(0, 10))

        self.start_button = w.Button(label="Start", color="primary", width=95)
        self.pause_button = w.Button(label="Pause", width=95, disabled=True)
        self.resume_button = w.Button(label="Resume", width=100, disabled=True)
        self.step_button = w.Button(label="Step", width=90, disabled=True,
                                    description="advance one logging interval (metric_interval steps)")
        self.stop_button = w.Button(label="Stop", color="danger", width=90, disabled=True)
        self.reset_button = w.Button(label="Reset", width=95,
                                     description="stop every run and clear the plots")
        for button, handler in ((self.start_button, self._on_start), (self.pause_button, self._on_pause),
                                (self.resume_button, self._on_resume), (self.step_button, self._on_step),
                                (self.stop_button, self._on_stop), (self.reset_button, self._on_reset)):
            button.on_click(handler)

        self.address_bar = AddressBar()
        self.status = pn.pane.Markdown("**Ready.** Pick a rule or a preset and press Start.",
                                       styles={"font-size": "1.1em"}, margin=(0, 10),
                                       sizing_mode="stretch_width")
        self.config_alert = pn.pane.Alert("", alert_type="danger", visible=False, margin=(0, 10),
                                          sizing_mode="stretch_width")
        self.run_alert = pn.pane.Alert("", alert_type="danger", visible=False, margin=(0, 10),
                                       sizing_mode="stretch_width")
        self.note = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#7a5b00"},
                                     margin=(0, 10), visible=False)

        self.run_legend = pn.pane.HTML("", margin=(0, 10), sizing_mode="stretch_width",
                                       styles={"font-size": "1.0em"})
        # 0 = the top layer, whatever the depth; Start lists the run's layers, top first.
        self.layer_select = w.Select(label="Heatmap layer", options={"top (last hidden ← output)": 0},
                                     value=0, width=230)
        self.heat_heading = pn.pane.Markdown(self._heat_heading(""), margin=(0, 10),
                                             sizing_mode="stretch_width")
        self.layer_select.param.watch(
            lambda e: self._bokeh(lambda: self._refresh_heatmaps(force=True)), "value")

        self.run_list = w.CheckBoxGroup(label="Runs shown", options={}, value=[], inline=False)
        self.run_list.param.watch(self._on_visibility, "value")
        self.saved_select = w.Select(label="Saved runs (runs/)", options={}, sizing_mode="stretch_width")
        self.saved_refresh = w.Button(label="Refresh list", width=120)
        self.saved_load = w.Button(label="Load into comparison", width=190)
        self.saved_refresh.on_click(lambda e: self._refresh_saved())
        self.saved_load.on_click(self._on_load_saved)
        self.download_parquet = w.FileDownload(callback=self._export_parquet, filename="creditlab-runs.parquet",
                                               label="Download Parquet", width=190)
        self.download_csv = w.FileDownload(callback=self._export_csv, filename="creditlab-runs.csv",
                                           label="Download CSV", width=190)
        self._refresh_saved()

    def _build_layout(self) -> None:
        i = self.inputs
        section = lambda title: pn.pane.Markdown(f"#### {title}", margin=(8, 10, 0, 10))  # noqa: E731
        # One section per Setting group, in RunConfig's order (the groups are contiguous there);
        # the rule and the dataset are described under their selectors.
        items: list[Any] = [self.preset]
        group = None
        for name, setting in settings().items():
            if setting.group != group:
                group = setting.group
                items.append(section(group))
            items.append(i[name])
            items.extend({"rule": [self.rule_summary], "dataset": [self.dataset_summary]}.get(name, []))
        self.sidebar = pn.Column(*items, width=330, styles={"background": "#f5f7fa", "border-radius": "6px"},
                                 scroll=True, max_height=1400)
        buttons = pn.Row(self.start_button, self.pause_button, self.resume_button, self.step_button,
                         self.stop_button, self.reset_button)
        # Plot grids that reflow: as many columns as fit at the plots' minimum widths (4 curve
        # plots a row at 1920 px, 3 at 1600, 2 at 1280), never wider than the page.
        curve_panes = [pn.pane.Bokeh(fig, sizing_mode="stretch_width", min_width=CURVE_MIN_WIDTH)
                       for fig in self.curves.figures.values()]
        heat_panes = [pn.pane.Bokeh(self.heatmaps.figures[k], sizing_mode="stretch_width",
                                    min_width=HEATMAP_MIN_WIDTH) for k in HEATMAP_KEYS]
        compare = pn.Card(
            pn.Row(
                pn.Column(pn.pane.Markdown("**Runs in the comparison** (untick to hide)"), self.run_list,
                          sizing_mode="stretch_width"),
                pn.Column(self.saved_select, pn.Row(self.saved_refresh, self.saved_load),
                          sizing_mode="stretch_width"),
                pn.Column(pn.pane.Markdown("**Export** (plots: the save tool on each plot writes PNG)"),
                          self.download_parquet, self.download_csv),
                sizing_mode="stretch_width"),
            title="Compare and export", collapsed=False, sizing_mode="stretch_width")
        header = pn.pane.Markdown(
            "# creditlab: learning feedback weights by node perturbation\n"
            "Hidden layers learn the feedback B that carries their error; backprop would use Wᵀ. "
            "The question: does B come to look like Wᵀ?",
            sizing_mode="stretch_width", margin=(0, 10), css_classes=["creditlab-header"])
        self.main = pn.Column(
            header, self.address_bar, buttons, self.status, self.note, self.config_alert, self.run_alert,
            self.run_legend,
            # The central picture first: it is in view at 1280×720 without scrolling.
            pn.Row(self.heat_heading, self.layer_select, sizing_mode="stretch_width"),
            _plot_grid(heat_panes, HEATMAP_MIN_WIDTH, "creditlab-heatmaps"),
            pn.pane.Markdown(f"### Learning curves\n{CURVES_HELP}", margin=(0, 10),
                             sizing_mode="stretch_width"),
            _plot_grid(curve_panes, CURVE_MIN_WIDTH, "creditlab-curves"),
            compare,
            sizing_mode="stretch_width",
        )
        # The sweep page lives in its own module (app/sweep_view.py); it reads runs/sweeps/.
        from app.sweep_view import SweepView
        self.sweep_view = SweepView(runs_root())
        self.layout = pn.Tabs(("Live run", pn.Row(self.sidebar, self.main, sizing_mode="stretch_width")),
                              ("Sweeps", self.sweep_view), dynamic=True, sizing_mode="stretch_width")

    def __panel__(self):
        return self.layout

    # ================================================================ plain Bokeh edits
    def _bokeh(self, fn) -> None:
        """Run a change to the raw Bokeh figures with the document lock held.

        Panel runs widget callbacks outside Bokeh's document lock; Panel's own models cope, but
        editing a Bokeh figure there raised "_pending_writes should be non-None …" and the edit
        never reached the page (seen with five sessions at once). The next-tick callback holds it.
        """
        doc = pn.state.curdoc
        if self._served and doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(fn)
        else:
            fn()

    # ================================================================ settings
    def _on_preset(self, event) -> None:
        if event.new in PRESETS:
            self._applying_preset = True
            try:
                self.state.apply_preset(event.new)
            finally:
                self._applying_preset = False

    def _on_setting(self, *events) -> None:
        """Any setting changed: check it (inline message), describe the rule, update the URL."""
        rule = RULES.get(self.state.rule)
        self.rule_summary.object = f"*{rule.summary}*" if rule else ""
        spec = DATASETS.get(self.state.dataset)
        self.dataset_summary.object = f"*{spec.description}*" if spec else ""
        for name, widget in self.inputs.items():     # only the settings that matter here
            widget.visible = applies(name, self.state)
        error = self.state.error()
        if events:
            self._url_problem = ""
        lines = [self._url_problem] + ([f"**Setting not allowed:** {error}"] if error else [])
        self.config_alert.object = "\n\n".join(line for line in lines if line)
        self.config_alert.visible = bool(self.config_alert.object)
        self.start_button.disabled = False        # Start re-checks and explains; never a dead button
        run = self.session.current
        if run is not None and run.active:
            differs = [n for n in ConfigState.fields() if n not in LIVE_FIELDS
                       and _as_text(getattr(self.state, n)) != _as_text(getattr(run.cfg, n))]
            self.note.object = f"{LIVE_NOTE} (changed: {', '.join(differs)})" if differs else ""
            self.note.visible = bool(differs)
        if events and not self._applying_preset and self.preset.value != "(custom)":
            self.preset.value = "(custom)"      # edited by hand: no longer the preset it was
        self._write_url()

    def _on_live_setting(self, *events) -> None:
        # A link or a preset sets several live fields in one batched update: one call, many events.
        run = self.session.current
        if run is None or not run.active:
            return
        try:
            run.set(**{event.name: event.new for event in events})
        except ConfigError as exc:
            self.config_alert.object = f"**Live change refused:** {exc}"
            self.config_alert.visible = True

    # ================================================================ the URL
    def _read_url(self) -> None:
        args = dict(pn.state.session_args or {})
        query = {k: v for k, v in args.items() if k in ConfigState.fields()}
        if not query:
            return
        bad = self.state.update_from_query(query)
        if bad:       # kept above any setting message until the user edits a setting
            self._url_problem = ("**The link has settings that cannot be read** (defaults used): "
                                 + ", ".join(f"{n}={_first(args[n])!r}" for n in bad))

    def _write_url(self) -> None:
        if not getattr(self, "_sync_url", False):
            return
        self.address_bar.search = "?" + urlencode(self.state.to_query())

    # ================================================================ buttons
    def _on_start(self, _event=None) -> RunHandle | None:
        try:
            cfg = self.state.to_config()
        except ConfigError as exc:
            self.config_alert.object = f"**Not started:** {exc}"
            self.config_alert.visible = True
            return None
        self.config_alert.visible = False
        self.run_alert.visible = False
        self.note.visible = False
        run, dropped = self.session.launch(cfg)

        def plot_it():
            for old in dropped:
                self._forget(old)
            self.curves.add_run(run.id, _display(run), len(cfg.widths()), steps=cfg.steps)
            self._cursors[run.id] = 0           # from now on the pull streams this run
            self._changes_seen[run.id] = 0
            self.heatmaps.clear()
            self._refresh_legend()

        self._bokeh(plot_it)
        self.heat_heading.object = self._heat_heading("")
        self.layer_select.options = layer_options(len(cfg.widths()))
        # Open on the top layer: its B is the first to become Wᵀ (the hidden layers' follow).
        self.layer_select.value = len(cfg.widths())
        self._rate = (time.time(), 0, 0.0)
        self._refresh_run_list()
        self._refresh_status()
        return run

    def _on_pause(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.pause()
            self._refresh_status(expect=Status.PAUSED)

    def _on_resume(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.resume()
            self._refresh_status(expect=Status.RUNNING)

    def _on_step(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.step_once()
            self._refresh_status(expect=Status.PAUSED)

    def _on_stop(self, _event=None) -> None:
        if (run := self.session.current) is not None and run.active:
            run.stop()
            self._refresh_status(expect=Status.STOPPED)

    def _on_reset(self, _event=None) -> None:
        runs = self.session.clear()

        def clear_plots():
            for run in runs:
                self._forget(run)
            self.curves.clear()
            self.heatmaps.clear()

        self._bokeh(clear_plots)
        self.heat_heading.object = self._heat_heading("")
        self.run_alert.visible = False
        self.note.visible = False
        self._refresh_run_list()
        self.status.object = "**Ready.** Pick a rule or a preset and press Start."
        self._set_buttons(None)

    # ================================================================ comparison
    def _forget(self, run) -> None:
        self.curves.remove_run(run.id)
        for table in (self._cursors, self._changes_seen, self._status_seen):
            table.pop(run.id, None)

    def _refresh_run_list(self) -> None:
        options = {_display(run): run.id for run in self.session.runs}
        visible = [v for v in self.run_list.value if v in options.values()]
        new_ids = [v for v in options.values() if v not in self.run_list.options.values()]
        self.run_list.options = options
        self.run_list.value = visible + new_ids
        self._refresh_legend()

    def _refresh_legend(self) -> None:
        """The runs as coloured keys above the plots (legible from the back of a lecture room)."""
        keys = []
        for run in self.session.runs:
            color = self.curves.color(run.id)
            if color is None:
                continue
            swatch = (f'<span style="display:inline-block;width:26px;height:5px;background:{color};'
                      f'vertical-align:middle;margin-right:6px"></span>')
            keys.append(f'<span style="margin-right:22px;white-space:nowrap">{swatch}'
                        f'{html.escape(_display(run))} <i style="color:#666">{run.status}</i></span>')
        self.run_legend.object = " ".join(keys)

    def _on_visibility(self, event) -> None:
        shown, runs = set(event.new), list(self.session.runs)

        def apply():
            for run in runs:
                self.curves.set_visible(run.id, run.id in shown)

        self._bokeh(apply)

    def _refresh_saved(self) -> None:
        options = list_saved_runs()
        self.saved_select.options = options
        self.saved_load.disabled = not options

    def _on_load_saved(self, _event=None) -> None:
        folder = self.saved_select.value
        if not folder:
            return
        try:
            saved = SavedRun(folder)
        except Exception as exc:          # a foreign or half-written folder: say so, keep serving
            self.run_alert.object = f"**Could not load {folder}:** {type(exc).__name__}: {exc}"
            self.run_alert.visible = True
            return
        if any(run.id == saved.id for run in self.session.runs):
            return
        dropped = self.session.add(saved)

        def plot_it():
            for old in dropped:
                self._forget(old)
            self.curves.add_run(saved.id, saved.label, saved.n_layers(), steps=saved.cfg.steps)
            self.curves.replace(saved.id, saved.rows())
            self._refresh_legend()

        self._bokeh(plot_it)
        self._refresh_run_list()

    # ================================================================ export
    def frame(self):
        """Every run of this session as one tidy table (what the downloads contain)."""
        return runs_frame(list(self.session.runs))

    def _export_parquet(self):
        return to_parquet_bytes(self.frame())

    def _export_csv(self):
        return to_csv_bytes(self.frame())

    # ================================================================ the pull
    def _pull(self) -> None:
        """Move what the workers produced since last time into the plots, in one batch."""
        if self._closed:
            return
        self._tick += 1
        slow = self._tick % SLOW_EVERY == 0
        with pn.io.hold():
            for run in list(self.session.runs):
                if isinstance(run, RunHandle):
                    self._pull_run(run)
            if slow:
                self._refresh_heatmaps()
                self.curves.fit_y_ranges()
                self._refresh_status()
                self._check_orphaned()
            else:
                run = self.session.current
                if run is not None and self._status_seen.get(run.id) != run.status:
                    self._refresh_status()      # finished / diverged: say so without waiting
        if not self._served:
            pn.io.push_notebook(*self._bokeh_panes())

    def _pull_run(self, run: RunHandle) -> None:
        cursor = self._cursors.get(run.id)
        if cursor is None:
            return
        new, cursor = run.buffer.since(cursor)
        self._cursors[run.id] = cursor
        if new:
            if self.curves.length(run.id) + len(new) > BUFFER_CAPACITY:
                # The buffer has thinned its history: resend it whole, so the page stays bounded too.
                self.curves.replace(run.id, [flatten_record(r) for r in run.buffer.records()])
            else:
                self.curves.stream(run.id, [flatten_record(r) for r in new])
        # Markers where the records show a live change applied, not where the UI asked for it.
        seen = self._changes_seen.get(run.id, 0)
        applied = list(run.applied)
        for change in applied[seen:]:
            self.curves.mark_change(run.id, change["step"],
                                    f"{change['name']}: {change['old']:g} → {change['new']:g}")
        self._changes_seen[run.id] = len(applied)

    def _refresh_heatmaps(self, force: bool = False) -> None:
        run = self.session.current
        if run is None:
            return
        version, matrices = run.buffer.latest_matrices()
        if matrices is None or (version == self.heatmaps.version and not force):
            return
        first_step, first_matrices = run.buffer.first_matrices()
        self.heatmaps.show(matrices, self.layer_select.value or None, version,
                           step=_record_step(run, version), first=first_matrices,
                           first_step=first_step)
        heading = self._heat_heading(self.heatmaps.where)
        if self.heat_heading.object != heading:
            self.heat_heading.object = heading

    @staticmethod
    def _heat_heading(where: str) -> str:
        return f"### Is B learning to look like Wᵀ?{' — ' + where if where else ''}\n{HEAT_HELP}"

    def _refresh_status(self, expect: str | None = None) -> None:
        run = self.session.current
        if run is None:
            self._set_buttons(None)
            return
        status = expect if expect and run.active else run.status
        now = time.time()
        t0, s0, rate = self._rate
        if now - t0 >= 0.9:
            rate = (run.step_count - s0) / (now - t0) if run.step_count >= s0 else 0.0
            self._rate = (now, run.step_count, rate)
        latest = run.buffer.records()[-1:] if status != "starting" else []
        extra = ""
        if latest:
            rec = latest[-1]
            acc = rec.get("train_accuracy")
            if acc is not None and acc == acc:
                extra = f" · train accuracy {acc:.1%}"
        speed = f" · {rate:,.0f} steps/s" if status == Status.RUNNING else ""
        self.status.object = (f"**{_display(run)}** — {status}, step {run.step_count:,} / "
                              f"{run.cfg.steps:,}{speed}{extra}")
        self._set_buttons(status)
        signature = tuple((r.id, r.status) for r in self.session.runs)
        if signature != self._legend_signature:
            self._legend_signature = signature
            self._refresh_legend()
        if self._status_seen.get(run.id) != run.status:
            self._status_seen[run.id] = run.status
            if run.status in (Status.DIVERGED, Status.FAILED, Status.INTERRUPTED):
                self.run_alert.object = f"**Run stopped:** {run.error}"
                self.run_alert.visible = True
            if not run.active:
                self.note.visible = False

    def _set_buttons(self, status: str | None) -> None:
        active = status in ACTIVE
        self.pause_button.disabled = status not in (Status.STARTING, Status.RUNNING)
        self.resume_button.disabled = status != Status.PAUSED
        self.step_button.disabled = not active
        self.stop_button.disabled = not active

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


def layer_options(n_layers: int) -> dict[str, int]:
    """The heatmap layer menu, top layer first (the one whose B is fed by the output)."""
    options = {}
    for i in range(n_layers, 0, -1):
        above = "output" if i == n_layers else f"layer {i + 1}"
        note = " (top)" if i == n_layers else (" (input side)" if i == 1 else "")
        options[f"layer {i} ← {above}{note}"] = i
    return options


def _plot_grid(panes: list, min_width: int, css_class: str) -> pn.Column:
    """Plots side by side in equal columns, wrapping onto new rows: as many columns as fit at
    `min_width` each (never more than there are plots, nor than 4), so a narrow page gets fewer
    columns instead of plots drawn over each other or past its edge. A CSS grid on the layout's
    element, whose grid items are the plots' own elements."""
    most = min(4, len(panes))
    grid = {"display": "grid", "gap": "0px", "grid-template-columns":
            f"repeat(auto-fill, minmax(max({min_width}px, {100 / most:.4g}%), 1fr))"}
    return pn.Column(*panes, sizing_mode="stretch_width", styles=grid, css_classes=[css_class],
                     margin=(0, 12, 0, 0))


def _record_step(run, version: int) -> int | None:
    """The step of the record that brought matrix snapshot `version` (records and snapshots are
    counted alike when every record carries matrices, as the dashboard's subscription asks)."""
    for record in reversed(run.buffer.records()[-64:]):
        if record.get("_seq") == version:
            return record.get("step")
        if record.get("_seq", 0) < version:
            break
    return None


def _widget(state: ConfigState, name: str):
    """The sidebar control of one setting: its kind from the field's type, its label and tooltip
    (the setting's doc) from its Setting."""
    w, p, s = pn.widgets, state.param[name], settings()[name]
    wide = dict(sizing_mode="stretch_width")
    if name == "rule":
        return w.Select.from_param(p, label=s.label, options={RULES[r].title: r for r in RULES}, **wide)
    if isinstance(p, param.Selector):
        return w.Select.from_param(p, label=s.label, **wide)
    if isinstance(p, param.Boolean):
        return w.Checkbox.from_param(p, label=s.label)
    if isinstance(p, param.Number):           # param.Integer too
        return number_box(state, name, label=s.label, description=s.doc, **wide)
    return w.TextInput.from_param(p, label=s.label, **wide)


def number_box(state: ConfigState, name: str, **params) -> pn.widgets.TextInput:
    """A text box bound to number setting `name` of `state`, read on the server.

    Bokeh's number inputs drop what they cannot read ("nan", "inf", "1e999", "abc") in the browser
    and send nothing, so the old value stayed while the box seemed to take the new one. Here every
    entry (on Enter or leaving the box) goes to `state.set_text`: a number (the CLI's strict
    parsers, finite) sets the setting as a typed value always did, live ones reaching a running
    run; anything else keeps the value, is named in `state.unreadable` (the one-line message) and
    makes Start refuse, while the box keeps what was typed. A value set from code (a preset, a
    link) shows in the box and replaces what was typed."""
    box = pn.widgets.TextInput(value=state.text(name), **params)
    showing = False

    def typed(event) -> None:
        if not showing:
            state.set_text(name, event.new)

    def show(*_events) -> None:
        nonlocal showing
        if name in state.unreadable:          # keep the text the message names
            return
        try:
            if read_number(state.param[name], box.value) == getattr(state, name):
                return                        # "1e-3" for 0.001: leave the user's spelling
        except ConfigError:
            pass
        showing = True
        try:
            box.value = state.text(name)
        finally:
            showing = False

    box.param.watch(typed, "value")
    state.param.watch(show, [name, "unreadable"])
    return box


def _display(run) -> str:
    """A run's name in legends and lists: unique within the session ("#3 np σ=0.01 …")."""
    return f"#{run.id} {run.label}" if isinstance(run, RunHandle) else run.label


def _first(value):
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    return value.decode() if isinstance(value, bytes) else value


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return format_width(list(value))
    return str(value)
