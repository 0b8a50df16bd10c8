"""The learning curves: loss, accuracy and the per-layer alignment curves, every run overlaid.

Every run gets its own data sources, named `curves-<run>` and `evals-<run>`, and the figures'
elements carry the CSS class `creditlab-curve`: the browser tests find them by these names (the
sources through `Bokeh.documents[0]`). The curves plot the engine's records as they come; nothing
here computes a learning quantity.

A population (a run of several seeds) draws its members' mean, the record's own top-level values,
as a line, and a shaded band from its lowest to its highest member (`<column>_min`, `<column>_max`
in the same sources, so a band streams in the line's message). Its band renderers are named
`band-<run>`. A run of one seed has neither the columns nor the bands.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from bokeh.models import (ColumnDataSource, FixedTicker, HoverTool, Legend, LegendItem, NumeralTickFormatter, Range1d,
                          Title)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from app.plot_style import (FOCUS_SUBTITLE_CHARS, FOCUS_TITLE_CHARS, FONT, narrow_lines, phrase_lines, style_figure,
                             subtitle, subtitle_model)
from engine.metric_names import METRICS
from engine.stream import flatten_record

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"      # `save` writes the plot as PNG in the browser
RUN_COLORS = Category10_10
# One line style per hidden layer, distinct up to the deepest net the settings allow (6 layers;
# the named five, then patterns of their own: the sixth once reused layer 1's solid line).
LAYER_DASHES = ("solid", "dashed", "dotted", "dotdash", "dashdot", [12, 3, 2, 3, 2, 3], [1, 6],
                [14, 6])

# (record metric, title in plain words, what a good value is (+ the paper's notation), y label),
# from the metric registry; one line per hidden layer, input side first.
def _plot(name: str, title: str | None = None, notation: bool = True) -> tuple[str, str, str, str]:
    m = METRICS[name]
    good = f"{m.good} · {m.notation}" if notation and m.notation not in m.title else m.good
    return (name, title or m.title, good, m.unit)


LAYER_PLOTS: tuple[tuple[str, str, str, str], ...] = tuple(_plot(name) for name in (
    "weight_angle_deg", "signal_angle_deg", "update_angle_deg", "sign_congruence",
    "estimator_angle_deg", "estimator_snr_db"))
SCALAR_PLOTS: tuple[tuple[str, str, str, str], ...] = (
    _plot("loss", "Loss (line: train, ●: test)", notation=False),
    _plot("accuracy", "Accuracy (line: train, ●: test)", notation=False),
)
# One sentence under each plot, for a class reading it off a projector: what it shows, and what
# good looks like (the subtitle's short form, in a whole sentence).
CAPTIONS = {
    "loss": "How wrong the network's outputs are (line: training batches, dots: the test set); "
            "lower is better.",
    "accuracy": "The share of examples the network gets right (line: training batches, dots: the "
                "test set); 1 = every one right.",
    "weight_angle_deg": "The angle between each layer's feedback B and backprop's Wᵀ: "
                        "0° = B points like Wᵀ, 90° = unrelated.",
    "signal_angle_deg": "The angle between the error each layer gets and the one backprop would "
                        "send: 0° = same direction as backprop, 90° = unrelated.",
    "update_angle_deg": "The angle between each layer's weight change and backprop's: "
                        "0° = the same step as backprop, 90° = unrelated.",
    "sign_congruence": "The share of B's entries whose sign agrees with Wᵀ's: 1 = every sign "
                       "agrees, 0.5 = chance.",
    "estimator_angle_deg": "Node perturbation only: the angle between its noisy estimate of a "
                           "layer's error and the true one: 0° = exact, 90° = no information.",
    "estimator_snr_db": "Node perturbation only: how far the estimate's signal stands above its "
                        "noise; higher is better, 0 dB = as much noise as signal.",
}
# A population's band runs from its lowest member to its highest, not mean ± std: with a handful
# of seeds a std is itself noisy, and mean − std can fall below zero on the log loss axis.
BAND_SUFFIXES = ("_min", "_max")
BAND_NOTE = "Shaded: the lowest to the highest of a run's seeds; the line is their mean."
BAND_ALPHA = 0.15
LEGEND_PLOTS = ("loss",)       # run labels are long: one legend, the page lists the runs too
CURVE_MIN_WIDTH = 360          # the plot grid puts as many of these side by side as fit
FOCUS_MIN_WIDTH = 250          # a curve's own minimum: story mode's one curve beside the heatmaps
SPARE_LAYERS = 4               # the spare curves made ahead fit runs of up to this many hidden layers
FIRST_SPAN = 2000              # the step axis's first span for a run: it doubles as the run reaches its end


def _new_figure(title: str, good: str, y_label: str, y_axis_type: str = "linear", x_range=None,
                key: str = "", lines: int = 1):
    shared = {"x_range": x_range} if x_range is not None else {}
    fig = figure(title=title, height=270, sizing_mode="stretch_width", min_width=FOCUS_MIN_WIDTH,
                 tools=TOOLS, y_axis_type=y_axis_type, x_axis_label="step", y_axis_label=y_label,
                 output_backend="canvas", css_classes=["creditlab-curve", f"creditlab-curve-{key}"], **shared)
    style_figure(fig)
    # On lines that fit the narrowest plot (a title never wraps), and as many as the longest
    # subtitle has, blank ones last: the plots of a row then start their axes at one height.
    good = phrase_lines(good)
    subtitle(fig, good + "\n" * (lines - 1 - good.count("\n")))
    legend = Legend(items=[], location="top_right", label_text_font_size=FONT["legend"],
                    background_fill_alpha=0.7, click_policy="hide", spacing=0, padding=4,
                    glyph_height=12, label_height=12)
    # Not drawn: a run's label is wider than a plot at 1280 px and was cut off at its left edge;
    # the coloured key above the plots (app/run_status.py) names every run, and wraps. Its
    # items are kept, so the labels stay one place to read them from.
    legend.visible = False
    fig.add_layout(legend)
    return fig


def columns_for(n_layers: int) -> list[str]:
    """The columns of a run's curve source (flatten_record names, per layer)."""
    cols = ["step", "train_loss", "train_accuracy"]
    for metric, *_ in LAYER_PLOTS:
        cols += [f"{metric}_{i}" for i in range(1, n_layers + 1)]
    return cols


def band_columns(columns: Iterable[str]) -> list[str]:
    """A population's band columns for `columns` (every one but `step`)."""
    return [c + s for c in columns if c != "step" for s in BAND_SUFFIXES]


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a curve row: flatten_record's row, and a population's `members` as the record
    has them (read column by column when the band columns are made, not flattened member by
    member: that tripled a population's cost per record)."""
    row = flatten_record(record)
    members = record.get("members")
    if members:
        row["members"] = members
    return row


def rows_to_columns(rows: list[dict[str, Any]], columns: Iterable[str]) -> dict[str, np.ndarray]:
    """Flat records → column arrays; a metric a record lacks (or holds as None) becomes NaN. A band
    column (`<column>_min`/`_max`, its column also asked for) is drawn from each row's `members`."""
    columns = list(columns)
    asked = set(columns)
    bases = [c for c in columns if c + BAND_SUFFIXES[0] in asked]
    out = member_spread(rows, bases) if bases else {}
    for col in columns:
        if col not in out:
            out[col] = np.asarray([row.get(col) for row in rows], dtype=float)   # None → NaN
    return out


def _member_table(rows: list[dict[str, Any]], bases: list[str]) -> np.ndarray:
    """(rows, members, bases): each row's members' values; NaN where a row has fewer members
    (a run of one seed has none) or a member lacks a value. A member is a record's (its layers
    nested, engine/trainer.py) or a saved table's row (flat `<metric>_<layer>` columns)."""
    width = max((len(row.get("members") or ()) for row in rows), default=0)
    table = np.full((len(rows), max(width, 1), len(bases)), math.nan)
    if not width:
        return table
    # A record's member is read as one list: its scalars, then each layer's metrics in turn
    # (plain comprehensions, no call per value), and `pick` takes the bases' places in it.
    scalars, names, layers, places = [], [], 0, []
    for base in bases:
        name, _, layer = base.rpartition("_")
        if name and layer.isdigit():
            names += [name] if name not in names else []
            layers = max(layers, int(layer))
        else:
            scalars.append(base)
    for base in bases:
        name, _, layer = base.rpartition("_")
        places.append(len(scalars) + (int(layer) - 1) * len(names) + names.index(name)
                      if name and layer.isdigit() else scalars.index(base))
    pick = np.asarray(places, dtype=int)
    for i, row in enumerate(rows):
        members = row.get("members")
        if not members:
            continue
        if "layers" in members[0]:
            values = [[m.get(k) for k in scalars] + [layer.get(n) for layer in _padded(m["layers"], layers)
                                                      for n in names] for m in members]
            table[i, :len(members)] = np.asarray(values, dtype=float)[:, pick]   # None → NaN
        else:
            values = [[m.get(b) for b in bases] for m in members]
            table[i, :len(members)] = np.asarray(values, dtype=float)
    return table


def _padded(layers: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """A member's first `n` layers, with empty ones for any it lacks (every entry then None)."""
    return layers[:n] if len(layers) >= n else list(layers) + [{}] * (n - len(layers))


def member_spread(rows: list[dict[str, Any]], bases: list[str]) -> dict[str, np.ndarray]:
    """`<base>_min` and `<base>_max` over each row's members, NaN-aware (fmin/fmax skip a NaN member;
    NaN only where no member has a value)."""
    table = _member_table(rows, bases)
    lo, hi = np.fmin.reduce(table, axis=1), np.fmax.reduce(table, axis=1)
    out = {}
    for k, base in enumerate(bases):
        out[base + "_min"], out[base + "_max"] = lo[:, k], hi[:, k]
    return out


def fold_members(rows: list[dict[str, Any]], columns: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of one row per member and step (a saved population's table: `member`, `seed`
    columns) → one row per step: the members' mean of each of `columns` (NaN-aware, as the
    engine's own records give it), and the members themselves for the band columns."""
    steps: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        steps.setdefault(row.get("step"), []).append(row)
    grouped = [{"step": step, "members": members} for step, members in steps.items()]
    bases = [c for c in columns if c != "step"]
    if not grouped or not bases:
        return grouped
    table = _member_table(grouped, bases)
    defined = ~np.isnan(table)
    count = defined.sum(axis=1)
    total = np.where(defined, table, 0.0).sum(axis=1)
    means = np.divide(total, count, out=np.full(total.shape, math.nan), where=count > 0)
    for row, values in zip(grouped, means.tolist()):
        row.update(zip(bases, values))
    return grouped


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks for a log axis from lo to hi, evenly spread on it: 1, 2 and 5 of each decade, every
    digit where the range is too narrow for three of those, every decade where it spans more than
    four (at most ~13 labels)."""
    def ticks(mantissas, step=1):
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [float(f"{m}e{d}") for d in range(first, last + 1, step) for m in mantissas
                if lo <= float(f"{m}e{d}") <= hi]
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    decades = math.log10(hi / lo)
    if decades > 4:
        return ticks((1,), step=math.ceil(decades / 8))
    found = ticks((1, 2, 5))
    return found if len(found) >= 3 else ticks(range(1, 10))


class CurvePlots:
    """Loss, accuracy and the per-layer alignment curves; every run overlaid, coloured by run."""

    def __init__(self):
        # One shared step axis (zoom one plot, all follow), spanning the runs' planned steps. A
        # fixed range, not a DataRange1d: the browser recomputes a data range on every update and
        # sends it back, which costs the server (and so the training thread) a message per pull.
        self.steps_axis = Range1d(0, 1)
        self.figures: dict[str, Any] = {}
        # Each plot's title text and subtitle for the grid, and for story mode (see fit_titles).
        self._titles: dict[str, tuple[tuple[str, Title], tuple[str, Title]]] = {}
        lines = max(phrase_lines(good).count("\n") + 1 for _, _, good, _ in SCALAR_PLOTS + LAYER_PLOTS)
        for key, title, good, ylabel in SCALAR_PLOTS + LAYER_PLOTS:
            axis_type = "log" if key == "loss" else "linear"
            self.figures[key] = _new_figure(title, good, ylabel, axis_type, x_range=self.steps_axis, key=key,
                                            lines=lines)
            fig = self.figures[key]
            self._titles[key] = ((title, next(t for t in fig.above if isinstance(t, Title))),
                                 (narrow_lines(title, FOCUS_TITLE_CHARS),
                                  subtitle_model(narrow_lines(good, FOCUS_SUBTITLE_CHARS))))
        self.figures["accuracy"].y_range = Range1d(0, 1.02)
        self.figures["sign_congruence"].y_range = Range1d(0, 1.02)
        for key in ("weight_angle_deg", "signal_angle_deg", "update_angle_deg", "estimator_angle_deg"):
            self.figures[key].y_range = Range1d(0, 95)
        # The two open-ended axes are fitted by fit_y_ranges() (once a second), for the same
        # reason as the step axis.
        self.figures["loss"].y_range = Range1d(1e-3, 1)
        # Bokeh's log ticker spaces its ticks linearly below two decades (0.1, 0.2, … 0.5), which
        # leaves the lower half of a 0.02–0.5 loss axis, where a run ends, without a label.
        self.figures["loss"].yaxis.ticker = FixedTicker(ticks=log_ticks(1e-3, 1))
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
        self._made = 0                               # sets of curves made (their names)
        self._spare: dict[str, Any] | None = None    # the next run's curves, made ahead, hidden
        self.prepare_spare(whole=True)

    def fit_titles(self, key: str, narrow: bool) -> None:
        """Plot `key`'s title and subtitle on story mode's narrow lines (`narrow`: it is the curve
        beside the heatmaps) or on the grid's. Narrow only there: in the grid every title would
        take two lines, and the subtitles up to four, of the plots' height.

        The subtitle is swapped as a model, not as text: BokehJS lays a plot's titles out again
        when the models above it change, not when a title's text does (a title grown to two lines
        had its first drawn above the canvas), nor when its `title` is another model."""
        fig, (wide, thin) = self.figures[key], self._titles[key]
        fig.title.text, sub = thin if narrow else wide
        fig.above = [sub if r in (wide[1], thin[1]) else r for r in fig.above]

    # -------------------------------------------------------------- runs
    def next_color(self) -> str:
        color = RUN_COLORS[self._color_index % len(RUN_COLORS)]
        self._color_index += 1
        return color

    def add_run(self, key: Any, label: str, n_layers: int, color: str | None = None,
                steps: int = 0, members: int = 1) -> str:
        """Add a run's curves; `steps`, its planned length, is fitted by the step axis; a
        population (`members` > 1) gets band columns now, and its bands from `build_bands`.

        A run takes the spare set of curves when it has enough layers: renaming two sources and
        recolouring and showing renderers the page already has is a small message, where new
        renderers took the browser seconds to build, so the first point showed late. A deeper run
        takes it too, and gets only its extra layers' lines new (a whole new set made a depth-6
        run's first point wait 17–35 s)."""
        color = color or self.next_color()
        spare = self._spare
        if spare is not None:
            self.prepare_spare(whole=True)       # a spare still being built: finish it now
            self._spare = None
            made = spare
            if n_layers > made["n_layers"]:
                self._deepen(made, n_layers, color)
        else:
            made = self._make(f"new-{self._made}", n_layers, color)
        made["curves"].name, made["evals"].name = f"curves-{key}", f"evals-{key}"
        renderers, unused = [], []
        for fig, r, layer in made["renderers"]:
            if layer is not None and layer > n_layers:
                unused.append((fig, r))          # a spare's extra layers: hidden, never drawn
                continue
            if spare is not None:
                _recolor(r, color)
                r.visible = True
            renderers.append((fig, r))
        if members > 1:
            _add_band_columns(made, n_layers)
        items = []
        for legend_key in LEGEND_PLOTS:
            fig = self.figures[legend_key]
            mine = [r for f, r in renderers if f is fig]
            item = LegendItem(label=label, renderers=mine)
            fig.legend[0].items = fig.legend[0].items + [item]
            items.append((fig.legend[0], item))
        self._runs[key] = {"curves": made["curves"], "evals": made["evals"], "renderers": renderers,
                           "unused": unused, "items": items, "color": color, "n_layers": n_layers,
                           "label": label, "members": members, "visible": True, "steps": steps,
                           "span": _first_span(steps),
                           # Its bands, a figure per call of build_bands, after its first points:
                           # all at once, a population's Start took the page 5–8 s (2-core host).
                           "bands_todo": list(self.figures) if members > 1 else []}
        self._fit_steps_axis()
        return color

    def _fit_steps_axis(self) -> None:
        """The step axis spans the longest run shown, no more: a 100,000-step run that is gone
        or hidden must not leave a 2,000-step one a sliver at its left edge. A run spans its
        planned steps once it is far enough along; before, the span it has reached (`_reach`),
        so its first seconds, where a lecture's moment happens, are not a sliver either."""
        end = max((run["span"] for run in self._runs.values() if run["visible"]), default=0) or 1
        if self.steps_axis.end != end:           # (an equal value would still be a message)
            self.steps_axis.end = end

    def _reach(self, run: dict[str, Any], step: float) -> None:
        """Double the run's span until it holds `step` (its planned steps at most), in jumps:
        a curve that reaches the right edge is then halfway across, and the axis moves ~log₂
        times a run, not at every pull."""
        if step <= run["span"]:
            return
        span, planned = run["span"], run["steps"]
        while span < step:
            span *= 2
        # past its plan (a resumed run, or one of unknown length): the doubled span
        run["span"] = min(span, planned) if planned >= step else span
        self._fit_steps_axis()

    @property
    def bands_pending(self) -> bool:
        """Whether a population with points still lacks some of its bands."""
        return any(run["bands_todo"] and len(run["curves"].data["step"]) for run in self._runs.values())

    def build_bands(self, whole: bool = False) -> bool:
        """Add one figure's bands of a population that still lacks some (every one: `whole`),
        once it has points (its first points are not held up behind them). New renderers make
        the page lay that figure out again, so the slow pull adds them a figure at a time, as it
        builds the spare curves. Whether it added any."""
        built = False
        for key, run in self._runs.items():
            while run["bands_todo"] and len(run["curves"].data["step"]):
                self._add_bands(key, run, run["bands_todo"].pop(0))
                built = True
                if not whole:
                    return True
        return built

    def _add_bands(self, key: Any, run: dict[str, Any], fig_key: str) -> None:
        """A run's bands on figure `fig_key`, one under each of its lines there."""
        fig, curves, evals = self.figures[fig_key], run["curves"], run["evals"]
        if fig_key in ("loss", "accuracy"):
            pairs = [(f"train_{fig_key}", curves), (f"test_{fig_key}", evals)]
        else:
            pairs = [(f"{fig_key}_{i}", curves) for i in range(1, run["n_layers"] + 1)]
        for column, source in pairs:
            # At the grid's level, under the lines: a band shades, it does not cover a line.
            r = fig.varea(x="step", y1=column + "_min", y2=column + "_max", source=source,
                          fill_color=run["color"], fill_alpha=BAND_ALPHA, level="underlay",
                          name=f"band-{key}", visible=run["visible"])
            run["renderers"].append((fig, r))

    @property
    def has_population(self) -> bool:
        """Whether any run shown is a population (its curves have bands)."""
        return any(run["members"] > 1 for run in self._runs.values())

    def members(self, key: Any) -> int:
        return self._runs[key]["members"] if key in self._runs else 1

    def prepare_spare(self, whole: bool = False) -> None:
        """Build the next run's curves ahead of its Start, hidden: one figure's renderers per
        call (the page lays itself out again after each figure's change: all eight at once
        froze it for two seconds, eight or more on a slow machine), or the `whole` set."""
        if self._spare is None:
            self._spare = self._sources(f"building-{self._made}", SPARE_LAYERS)
            self._spare["todo"] = list(self.figures)
        spare = self._spare
        while spare["todo"]:
            self._add_renderers(spare, spare["todo"].pop(0), "#999999", visible=False)
            if not whole:
                break
        if not spare["todo"] and not spare["curves"].name.startswith("spare-"):
            # Named once complete: the browser tests wait for this name before a second Start.
            base = spare["curves"].name.removeprefix("building-").removesuffix("-curves")
            spare["curves"].name, spare["evals"].name = f"spare-{base}-curves", f"spare-{base}-evals"

    @property
    def has_spare(self) -> bool:
        return self._spare is not None and not self._spare["todo"]

    def _make(self, name: str, n_layers: int, color: str) -> dict[str, Any]:
        """One run's sources and renderers on every figure."""
        made = self._sources(name, n_layers)
        for key in self.figures:
            self._add_renderers(made, key, color, visible=True)
        return made

    def _sources(self, name: str, n_layers: int) -> dict[str, Any]:
        """One run's two data sources, and no renderers yet."""
        self._made += 1
        curves = ColumnDataSource(rows_to_columns([], columns_for(n_layers)), name=f"{name}-curves")
        evals = ColumnDataSource({"step": np.zeros(0), "test_loss": np.zeros(0),
                                  "test_accuracy": np.zeros(0)}, name=f"{name}-evals")
        return {"curves": curves, "evals": evals, "renderers": [], "n_layers": n_layers, "todo": []}

    def _deepen(self, made: dict[str, Any], n_layers: int, color: str) -> None:
        """A set of curves made for fewer layers, given the rest: their columns, and their lines
        on each per-layer plot (new renderers, shown)."""
        first = made["n_layers"] + 1
        made["curves"].data = rows_to_columns([], columns_for(n_layers))     # (still empty)
        made["n_layers"] = n_layers
        for key, *_ in LAYER_PLOTS:
            self._add_renderers(made, key, color, visible=True, first_layer=first)

    def _add_renderers(self, made: dict[str, Any], key: str, color: str, visible: bool,
                       first_layer: int = 1) -> None:
        """A run's renderers on figure `key`, each listed with the layer it draws (None: not a
        per-layer curve); of a per-layer plot, the lines of layers `first_layer` on."""
        fig, curves, evals = self.figures[key], made["curves"], made["evals"]
        out = made["renderers"]
        if key in ("loss", "accuracy"):
            if first_layer > 1:
                return
            column, test = ("train_loss", "test_loss") if key == "loss" else ("train_accuracy", "test_accuracy")
            out += [(fig, fig.line("step", column, source=curves, color=color, line_width=1.5,
                                   line_alpha=0.55, visible=visible), None),
                    (fig, fig.line("step", test, source=evals, color=color, line_width=2.5,
                                   visible=visible), None),
                    (fig, fig.scatter("step", test, source=evals, color=color, size=7,
                                      visible=visible), None)]
            return
        for i in range(first_layer, made["n_layers"] + 1):
            dash = LAYER_DASHES[(i - 1) % len(LAYER_DASHES)]
            out.append((fig, fig.line("step", f"{key}_{i}", source=curves, color=color,
                                      line_width=2, line_dash=dash, visible=visible), i))

    def color(self, key: Any) -> str | None:
        return self._runs[key]["color"] if key in self._runs else None

    def relabel(self, key: Any, label: str) -> None:
        """A run's legend entry now reads `label` (its live σ, lr or η_B changed)."""
        run = self._runs.get(key)
        if run is None or run["label"] == label:
            return
        run["label"] = label
        for _legend, item in run["items"]:
            item.label = label

    def has_run(self, key: Any) -> bool:
        return key in self._runs

    def length(self, key: Any) -> int:
        return len(self._runs[key]["curves"].data["step"])

    def stream(self, key: Any, rows: list[dict[str, Any]]) -> None:
        """Append flat records (flat_row rows: a population's with its members) to a run's
        curves, as one message."""
        if not rows:
            return
        run = self._runs[key]
        run["curves"].stream(rows_to_columns(rows, run["curves"].data.keys()))
        self._reach(run, rows[-1]["step"])
        evals = [r for r in rows if _finite(r.get("test_loss"))]
        if evals:
            run["evals"].stream(rows_to_columns(evals, run["evals"].data.keys()))

    def replace(self, key: Any, rows: list[dict[str, Any]]) -> None:
        """Replace a run's curves (after the buffer thinned its history, or for a loaded run: a
        saved population's rows, one per member and step, are folded into one per step)."""
        run = self._runs[key]
        if rows and "member" in rows[0] and "members" not in rows[0]:
            rows = fold_members(rows, [c for c in list(run["curves"].data) + ["test_loss", "test_accuracy"]
                                       if not c.endswith(BAND_SUFFIXES)])
        run["curves"].data = rows_to_columns(rows, run["curves"].data.keys())
        evals = [r for r in rows if _finite(r.get("test_loss"))]
        run["evals"].data = rows_to_columns(evals, run["evals"].data.keys())
        if rows:
            self._reach(run, rows[-1]["step"])

    def fit_y_ranges(self) -> None:
        """Fit the loss (log) and SNR axes to the data of every run, with a little margin."""
        # (a population's band columns count: the band must fit too; SNR's are in its prefix)
        loss = ("loss", ("train_loss", "train_loss_min", "train_loss_max"),
                ("test_loss", "test_loss_min", "test_loss_max"), True)
        fits = (loss, ("estimator_snr_db", None, (), False))
        for fig_key, curve_cols, eval_cols, log in fits:
            values = []
            for run in self._runs.values():
                cols = curve_cols or [c for c in run["curves"].data if c.startswith("estimator_snr_db_")]
                values += [np.asarray(run["curves"].data[c], dtype=float) for c in cols
                           if c in run["curves"].data]
                values += [np.asarray(run["evals"].data[c], dtype=float) for c in eval_cols
                           if c in run["evals"].data]
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
                if log:
                    self.figures[fig_key].yaxis.ticker.ticks = log_ticks(lo, hi)

    def mark_change(self, key: Any, step: int, what: str) -> None:
        color = self._runs[key]["color"] if key in self._runs else "#555555"
        self.changes.stream({"step": [step], "color": [color], "what": [what]})

    def set_visible(self, key: Any, visible: bool) -> None:
        run = self._runs.get(key)
        if run is None:
            return
        run["visible"] = visible                 # (bands built later follow it)
        self._fit_steps_axis()
        for _, r in run["renderers"]:
            r.visible = visible

    def remove_run(self, key: Any) -> None:
        run = self._runs.pop(key, None)
        if run is None:
            return
        gone = {id(r) for _, r in run["renderers"] + run["unused"]}
        for fig in self.figures.values():
            fig.renderers = [r for r in fig.renderers if id(r) not in gone]
            legend = fig.legend[0]
            legend.items = [it for it in legend.items
                            if not any(id(r) in gone for r in it.renderers)]
        self._fit_steps_axis()

    def clear(self) -> None:
        for key in list(self._runs):
            self.remove_run(key)
        self.changes.data = {"step": [], "color": [], "what": []}
        self._color_index = 0


def _add_band_columns(made: dict[str, Any], n_layers: int) -> None:
    """A population's band columns in its two (still empty) sources, for its own layers only (a
    spare's sources have columns for more)."""
    curves, evals = made["curves"], made["evals"]
    curves.data = rows_to_columns([], list(curves.data) + band_columns(columns_for(n_layers)))
    evals.data = rows_to_columns([], list(evals.data) + band_columns(evals.data))


def _first_span(steps: int) -> int:
    """A run's first span on the step axis: its planned steps, or FIRST_SPAN of a longer run
    (1 of a run whose length is not known: its data widen it)."""
    return min(steps, FIRST_SPAN) if steps > 0 else 1


def _recolor(renderer, color: str) -> None:
    """A spare renderer in its run's colour (its glyph and the glyphs Bokeh derived from it)."""
    for glyph in (renderer.glyph, renderer.nonselection_glyph, renderer.muted_glyph,
                  renderer.hover_glyph, renderer.selection_glyph):
        if glyph is None or isinstance(glyph, str):
            continue
        for prop in ("line_color", "fill_color"):
            if prop in glyph.properties() and getattr(glyph, prop) is not None:
                setattr(glyph, prop, color)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
