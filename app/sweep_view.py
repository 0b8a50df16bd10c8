"""The dashboard's sweep page: trials as they finish, and a form that starts a small sweep.

`SweepView(runs_dir)` is a self-contained `pn.viewable.Viewer`. A periodic callback (every
`period_ms`, at least 500 ms) re-reads `<runs_dir>/sweeps/*/sweep.json` and the chosen sweep's
`trials.parquet` (only when the file changed) and redraws one HoloViews scatter: the chosen
metric against a hyper-parameter (σ, lr, feedback_lr, width, depth, …; log x-axis for σ and the
learning rates), coloured by rule. The table is written by `engine.sweep.run_sweep`, from the
command line or from this page, so a CLI sweep shows up here as its trials finish.

The form starts a small random search (σ, lr, feedback_lr log-uniform; the rules chosen) on a
local Dask cluster, or in-process without Dask. `SweepHandle` runs it in a daemon thread: its
methods only set flags, and the thread never touches a Panel, Bokeh or HoloViews object; the
periodic callback reads its plain status. The sweep is stopped when the session ends.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the backend that .opts() needs)
import pandas as pd
import panel as pn
import param

from engine import sweep as sw
from engine.status import ACTIVE, Status
from engine.errors import one_line

from app.int_box import IntBox
from app.safe_text import md_code, md_text, plain, text_pane

LOG_X = ("sigma", "lr", "feedback_lr", "ridge_gamma", "weight_decay")
X_CHOICES = ("sigma", "lr", "feedback_lr", "width", "depth", "steps", "batch_size", "momentum",
             "seed", "sample")
Y_CHOICES = tuple(sw.METRICS)
MAX_TRIALS = 96               # "a small sweep": the form refuses more
MIN_PERIOD_MS = 500
RULE_COLORS = {"bp": "#1f77b4", "fa": "#ff7f0e", "np": "#2ca02c", "dfa": "#d62728",
               "np-dfa": "#9467bd", "kp": "#8c564b", "sg": "#e377c2", "ss": "#7f7f7f"}


class SweepHandle:
    """A sweep running in a background thread. Thread-safe; every method returns at once."""

    def __init__(self, spec: sw.SweepSpec, runs_dir: str | Path, workers: int = 2,
                 serial: bool = False):
        self.spec = spec
        self.sweep_id = spec.sweep_id
        self.runs_dir = str(runs_dir)
        self.workers, self.serial = workers, serial
        self.total = len(spec.trials())
        self.status = Status.READY
        self.error: str | None = None
        self.counts: dict[str, int] = {Status.FINISHED: 0, Status.DIVERGED: 0, Status.FAILED: 0}
        self.running = 0
        self.result: sw.SweepResult | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> "SweepHandle":
        with self._lock:
            if self._thread is not None:
                return self
            self.status = Status.STARTING
            self._thread = threading.Thread(target=self._work, name=f"sweep-{self.sweep_id}",
                                            daemon=True)
        self._thread.start()
        return self

    def _on_update(self, counts: dict, running: int) -> None:
        with self._lock:
            self.counts, self.running = dict(counts), running
            if self.status == Status.STARTING:
                self.status = Status.RUNNING

    def _work(self) -> None:
        try:
            with self._lock:
                if self.status == Status.STARTING:
                    self.status = Status.RUNNING
            result = sw.run_sweep(self.spec, self.runs_dir, workers=self.workers,
                                  serial=self.serial, progress=False, stop=self._stop,
                                  on_update=self._on_update)
            with self._lock:
                self.result = result
                self.counts = dict(result.counts)
                self.running = 0
                self.status = Status.STOPPED if result.interrupted else Status.FINISHED
        except BaseException as exc:          # never let the thread die silently
            with self._lock:
                self.status, self.running = Status.FAILED, 0
                self.error = one_line(exc) or traceback.format_exc(limit=1)

    def stop(self) -> None:
        with self._lock:
            if self.status in ACTIVE:
                self.status = Status.STOPPING
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"sweep_id": self.sweep_id, "status": self.status, "error": self.error,
                    "total": self.total, "running": self.running, **self.counts}


def small_sweep_spec(rules: list[str], samples: int, steps: int, seeds: int = 1,
                     dataset: str = "digits", seed: int = 0, name: str = "dashboard",
                     width: Any = None, depth: int | None = None) -> sw.SweepSpec:
    """The form's sweep: σ, lr, feedback_lr log-uniform (σ only matters for NP rules, feedback_lr
    for rules that learn B, but all rules share the draws so they are compared pairwise)."""
    base: dict[str, Any] = {"dataset": dataset, "steps": int(steps),
                            "metric_interval": max(25, int(steps) // 10),
                            "eval_interval": int(steps)}
    if depth is not None:
        base["depth"] = int(depth)
    if width is not None:
        base["width"] = width
    data = {"sweep": {"name": name, "seed": int(seed), "samples": int(samples),
                      "seeds_per_point": int(seeds)},
            "base": base, "grid": {"rule": list(rules)},
            # lr around Adam's 1e-3 (the default optimiser); feedback_lr around the normalised
            # step's 1.0 (NP scales it down by its own noise)
            "random": {"sigma": {"log_uniform": [1e-4, 1e-1]},
                       "lr": {"log_uniform": [1e-4, 1e-2]},
                       "feedback_lr": {"log_uniform": [0.05, 2.0]}}}
    return sw.parse_sweep(data)


class SweepView(pn.viewable.Viewer):
    """Trials of the sweeps under `runs_dir` as they finish; start a small sweep from the page."""

    runs_dir = param.String(default="runs", doc="the runs folder (sweeps are in runs/sweeps/)")
    period_ms = param.Integer(default=1000, bounds=(MIN_PERIOD_MS, None))

    def __init__(self, runs_dir: str | Path = "runs", handle: SweepHandle | None = None,
                 **params):
        super().__init__(runs_dir=str(runs_dir), **params)
        self.handle = handle
        self.frame = pd.DataFrame()          # the chosen sweep's trials, as last read
        self.plot_data = pd.DataFrame()      # the points drawn: finished trials, x, y, rule
        self._mtime: float | None = None
        self._loaded_id: str | None = None
        self._read_problem = ""                # why the chosen sweep's trials cannot be read ...
        self._draw_problem = ""                # ... or drawn
        self._closed = False
        self._tick = 0
        w = pn.widgets
        # {label: id}: an id is read from sweep.json, so its label is plain text (app/safe_text.py).
        self.sweep_select = w.Select(label="Sweep", options={}, sizing_mode="stretch_width")
        self.x_select = w.Select(label="x: hyper-parameter", options=list(X_CHOICES), value="sigma")
        self.y_select = w.Select(label="y: metric", options=list(Y_CHOICES), value="test_accuracy")
        # These two quote sweep ids and error messages: panes for outside text.
        self.status = text_pane("", sizing_mode="stretch_width")
        self.plot = pn.pane.HoloViews(self._empty(), sizing_mode="stretch_width", height=380)
        # the form
        from engine.data.registry import DATASETS
        from engine.rules import RULES
        self.form_rules = w.MultiChoice(label="Rules", options=list(RULES), value=["np", "fa", "bp"])
        self.form_dataset = w.Select(label="Dataset", options=list(DATASETS), value="digits")
        # Text boxes read on the server: a bad entry is named under its box, not silently reverted.
        self.form_samples = IntBox("samples", "Samples (random draws)", 6, start=1, end=48)
        self.form_seeds = IntBox("seeds", "Seeds per point", 1, start=1, end=5)
        self.form_steps = IntBox("steps", "Steps per trial", 500, start=10, end=20000)
        self.form_workers = IntBox("workers", "Local workers", min(2, sw.default_workers()), start=1,
                                   end=max(1, sw.default_workers()))
        self.form_seed = IntBox("seed", "Sweep seed", 0, start=0)
        self.start_button = w.Button(label="Start sweep", color="primary")
        self.stop_button = w.Button(label="Stop sweep", color="warning", disabled=True)
        self.form_message = text_pane("", sizing_mode="stretch_width")
        self.start_button.on_click(self._on_start)
        self.stop_button.on_click(self._on_stop)
        self.sweep_select.param.watch(lambda e: self.refresh(force=True), "value")
        self.x_select.param.watch(lambda e: self._redraw(), "value")
        self.y_select.param.watch(lambda e: self._redraw(), "value")
        self.refresh(force=True)
        served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
        if served:
            pn.state.on_session_destroyed(self._on_session_destroyed)
        self._callback = pn.state.add_periodic_callback(
            self._periodic, period=max(MIN_PERIOD_MS, int(self.period_ms)))

    # ---------------------------------------------------------------- layout
    def __panel__(self):
        form = pn.Column(
            pn.pane.Markdown("#### Start a small sweep\nRandom search over σ ∈ [1e-4, 1e-1], "
                             "lr ∈ [1e-4, 1e-2] (Adam), feedback_lr ∈ [0.05, 2] (log-uniform), on the "
                             "local cluster."),
            self.form_rules, self.form_dataset, self.form_samples, self.form_seeds,
            self.form_steps, self.form_workers, self.form_seed,
            pn.Row(self.start_button, self.stop_button), self.form_message, width=320)
        controls = pn.Row(self.sweep_select, self.x_select, self.y_select,
                          sizing_mode="stretch_width")
        return pn.Row(pn.Column(controls, self.status, self.plot, sizing_mode="stretch_width"),
                      form, sizing_mode="stretch_width")

    # ---------------------------------------------------------------- data
    def _sweeps(self) -> list[dict]:
        """The sweep.json of each sweep, newest first, each under an id that is text: its own, or
        else its folder's name (a file written by hand, or damaged)."""
        try:
            sweeps = sw.list_sweeps(self.runs_dir)
        except OSError:                   # a folder gone while it was listed: next time
            return []
        for info in sweeps:
            if not isinstance(info.get("sweep_id"), str) or not info["sweep_id"]:
                info["sweep_id"] = Path(info["path"]).name
        return sweeps

    def refresh(self, force: bool = False) -> None:
        """Re-read the sweep list and, if it changed on disk, the chosen sweep's trials."""
        sweeps = self._sweeps()
        # Each sweep's trials are read from the folder its sweep.json is in, never from a path
        # made of the id it holds ("../..").
        folders = {}
        for info in sweeps:
            folders.setdefault(info["sweep_id"], Path(info["path"]))
        if self.handle is not None and self.handle.sweep_id not in folders:
            folders = {self.handle.sweep_id: sw.sweep_dir(self.runs_dir, self.handle.sweep_id), **folders}
        ids = list(folders)
        options = {plain(sid): sid for sid in ids}
        if self.sweep_select.options != options:
            current = self.sweep_select.value
            self.sweep_select.options = options
            first = ids[0] if ids else None
            if current not in ids and current != first:
                self.sweep_select.value = first
                return                     # the value watcher refreshes
        sid = self.sweep_select.value
        path = folders[sid] / sw.TRIALS_FILE if sid in folders else None
        try:
            mtime = path.stat().st_mtime_ns if path is not None else None
        except OSError:
            mtime = None
        if force or sid != self._loaded_id or mtime != self._mtime:
            self._mtime, self._loaded_id = mtime, sid
            info = next((s for s in sweeps if s["sweep_id"] == sid), {})
            total = info.get("n_trials")
            self._total = total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None
            varied = info.get("varied")
            # Only names a table column can have: an entry becomes a menu option and an axis label.
            self._varied = [v for v in varied if isinstance(v, str) and v.isidentifier()] \
                if isinstance(varied, list) else []
            options = list(dict.fromkeys([v for v in self._varied if v != "rule"] + list(X_CHOICES)))
            if list(self.x_select.options) != options:
                self.x_select.options = options
            self._read_problem = ""
            try:
                self.frame = sw.load_trials(path) if mtime is not None else pd.DataFrame()
            except Exception as exc:       # pyarrow raises its own types for a table it cannot read
                self.frame, self._read_problem = pd.DataFrame(), f"{type(exc).__name__}: {exc}"
            if force and self._varied:
                preferred = [v for v in self._varied if v != "rule"]
                if preferred and self.x_select.value not in preferred:
                    self.x_select.value = preferred[0]    # the watcher redraws
                    self._update_status()
                    return
            self._redraw()
        self._update_status()

    def _points(self) -> pd.DataFrame:
        x, y = self.x_select.value, self.y_select.value
        df = self.frame
        cols = ["rule", x, y, "seed", "status", "run_id"]
        if df.empty or not {"rule", "status", x, y} <= set(df.columns):
            return pd.DataFrame(columns=cols)
        d = df[df["status"] == "finished"]
        d = d[[c for c in dict.fromkeys(cols) if c in d.columns]].copy()
        d = d[pd.to_numeric(d[y], errors="coerce").notna()]
        if x in LOG_X:
            d = d[pd.to_numeric(d[x], errors="coerce") > 0]
        return d.reset_index(drop=True)

    def _empty(self):
        return hv.Scatter(pd.DataFrame({"x": [], "y": []}), "x", "y").opts(
            responsive=True, height=360, title="no finished trials yet")

    def _redraw(self) -> None:
        problem = ""
        try:
            self._draw()
        except Exception as exc:          # a table of values no plot can take: say so, keep serving
            self.plot_data, self.plot.object = pd.DataFrame(), self._empty()
            problem = f"{type(exc).__name__}: {exc}"
        if problem != self._draw_problem:
            self._draw_problem = problem
            self._update_status()

    def _draw(self) -> None:
        x, y = self.x_select.value, self.y_select.value
        d = self._points()
        self.plot_data = d
        if d.empty:
            self.plot.object = self._empty()
            return
        rules = list(dict.fromkeys(d["rule"]))
        cmap = {r: RULE_COLORS.get(r, "#17becf") for r in rules}
        vdims = [y, "rule", "seed", "run_id"]
        scatter = hv.Scatter(d, kdims=[x], vdims=[c for c in vdims if c in d.columns]).opts(
            color="rule", cmap=cmap, size=8, alpha=0.8, logx=x in LOG_X, tools=["hover"],
            responsive=True, height=360, legend_position="right", show_legend=True,
            xlabel={"sigma": "σ"}.get(x, x), ylabel=y,
            # HoloViews formats a title ("{label}"): the id's own braces are doubled to stay text.
            title=plain(f"{self.sweep_select.value}: {y} vs {x}").replace("{", "{{").replace("}", "}}"))
        self.plot.object = scatter

    def _update_status(self) -> None:
        df = self.frame
        total = getattr(self, "_total", None)
        parts = []
        if self.sweep_select.value is None:
            parts.append(f"No sweeps in {md_code(f'{self.runs_dir}/sweeps')} yet: run `creditlab sweep` or "
                         "start one here.")
        else:
            statuses = df["status"].astype(str) if "status" in df.columns else pd.Series(dtype=str)
            counts = statuses.value_counts().to_dict()
            done = int(sum(counts.values()))
            parts.append(f"**{md_text(self.sweep_select.value)}**: {done}"
                         + (f" / {total}" if total else "") + " trials done, "
                         f"{counts.get('finished', 0)} finished, {counts.get('diverged', 0)} "
                         f"diverged, {counts.get('failed', 0)} failed")
            if self._read_problem or self._draw_problem:
                problem = self._read_problem or self._draw_problem
                parts.append(f"Cannot show its trials ({sw.TRIALS_FILE}): {md_text(problem)}")
        if self.handle is not None:
            s = self.handle.snapshot()
            line = f"Sweep started here: {s['status']}, {s['running']} running"
            if s["error"]:
                line += f". Error: {md_text(s['error'])}"
            parts.append(line)
        text = "  \n".join(parts)
        if self.status.object != text:
            self.status.object = text
        active = self.handle is not None and self.handle.active
        self.start_button.disabled = active
        self.stop_button.disabled = not active

    def _periodic(self) -> None:
        if self._closed:
            return
        self.refresh()

    # ---------------------------------------------------------------- the form
    def _on_start(self, event=None) -> None:
        if self.handle is not None and self.handle.active:
            self.form_message.object = "A sweep is already running; stop it first."
            return
        boxes = (self.form_samples, self.form_seeds, self.form_steps, self.form_workers, self.form_seed)
        bad = [box.error for box in boxes if box.error]
        if bad:
            self.form_message.object = f"Not started: {md_text(bad[0])}"
            return
        rules = list(self.form_rules.value)
        if not rules:
            self.form_message.object = "Choose at least one rule."
            return
        try:
            spec = small_sweep_spec(rules, self.form_samples.value, self.form_steps.value,
                                    self.form_seeds.value, self.form_dataset.value,
                                    self.form_seed.value)
        except sw.SweepError as exc:
            self.form_message.object = f"Not started: {md_text(exc)}"
            return
        n = len(spec.trials())
        if n > MAX_TRIALS:
            self.form_message.object = (f"Not started: {n} trials is more than this page runs "
                                        f"({MAX_TRIALS}); use `creditlab sweep` for big sweeps.")
            return
        serial = False
        try:
            sw.import_dask()
        except sw.SweepError:
            serial = True            # without the sweep extra: in-process, one trial at a time
        self.handle = SweepHandle(spec, self.runs_dir, workers=int(self.form_workers.value),
                                  serial=serial).start()
        self.form_message.object = (f"Started {md_code(spec.sweep_id)}: {n} trials"
                                    + (" in-process (Dask is not installed)" if serial else
                                       f" on {self.form_workers.value} local workers") + ".")
        self.refresh()
        if spec.sweep_id in self.sweep_select.options.values():
            self.sweep_select.value = spec.sweep_id

    def _on_stop(self, event=None) -> None:
        if self.handle is not None:
            self.handle.stop()
            self.form_message.object = "Stopping: running trials are saved as stopped; starting " \
                                       "the same sweep again resumes it."
        self._update_status()

    # ---------------------------------------------------------------- cleanup
    def _on_session_destroyed(self, session_context) -> None:
        self.close()

    def close(self) -> None:
        """Stop the sweep started here (if any) and the periodic refresh."""
        self._closed = True
        if self.handle is not None:
            self.handle.stop()
        try:
            self._callback.stop()
        except Exception:
            pass


__all__ = ["SweepView", "SweepHandle", "small_sweep_spec"]
