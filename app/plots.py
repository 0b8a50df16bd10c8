"""The dashboard's plots: training curves, per-layer alignment curves, and B / Wᵀ heatmaps.

Plain Bokeh figures fed by `ColumnDataSource.stream`, not HoloViews DynamicMaps: on two cores a
HoloViews update costs 10–30 ms of server time per plot against ~1 ms for a raw stream, and eight
curve plots refreshed at 5 Hz must leave the CPU to training (the dashboard may cost at most 10 %
of the run's throughput). Every run gets its own data sources, named `curves-<run>` and
`evals-<run>`, and the heatmaps `heatmap-start`, `heatmap-B`, `heatmap-WT`, `heatmap-diff` (their
colour mappers `heatmap-mapper-<same>`): the browser tests read them by name through
`Bokeh.documents[0]`. The figures' elements carry CSS classes (`creditlab-curve`,
`creditlab-heatmap-<key>`) so that the browser tests can find them on the page.

Nothing here computes learning quantities: the curves plot the engine's records as they come, and
the heatmaps show the matrices the engine published. Their "pattern difference" is display
arithmetic only: each matrix divided by its own largest |entry|, i.e. exactly the colours the two
maps show, subtracted.

Every plot says in plain words what it shows and what a good value is (a title and a one-line
subtitle), for a class reading it off a projector. The heatmaps are B as it was at the run's first
record, B now and Wᵀ now, each on its own symmetric colour range (±max|·|, written under its
title): FA's B can be ten times smaller than Wᵀ, and on a shared scale it looked empty.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from bokeh.models import (BasicTicker, ColorBar, ColumnDataSource, HoverTool, Legend, LegendItem,
                          LinearColorMapper, NumeralTickFormatter, Range1d, Title)
from bokeh.palettes import Category10_10, RdBu11
from bokeh.plotting import figure

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"      # `save` writes the plot as PNG in the browser
RUN_COLORS = Category10_10
LAYER_DASHES = ("solid", "dashed", "dotted", "dotdash", "dashdot")
FONT = {"title": "12pt", "heatmap_title": "11pt", "subtitle": "10pt", "axis": "11pt",
        "ticks": "10pt", "legend": "9pt"}

# (record metric, title in plain words, what a good value is (+ the paper's notation), y label);
# one line per hidden layer, input side first.
LAYER_PLOTS: tuple[tuple[str, str, str, str], ...] = (
    ("weight_angle_deg", "Feedback B vs Wᵀ: angle",
     "0° = B points like Wᵀ, 90° = unrelated · ∠(B, Wᵀ)", "degrees"),
    ("signal_angle_deg", "Error signal vs backprop's: angle",
     "0° = same as backprop, 90° = unrelated · ∠(δ, δ_BP)", "degrees"),
    ("update_angle_deg", "Weight change vs backprop's: angle",
     "0° = same as backprop, 90° = unrelated · ∠(ΔW, ΔW_BP)", "degrees"),
    ("sign_congruence", "Signs of B that agree with Wᵀ",
     "1 = every sign agrees, 0.5 = chance (coin flips)", "fraction of equal signs"),
    ("estimator_angle_deg", "NP's error estimate vs the true error",
     "0° = exact, 90° = no information · ∠(λ̂, ∂L/∂h)", "degrees"),
    ("estimator_snr_db", "NP's error estimate: signal vs noise",
     "higher is better; 0 dB = noise as large as the signal (SNR)", "dB"),
)
SCALAR_PLOTS: tuple[tuple[str, str, str, str], ...] = (
    ("loss", "Loss (line: train, ●: test)", "lower is better", "loss"),
    ("accuracy", "Accuracy (line: train, ●: test)", "higher is better; 1 = every example right",
     "accuracy"),
)
LEGEND_PLOTS = ("loss",)       # run labels are long: one legend, the page lists the runs too
HEATMAP_KEYS = ("start", "B", "WT", "diff")   # B at the run's first record, B now, Wᵀ now, pattern diff
DIFF_RANGE = 1.0               # the pattern difference's fixed colour range: white = same pattern


def subtitle(fig, text: str) -> Title:
    """A second, smaller title line under the plot's title (what a good value is)."""
    sub = Title(text=text, text_font_size=FONT["subtitle"], text_font_style="italic",
                text_color="#444444")
    fig.add_layout(sub, "above")
    return sub


def _style(fig) -> None:
    fig.title.text_font_size = FONT["title"]
    for axis in (fig.xaxis, fig.yaxis):
        axis.axis_label_text_font_size = FONT["axis"]
        axis.major_label_text_font_size = FONT["ticks"]
    fig.xaxis.ticker.desired_num_ticks = 4
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.min_border_right = 12


CURVE_MIN_WIDTH = 360          # the plot grid puts as many of these side by side as fit
HEATMAP_MIN_WIDTH = 210


def _new_figure(title: str, good: str, y_label: str, y_axis_type: str = "linear", x_range=None):
    shared = {"x_range": x_range} if x_range is not None else {}
    fig = figure(title=title, height=270, sizing_mode="stretch_width", min_width=CURVE_MIN_WIDTH,
                 tools=TOOLS, y_axis_type=y_axis_type, x_axis_label="step", y_axis_label=y_label,
                 output_backend="canvas", css_classes=["creditlab-curve"], **shared)
    _style(fig)
    subtitle(fig, good)
    legend = Legend(items=[], location="top_right", label_text_font_size=FONT["legend"],
                    background_fill_alpha=0.7, click_policy="hide", spacing=0, padding=4,
                    glyph_height=12, label_height=12)
    fig.add_layout(legend)
    return fig


def columns_for(n_layers: int) -> list[str]:
    """The columns of a run's curve source (flatten_record names, per layer)."""
    cols = ["step", "train_loss", "train_accuracy"]
    for metric, *_ in LAYER_PLOTS:
        cols += [f"{metric}_{i}" for i in range(1, n_layers + 1)]
    return cols


def rows_to_columns(rows: list[dict[str, Any]], columns: Iterable[str]) -> dict[str, np.ndarray]:
    """Flat records → column arrays; a metric a record lacks (or holds as None) becomes NaN."""
    out = {}
    for col in columns:
        values = [row.get(col, math.nan) for row in rows]
        out[col] = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    return out


class CurvePlots:
    """Loss, accuracy and the per-layer alignment curves; every run overlaid, coloured by run."""

    def __init__(self):
        # One shared step axis (zoom one plot, all follow), spanning the runs' planned steps. A
        # fixed range, not a DataRange1d: the browser recomputes a data range on every update and
        # sends it back, which costs the server (and so the training thread) a message per pull.
        self.steps_axis = Range1d(0, 1)
        self.figures: dict[str, Any] = {}
        for key, title, good, ylabel in SCALAR_PLOTS + LAYER_PLOTS:
            axis_type = "log" if key == "loss" else "linear"
            self.figures[key] = _new_figure(title, good, ylabel, axis_type, x_range=self.steps_axis)
        self.figures["accuracy"].y_range = Range1d(0, 1.02)
        self.figures["sign_congruence"].y_range = Range1d(0, 1.02)
        for key in ("weight_angle_deg", "signal_angle_deg", "update_angle_deg", "estimator_angle_deg"):
            self.figures[key].y_range = Range1d(0, 95)
        # The two open-ended axes are fitted by fit_y_ranges() (once a second), for the same
        # reason as the step axis.
        self.figures["loss"].y_range = Range1d(1e-3, 1)
        self.figures["estimator_snr_db"].y_range = Range1d(-40, 0)
        for fig in self.figures.values():
            fig.xaxis.formatter = NumeralTickFormatter(format="0.[0]a")     # 12k, not 12000
        # Where σ or a learning rate changed during a run: one vertical line per change.
        self.changes = ColumnDataSource({"step": [], "color": [], "what": []}, name="changes")
        for fig in self.figures.values():
            span = fig.vspan(x="step", source=self.changes, line_color="color", line_width=2,
                             line_dash="dashed", line_alpha=0.8)
            fig.add_tools(HoverTool(renderers=[span], tooltips=[("change", "@what")],
                                    mode="vline"))
        self._runs: dict[Any, dict[str, Any]] = {}
        self._color_index = 0

    # -------------------------------------------------------------- runs
    def next_color(self) -> str:
        color = RUN_COLORS[self._color_index % len(RUN_COLORS)]
        self._color_index += 1
        return color

    def add_run(self, key: Any, label: str, n_layers: int, color: str | None = None,
                steps: int = 0) -> str:
        """Add a run's curves; `steps`, its planned length, widens the step axis to fit."""
        color = color or self.next_color()
        if steps > self.steps_axis.end:
            self.steps_axis.end = steps
        curves = ColumnDataSource(rows_to_columns([], columns_for(n_layers)), name=f"curves-{key}")
        evals = ColumnDataSource({"step": np.zeros(0), "test_loss": np.zeros(0),
                                  "test_accuracy": np.zeros(0)}, name=f"evals-{key}")
        renderers, items = [], []

        def add(fig, r, key):
            renderers.append((fig, r))
            if key not in LEGEND_PLOTS:
                return
            legend = fig.legend[0]
            for item in legend.items:
                if getattr(item.label, "value", item.label) == label:
                    item.renderers = item.renderers + [r]
                    return
            new = LegendItem(label=label, renderers=[r])
            legend.items = legend.items + [new]
            items.append((legend, new))

        for key_, column in (("loss", "train_loss"), ("accuracy", "train_accuracy")):
            fig = self.figures[key_]
            add(fig, fig.line("step", column, source=curves, color=color, line_width=1.5,
                              line_alpha=0.55), key_)
            test = "test_loss" if key_ == "loss" else "test_accuracy"
            add(fig, fig.line("step", test, source=evals, color=color, line_width=2.5), key_)
            add(fig, fig.scatter("step", test, source=evals, color=color, size=7), key_)
        for metric, *_ in LAYER_PLOTS:
            fig = self.figures[metric]
            for i in range(1, n_layers + 1):
                dash = LAYER_DASHES[(i - 1) % len(LAYER_DASHES)]
                add(fig, fig.line("step", f"{metric}_{i}", source=curves, color=color,
                                  line_width=2, line_dash=dash), metric)
        self._runs[key] = {"curves": curves, "evals": evals, "renderers": renderers,
                           "items": items, "color": color, "n_layers": n_layers, "label": label}
        return color

    def color(self, key: Any) -> str | None:
        return self._runs[key]["color"] if key in self._runs else None

    def has_run(self, key: Any) -> bool:
        return key in self._runs

    def length(self, key: Any) -> int:
        return len(self._runs[key]["curves"].data["step"])

    def stream(self, key: Any, rows: list[dict[str, Any]]) -> None:
        """Append flat records (flatten_record rows) to a run's curves, as one message."""
        if not rows:
            return
        run = self._runs[key]
        run["curves"].stream(rows_to_columns(rows, run["curves"].data.keys()))
        evals = [r for r in rows if _finite(r.get("test_loss"))]
        if evals:
            run["evals"].stream(rows_to_columns(evals, ("step", "test_loss", "test_accuracy")))

    def replace(self, key: Any, rows: list[dict[str, Any]]) -> None:
        """Replace a run's curves (after the buffer thinned its history, or for a loaded run)."""
        run = self._runs[key]
        run["curves"].data = rows_to_columns(rows, run["curves"].data.keys())
        evals = [r for r in rows if _finite(r.get("test_loss"))]
        run["evals"].data = rows_to_columns(evals, ("step", "test_loss", "test_accuracy"))

    def fit_y_ranges(self) -> None:
        """Fit the loss (log) and SNR axes to the data of every run, with a little margin."""
        fits = (("loss", ("train_loss",), ("test_loss",), True),
                ("estimator_snr_db", None, (), False))
        for fig_key, curve_cols, eval_cols, log in fits:
            values = []
            for run in self._runs.values():
                cols = curve_cols or [c for c in run["curves"].data if c.startswith("estimator_snr_db_")]
                values += [np.asarray(run["curves"].data[c], dtype=float) for c in cols]
                values += [np.asarray(run["evals"].data[c], dtype=float) for c in eval_cols]
            data = np.concatenate(values) if values else np.zeros(0)
            data = data[np.isfinite(data) & ((data > 0) if log else True)]
            if data.size == 0:
                continue
            lo, hi = float(data.min()), float(data.max())
            if log:
                lo, hi = lo / 1.3, hi * 1.3
            else:
                pad = max(1.0, 0.05 * (hi - lo))
                lo, hi = lo - pad, hi + pad
            rng = self.figures[fig_key].y_range
            if (rng.start, rng.end) != (lo, hi):
                rng.update(start=lo, end=hi)

    def mark_change(self, key: Any, step: int, what: str) -> None:
        color = self._runs[key]["color"] if key in self._runs else "#555555"
        self.changes.stream({"step": [step], "color": [color], "what": [what]})

    def set_visible(self, key: Any, visible: bool) -> None:
        for _, r in self._runs.get(key, {}).get("renderers", []):
            r.visible = visible

    def remove_run(self, key: Any) -> None:
        run = self._runs.pop(key, None)
        if run is None:
            return
        gone = {id(r) for _, r in run["renderers"]}
        for fig in self.figures.values():
            fig.renderers = [r for r in fig.renderers if id(r) not in gone]
            legend = fig.legend[0]
            legend.items = [it for it in legend.items
                            if not any(id(r) in gone for r in it.renderers)]

    def clear(self) -> None:
        for key in list(self._runs):
            self.remove_run(key)
        self.changes.data = {"step": [], "color": [], "what": []}
        self._color_index = 0


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def symmetric_range(matrix: np.ndarray | None) -> float:
    """max|entry| of a matrix: its map's colours run from −this (blue) to +this (red). 1 for an
    empty, all-zero or non-finite matrix (so a mapper never gets low == high)."""
    if matrix is None or matrix.size == 0:
        return 1.0
    finite = np.abs(matrix[np.isfinite(matrix)])
    scale = float(finite.max()) if finite.size else 0.0
    return scale if scale > 0 else 1.0


def pattern_difference(b: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """B/max|B| − Wᵀ/max|Wᵀ|: the colours of the B and Wᵀ maps, subtracted (each map is drawn on
    its own ±max|·| range). 0 everywhere = the same pattern, whatever the sizes; values lie in
    [−2, 2]. Display arithmetic only; the weight angle is the engine's measure of the same thing."""
    return b / symmetric_range(b) - wt / symmetric_range(wt)


def _range_text(scale: float) -> str:
    return f"own colour scale ±{scale:.3g}"


class Heatmaps:
    """One layer's feedback: B at the run's first record, B now, Wᵀ now, and their pattern difference.

    Each map has its own colour mapper (`heatmap-mapper-<key>`), symmetric around 0 at ±max|·| of
    the matrix it shows, and says that range under its title, so B's *pattern* can be compared
    with Wᵀ's even when B is ten times smaller. The difference map is on a fixed ±1 (white = the
    same colour in both maps). `show` opens on the top layer (last hidden ← output), the first
    whose B comes to look like Wᵀ, unless a layer is asked for.
    """

    TITLES = {"start": "B at the start", "B": "B now", "WT": "Wᵀ now (backprop's)",
              "diff": "Difference in pattern"}

    def __init__(self):
        self.mappers, self.sources, self.figures, self.subtitles = {}, {}, {}, {}
        for key in HEATMAP_KEYS:
            # Blue negative, red positive (Bokeh's RdBu11 runs from blue to red).
            mapper = LinearColorMapper(palette=list(RdBu11), low=-1, high=1,
                                       nan_color="#dddddd", name=f"heatmap-mapper-{key}")
            source = ColumnDataSource(self._empty(), name=f"heatmap-{key}")
            fig = figure(title=self.TITLES[key], height=330, sizing_mode="stretch_width",
                         min_width=HEATMAP_MIN_WIDTH, tools="hover,save,reset",
                         toolbar_location="above", x_axis_label="unit in layer i+1",
                         y_axis_label="unit in layer i",
                         css_classes=["creditlab-heatmap", f"creditlab-heatmap-{key}"],
                         tooltips=[("row", "$y{0}"), ("col", "$x{0}"), ("value", "@image{0.0000}")])
            fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source,
                      color_mapper=mapper)
            fig.x_range.range_padding = fig.y_range.range_padding = 0
            fig.grid.visible = False
            _style(fig)
            fig.title.text_font_size = FONT["heatmap_title"]
            fig.min_border_right = 6
            if key != HEATMAP_KEYS[0]:       # the same axes as the first map: room for the titles
                fig.yaxis.axis_label = None
            self.subtitles[key] = subtitle(fig, "")
            bar = ColorBar(color_mapper=mapper, orientation="horizontal", height=8, padding=4,
                           ticker=BasicTicker(desired_num_ticks=3),
                           major_label_text_font_size=FONT["ticks"])
            fig.add_layout(bar, "below")
            self.mappers[key], self.sources[key], self.figures[key] = mapper, source, fig
        self.mappers["diff"].update(low=-DIFF_RANGE, high=DIFF_RANGE)
        self.version = -1
        self.layer: int | None = None       # the layer shown last (None: nothing shown yet)
        self.where = ""                     # e.g. "layer 2 ← output (20×10)"
        self._first_shown: tuple | None = None
        self._first_ref: Any = None         # held, so that id() keys the snapshot shown

    @staticmethod
    def _empty(version: int = 0) -> dict[str, list]:
        return {"image": [np.full((1, 1), np.nan, dtype=np.float32)], "x": [0], "y": [0], "dw": [1],
                "dh": [1], "version": [version]}

    @staticmethod
    def top_layer(matrices: list[dict[str, Any]] | None) -> int | None:
        """The top layer: the one whose B carries the output's error (the last hidden layer)."""
        return max((m["layer"] for m in matrices), default=None) if matrices else None

    def clear(self) -> None:
        self.version = -1
        self.layer, self.where = None, ""
        self._first_shown = self._first_ref = None
        for key, source in self.sources.items():
            source.data = self._empty()
            self.figures[key].title.text = self.TITLES[key]
            self.subtitles[key].text = ""
            if key != "diff":
                self.mappers[key].update(low=-1, high=1)

    def show(self, matrices: list[dict[str, Any]] | None, layer: int | None = None,
             version: int = 0, run_label: str = "", step: int | None = None,
             first: list[dict[str, Any]] | None = None, first_step: int | None = None) -> bool:
        """Show `layer` (1-based; None or 0: the top layer) of a published matrix snapshot, and
        the same layer of `first`, the run's first snapshot (its map is only resent when the
        snapshot or the layer changes). False when the snapshot has no such layer."""
        if not matrices:
            return False
        layer = layer or self.top_layer(matrices)
        entry = next((m for m in matrices if m["layer"] == layer), None)
        if entry is None:
            return False
        b, wt = entry["B"], entry["WT"]
        top = layer == self.top_layer(matrices)
        above = "output" if top else f"layer {layer + 1}"
        rows, cols = b.shape
        self.layer = layer
        self.where = f"layer {layer} ← {above} ({rows}×{cols})"
        for key, fig in self.figures.items():
            fig.xaxis.axis_label = f"unit in {above}" if not top else "output unit"
            if key == HEATMAP_KEYS[0]:
                fig.yaxis.axis_label = f"unit in layer {layer}"
        now = f" (step {step:,})" if step is not None else ""
        self._map("B", b, version, f"B now{now} {run_label}".strip())
        if wt is None:
            self._map("WT", None, version, "Wᵀ: none", sub="direct feedback: no Wᵀ")
            self._map("diff", None, version, "Difference: none", sub="direct feedback: no Wᵀ")
        else:
            self._map("WT", wt, version, self.TITLES["WT"])
            self._map("diff", pattern_difference(b, wt), version, self.TITLES["diff"],
                      sub=f"B/max|B| − Wᵀ/max|Wᵀ|, ±{DIFF_RANGE:g}")
        key = (id(first), layer)
        if key != self._first_shown:
            self._first_shown, self._first_ref = key, first
            first_entry = next((m for m in first or [] if m["layer"] == layer), None)
            if first_entry is None:
                self._map("start", None, version, "B at the start: waiting for the first record")
            else:
                at = f" (step {first_step:,})" if first_step is not None else ""
                self._map("start", first_entry["B"], version, f"B at the start{at}")
        self.version = version
        return True

    def _map(self, key: str, matrix: np.ndarray | None, version: int, title: str,
             sub: str | None = None) -> None:
        """One map: its data (row 0, the first unit of layer i, at the top, as in a printed
        matrix), its title, and for B / Wᵀ its own symmetric colour range."""
        self.figures[key].title.text = title
        if matrix is None:
            self.sources[key].data = self._empty(version)
            self.subtitles[key].text = sub or ""
            return
        if key != "diff":
            scale = symmetric_range(matrix)
            self.mappers[key].update(low=-scale, high=scale)
            sub = sub or _range_text(scale)
        self.subtitles[key].text = sub or ""
        image = np.flipud(matrix)
        rows, cols = image.shape
        self.sources[key].data = {"image": [np.ascontiguousarray(image, dtype=np.float32)],
                                  "x": [0], "y": [0], "dw": [cols], "dh": [rows],
                                  "version": [version]}
