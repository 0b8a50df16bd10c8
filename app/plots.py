"""The dashboard's plots: training curves, per-layer alignment curves, and B / Wᵀ heatmaps.

Plain Bokeh figures fed by `ColumnDataSource.stream`, not HoloViews DynamicMaps: on two cores a
HoloViews update costs 10–30 ms of server time per plot against ~1 ms for a raw stream, and eight
curve plots refreshed at 5 Hz must leave the CPU to training (the dashboard may cost at most 10 %
of the run's throughput).

Nothing in them computes learning quantities: the curves plot the engine's records as they come,
and the heatmaps show the matrices the engine published. Every plot says in plain words what it
shows and what a good value is (a title and a one-line subtitle), for a class reading it off a
projector.

The code lives in app/curves.py (`CurvePlots`), app/heatmaps.py (`Heatmaps`) and
app/plot_style.py (the fonts and subtitle line both use); this module names it all in one place,
so `from app.plots import …` keeps working.
"""

from __future__ import annotations

from app.curves import (CURVE_MIN_WIDTH, LAYER_DASHES, LAYER_PLOTS, LEGEND_PLOTS, RUN_COLORS, SCALAR_PLOTS,
                        TOOLS, CurvePlots, columns_for, rows_to_columns)
from app.heatmaps import DIFF_RANGE, HEATMAP_KEYS, HEATMAP_MIN_WIDTH, Heatmaps, pattern_difference, symmetric_range
from app.plot_style import FONT, subtitle

__all__ = ["CURVE_MIN_WIDTH", "DIFF_RANGE", "FONT", "HEATMAP_KEYS", "HEATMAP_MIN_WIDTH", "LAYER_DASHES",
           "LAYER_PLOTS", "LEGEND_PLOTS", "RUN_COLORS", "SCALAR_PLOTS", "TOOLS", "CurvePlots", "Heatmaps",
           "columns_for", "pattern_difference", "rows_to_columns", "subtitle", "symmetric_range"]
