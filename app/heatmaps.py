"""The feedback of one layer as four heatmaps: B before the run's first step, B now, Wᵀ now, and
their pattern difference.

The maps show the matrices the engine published. Their "pattern difference" is display
arithmetic only: each matrix divided by its own largest |entry|, i.e. exactly the colours the two
maps show, subtracted. The other three maps are each on their own symmetric colour range
(±max|·|, written under the title): FA's B can be ten times smaller than Wᵀ, and on a shared
scale it looked empty.

The data sources are named `heatmap-start`, `heatmap-B`, `heatmap-WT`, `heatmap-diff` (their
colour mappers `heatmap-mapper-<same>`) and the figures' elements carry the CSS classes
`creditlab-heatmap` and `creditlab-heatmap-<key>`: the browser tests find them by these names
(the sources through `Bokeh.documents[0]`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import BasicTicker, ColorBar, ColumnDataSource, CustomJSHover, HoverTool, LinearColorMapper
from bokeh.palettes import RdBu11
from bokeh.plotting import figure

from app.plot_style import FONT, style_figure, subtitle

HEATMAP_KEYS = ("start", "B", "WT", "diff")   # B before the first step, B now, Wᵀ now, pattern diff
DIFF_RANGE = 1.0               # the pattern difference's fixed colour range: white = same pattern
HEATMAP_MIN_WIDTH = 210        # the plot grid puts as many of these side by side as fit
# A map's own minimum: story mode puts the four maps and a curve in one row (app/live_plots.py),
# 1280 px wide with the sidebar, where each map gets about 165 px.
STAGE_HEATMAP_MIN_WIDTH = 150
# Under the maps of a rule without feedback (pnp, whose layers learn from their own estimates);
# short, as a story-mode map is ~165 px wide.
NO_FEEDBACK = "no feedback"


# The hover's row and column of the cell under the pointer (value: the pointer's y or x).
ROW_HOVER_JS = "return String(Math.max(0, source.data.dh[0] - 1 - Math.floor(value)));"
COL_HOVER_JS = "return String(Math.max(0, Math.floor(value)));"


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
    # Short: a story-mode map is ~160 px wide at 1280 px, and a title there is cut off, not wrapped.
    return f"scale ±{scale:.3g}"


class Heatmaps:
    """One layer's feedback: B before the run's first step, B now, Wᵀ now, and their pattern difference.

    Each map has its own colour mapper (`heatmap-mapper-<key>`), symmetric around 0 at ±max|·| of
    the matrix it shows, and says that range under its title, so B's *pattern* can be compared
    with Wᵀ's even when B is ten times smaller. The difference map is on a fixed ±1 (white = the
    same colour in both maps). `show` opens on the top layer (last hidden ← output), the first
    whose B comes to look like Wᵀ, unless a layer is asked for.
    """

    # Each title on two lines, the map's name and then its detail: a title is drawn on the canvas
    # and never wraps, and in story mode a map is ~190 px wide at 1440 px (~160 px at 1280), too
    # narrow for "B at the start (step 0)" on one line. Every title has both lines at all times,
    # so that the four maps' images stay level.
    TITLES = {"start": "B at the start\n(no run yet)", "B": "B now\n(no run yet)",
              "WT": "Wᵀ now\n(backprop's)", "diff": "Difference\nin pattern"}
    # One sentence under each map (the page shows it beneath the figure).
    CAPTIONS = {"start": "The feedback B when the run began: what B now has moved away from.",
                "B": "The feedback this layer uses now to send the error down (red +, blue −).",
                "WT": "What backprop would use instead: the forward weights W, transposed.",
                "diff": "B's colours minus Wᵀ's (B/max|B| − Wᵀ/max|Wᵀ|): white everywhere = B has Wᵀ's "
                        "pattern."}

    def __init__(self):
        self.mappers, self.sources, self.figures, self.subtitles = {}, {}, {}, {}
        for key in HEATMAP_KEYS:
            # Blue negative, red positive (Bokeh's RdBu11 runs from blue to red).
            mapper = LinearColorMapper(palette=list(RdBu11), low=-1, high=1,
                                       nan_color="#dddddd", name=f"heatmap-mapper-{key}")
            source = ColumnDataSource(self._empty(), name=f"heatmap-{key}")
            fig = figure(title=self.TITLES[key], height=330, sizing_mode="stretch_width",
                         min_width=STAGE_HEATMAP_MIN_WIDTH, tools="hover,save,reset",
                         toolbar_location="above", x_axis_label="unit in layer i+1",
                         y_axis_label="unit in layer i",
                         css_classes=["creditlab-heatmap", f"creditlab-heatmap-{key}"],
                         tooltips=[("row", "$y{custom}"), ("col", "$x{custom}"), ("value", "@image{0.0000}")])
            # The image is drawn flipped (row 0 at the top, _map), so the pointer's y counts rows
            # from the bottom: the hover counts them from the top, as the matrix does, and both
            # indices are the cell's (floor), not the nearest grid line's (rounding).
            fig.select_one(HoverTool).formatters = {
                "$y": CustomJSHover(args={"source": source}, code=ROW_HOVER_JS),
                "$x": CustomJSHover(code=COL_HOVER_JS)}
            fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source,
                      color_mapper=mapper)
            fig.x_range.range_padding = fig.y_range.range_padding = 0
            fig.grid.visible = False
            style_figure(fig)
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
        rows, cols = (wt if b is None else b).shape
        self.layer = layer
        self.where = f"layer {layer} ← {above} ({rows}×{cols})"
        for key, fig in self.figures.items():
            fig.xaxis.axis_label = f"unit in {above}" if not top else "output unit"
            if key == HEATMAP_KEYS[0]:
                fig.yaxis.axis_label = f"unit in layer {layer}"
        now = f"(step {step:,})" if step is not None else "(latest)"
        if b is None:
            self._map("B", None, version, "B now\n(no B)", sub=NO_FEEDBACK)
        else:
            self._map("B", b, version, f"B now\n{now} {run_label}".strip())
        if wt is None:
            self._map("WT", None, version, "Wᵀ now\n(none)", sub="direct feedback")
            self._map("diff", None, version, "Difference\n(none)", sub="direct feedback")
        elif b is None:
            self._map("WT", wt, version, self.TITLES["WT"])
            self._map("diff", None, version, "Difference\n(none)", sub=NO_FEEDBACK)
        else:
            self._map("WT", wt, version, self.TITLES["WT"])
            self._map("diff", pattern_difference(b, wt), version, self.TITLES["diff"],
                      sub=f"fixed scale ±{DIFF_RANGE:g}")       # its formula is in its caption
        key = (id(first), layer)
        if key != self._first_shown:
            self._first_shown, self._first_ref = key, first
            first_entry = next((m for m in first or [] if m["layer"] == layer), None)
            if first_entry is None:
                self._map("start", None, version, "B at the start\n(waiting)")
            elif first_entry["B"] is None:
                self._map("start", None, version, "B at the start\n(no B)", sub=NO_FEEDBACK)
            else:
                at = f"(step {first_step:,})" if first_step is not None else "(first record)"
                self._map("start", first_entry["B"], version, f"B at the start\n{at}")
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
