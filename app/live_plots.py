"""The session's live plots (the network picture, the heatmaps, then the learning curves) and
the pull that feeds them.

A run's worker fills its bounded RecordBuffer; `LivePlots.pull`, called from the dashboard's
periodic callback, takes what is new since the run's cursor and streams it into its curves, and
once a second redraws the heatmaps of the current run from the matrices it published last and
recolours the network picture from its newest record. Every plot has one sentence under it.

A population (a run of several seeds) draws its members' mean and their spread as a band (the
curves' captions then say so); the heatmaps show one member, chosen in the Heatmap member menu (the
run publishes that member's matrices from its next record on: B matrices of different random
starts have no meaningful mean), and their heading names it; the network picture shows the
members' mean angles.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn

from app.curves import BAND_NOTE, CAPTIONS, CURVE_MIN_WIDTH, FOCUS_MIN_WIDTH, CurvePlots, flat_row
from app.heatmaps import HEATMAP_KEYS, HEATMAP_MIN_WIDTH, STAGE_HEATMAP_MIN_WIDTH, Heatmaps
from app.network_view import NetworkView
from app.run_status import display_name
from app.setting_groups import curve_sets, set_label, split_record
from engine.host.runner import BUFFER_CAPACITY, RunHandle, SessionRuns
from engine.members import member_name

# The plots only node perturbation fills (its estimate of each layer's error): hidden while every
# run shown is of a rule that makes no estimate (FA, BP, …), where they would stand empty.
NP_ONLY_PLOTS = ("estimator_angle_deg", "estimator_snr_db")

HEAT_HELP = ("Same pattern of red and blue in *B now* and *Wᵀ now* = B has learned backprop's "
             "feedback. Each map has its own colour scale: compare patterns, not shades.")
CURVES_HELP = ("Colour = run; solid = layer 1 (input side), dashed = layer 2, dotted = layer 3. "
               "Under each plot: what it shows and what good looks like.")


# Story mode's stage: four maps and the step's curve in one wrapping flex row, the curve with the
# larger share (it needs room for its axis); on a page too narrow for all five they wrap, nothing
# overflows. Switched by one CSS class on the heatmap grid (the cells carry theirs from the start):
# a mode switch then changes the grid's class and the two grids' children, not each cell's style,
# and the page lays itself out a few times, not once per change.
STAGE = "creditlab-stage"
STAGE_SHEET = (f":host(.{STAGE}) {{ display: flex !important; flex-flow: row wrap; gap: 0px; }}\n"
               f":host(.{STAGE}) > .creditlab-heat-cell {{ flex: 1 1 {STAGE_HEATMAP_MIN_WIDTH}px; width: auto; }}\n"
               f":host(.{STAGE}) > .creditlab-curve-cell {{ flex: 1.7 1 {FOCUS_MIN_WIDTH}px; width: auto; }}")


class LivePlots:
    """The curves of every run of `session`, the heatmaps of its current run, and their headings."""

    def __init__(self, session: SessionRuns, served: bool):
        self.session = session
        self._served = served
        self.curves = CurvePlots()
        self.heatmaps = Heatmaps()
        self.network = NetworkView()
        self._cursors: dict[Any, int] = {}          # run id → RecordBuffer cursor
        self._changes_seen: dict[Any, int] = {}     # run id → live changes already drawn
        # 0 = the top layer, whatever the depth; Start lists the run's layers, top first.
        self.layer_select = pn.widgets.Select(label="Heatmap layer",
                                              options={"top (last hidden ← output)": 0}, value=0, width=230)
        self.heat_heading = pn.pane.Markdown(heat_heading(""), margin=(0, 10), sizing_mode="stretch_width")
        self.layer_select.param.watch(lambda e: self.edit(lambda: self.refresh_heatmaps(force=True)), "value")
        self.layer_select.param.watch(lambda e: self.refresh_network(), "value")
        # A population's heatmaps show one member, chosen here; its maps come with the next record.
        self.member_select = pn.widgets.Select(label="Heatmap member", options={"member 0": 0}, value=0,
                                               width=230, visible=False)
        self.member_select.param.watch(self._on_member, "value")
        # Plot grids that reflow: as many columns as fit at the plots' minimum widths (4 curve
        # plots a row at 1920 px, 3 at 1600, 2 at 1280), never wider than the page.
        # (a cell's own minimum is below the grid's column width: in story mode one curve sits in
        # the heatmaps' row, narrower than a grid column, and must not overflow it)
        curve_panes = [_with_caption(pn.pane.Bokeh(fig, sizing_mode="stretch_width", min_width=FOCUS_MIN_WIDTH),
                                     CAPTIONS[key], FOCUS_MIN_WIDTH, "creditlab-curve-cell")
                       for key, fig in self.curves.figures.items()]
        self._curve_cells = dict(zip(self.curves.figures, curve_panes))
        # Each curve's caption, to add what a population's band is while one is shown.
        self._curve_captions = {key: pane[1] for key, pane in zip(self.curves.figures, curve_panes)}
        self._band_noted = False
        heat_panes = [_with_caption(pn.pane.Bokeh(self.heatmaps.figures[k], sizing_mode="stretch_width",
                                                  min_width=STAGE_HEATMAP_MIN_WIDTH),
                                    Heatmaps.CAPTIONS[k], STAGE_HEATMAP_MIN_WIDTH, "creditlab-heat-cell")
                      for k in HEATMAP_KEYS]
        self._heat_cells = heat_panes
        self.heatmap_grid = plot_grid(heat_panes, HEATMAP_MIN_WIDTH, "creditlab-heatmaps")
        self.heatmap_grid.stylesheets = [STAGE_SHEET]
        self._grid_classes = list(self.heatmap_grid.css_classes)
        self.focus: str | None = None          # the curve shown beside the heatmaps (story mode)
        self.curves_heading = pn.pane.Markdown(f"### Learning curves\n{CURVES_HELP}", margin=(0, 10),
                                               sizing_mode="stretch_width")
        self.curve_grid = plot_grid(curve_panes, CURVE_MIN_WIDTH, "creditlab-curves")

    def show_focus(self, key: str | None) -> None:
        """Story mode: the curve `key` (the one the story's step is about) beside the heatmaps, in
        their row, so that at 1280×720 the class sees both without scrolling; None (All settings):
        every curve in the curve grid, the heatmaps in theirs, as always.

        The cell is moved, not copied (a Bokeh figure is drawn in one place). It leaves its old
        container before it joins the new one: a Panel layout cleans up the page models of what
        it drops, and would drop them from under the other."""
        if key == self.focus or (key is not None and key not in self._curve_cells):
            return
        # Its titles on lines that fit it beside the heatmaps (a title is cut off, not wrapped),
        # the grid's again for the curve that goes back.
        old, self.focus = self.focus, key
        self.edit(lambda: [self.curves.fit_titles(k, k == key) for k in (old, key) if k is not None])
        cells = self._curve_cells
        self.curve_grid.objects = [cell for k, cell in cells.items() if k != key]
        staged = [cells[key]] if key is not None else []
        self.heatmap_grid.param.update(css_classes=self._grid_classes + ([STAGE] if staged else []),
                                       objects=[*self._heat_cells, *staged])

    def edit(self, fn) -> None:
        """Run a change to the raw Bokeh figures with the document lock held.

        Panel runs widget callbacks outside Bokeh's document lock; Panel's own models cope, but
        editing a Bokeh figure there raised "_pending_writes should be non-None …" and the edit
        never reached the page (seen with five sessions at once). The next-tick callback holds it.
        """
        doc = pn.state.curdoc
        if self._served and doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(lambda: _held(fn))
        else:
            fn()

    # ================================================================ runs
    def add_run(self, run: RunHandle, label: str, n_layers: int, steps: int) -> None:
        """Give a new run its curves (a set per group of settings it compares); from now on the pull
        streams its records into them."""
        for key, group, members in curve_sets(run.id, run.cfg):
            self.curves.add_run(key, set_label(label, run.cfg, group), n_layers, steps=steps, members=members)
        self._cursors[run.id] = 0
        self._changes_seen[run.id] = 0
        self.show_fillable()

    def show_fillable(self) -> None:
        """Show the NP-only plots while a run shown (live or loaded) estimates with node
        perturbation, or while no run is shown; hide them otherwise."""
        from engine.rules import RULES
        from engine.rules.np import NodeNoise

        runs = [run for run in self.session.runs if getattr(run, "cfg", None) is not None]
        fills = not runs or any(isinstance(RULES.get(run.cfg.rule), type)
                                and issubclass(RULES[run.cfg.rule], NodeNoise) for run in runs)
        for key in NP_ONLY_PLOTS:
            cell = self._curve_cells[key]
            if cell.visible != fills:
                cell.visible = fills

    def show_layers(self, n_layers: int) -> None:
        """List a new run's layers in the heatmap menu, and clear the heading until its first map."""
        self.clear_heading()
        self.layer_select.options = layer_options(n_layers)
        # Open on the top layer: its B is the first to become Wᵀ (the hidden layers' follow).
        self.layer_select.value = n_layers

    def show_members(self, run: RunHandle | None) -> None:
        """The Heatmap member menu: a population's members, member 0 first; hidden otherwise."""
        members = run.cfg.members() if run is not None else 1
        self.member_select.options = member_options(run.cfg) if members > 1 else {"member 0": 0}
        self.member_select.value = 0
        self.member_select.visible = members > 1

    def clear_heading(self) -> None:
        self.heat_heading.object = heat_heading("")

    def forget(self, run) -> None:
        for key, _, _ in curve_sets(run.id, run.cfg):
            self.curves.remove_run(key)
        for table in (self._cursors, self._changes_seen):
            table.pop(run.id, None)
        self.show_fillable()

    # ================================================================ the pull
    def pull(self, slow: bool) -> bool:
        """Stream every run's new records into the curves; when `slow`, redraw the heatmaps and fit
        the open-ended y axes too. Whether any plot got new data (the page has to redraw)."""
        drew = False
        for run in list(self.session.runs):
            if isinstance(run, RunHandle):
                drew = self._pull_run(run) or drew
        if slow:
            drew = self.refresh_heatmaps() or drew
            self.refresh_network()
            self.curves.fit_y_ranges()
            self.note_bands()
            if self.curves.bands_pending:
                # A population's bands, a figure per slow pull; the spare curves wait (they are
                # for the next Start), so the page lays out one figure again per pull.
                self.edit(self.curves.build_bands)
            elif not self.curves.has_spare:
                # The next run's curves, made ahead, a figure at a time: its Start then only
                # recolours and shows them (app/curves.py, add_run).
                self.edit(self.curves.prepare_spare)
        return drew

    def _pull_run(self, run: RunHandle) -> bool:
        cursor = self._cursors.get(run.id)
        if cursor is None:
            return False
        new, cursor = run.buffer.since(cursor)
        self._cursors[run.id] = cursor
        sets = curve_sets(run.id, run.cfg)
        if new:
            # The buffer has thinned its history: resend it whole, so the page stays bounded too.
            thinned = self.curves.length(sets[0][0]) + len(new) > BUFFER_CAPACITY
            records = [split_record(r, run.cfg) for r in (run.buffer.records() if thinned else new)]
            for i, (key, _, _) in enumerate(sets):
                rows = [flat_row(r[i]) for r in records]
                (self.curves.replace if thinned else self.curves.stream)(key, rows)
        # Markers where the records show a live change applied, not where the UI asked for it.
        seen = self._changes_seen.get(run.id, 0)
        applied = list(run.applied)
        for change in applied[seen:]:
            self.curves.mark_change(sets[0][0], change["step"],
                                    f"{change['name']}: {change['old']:g} → {change['new']:g}")
        if len(applied) > seen:              # the legend names the values the run now uses
            for key, group, _ in sets:
                self.curves.relabel(key, set_label(display_name(run), run.cfg, group))
        self._changes_seen[run.id] = len(applied)
        return bool(new)

    def _on_member(self, event) -> None:
        run = self.session.current
        if isinstance(run, RunHandle) and run.active and event.new < run.cfg.members():
            run.show_member(event.new)

    def refresh_heatmaps(self, force: bool = False) -> bool:
        """Redraw the current run's heatmaps if it has published new matrices; whether it did."""
        run = self.session.current
        if run is None:
            return False
        version, matrices = run.buffer.latest_matrices()
        if matrices is None or (version == self.heatmaps.version and not force):
            return False
        first_step, first_matrices = run.buffer.first_matrices()
        member = matrices[0].get("member", 0) if matrices else 0        # whose maps these are
        if member and run.first_members is not None:
            first_matrices = run.first_members[member]
        self.heatmaps.show(matrices, self.layer_select.value or None, version,
                           step=_record_step(run, version), first=first_matrices,
                           first_step=first_step)
        heading = heat_heading(self.heatmaps.where + member_note(run.cfg, member))
        if self.heat_heading.object != heading:
            self.heat_heading.object = heading
        return True


    def refresh_network(self) -> None:
        """Recolour the network picture from the current run's newest record."""
        run = self.session.current
        if run is None:
            return
        newest = run.buffer.tail(1)
        self.network.show_record(newest[0] if newest else None, self.layer_select.value or None,
                                 members=run.cfg.members())

    def note_bands(self) -> None:
        """The curves' captions say what a band is while a population is shown, and only then."""
        shown = self.curves.has_population
        if shown == self._band_noted:
            return
        self._band_noted = shown
        for key, pane in self._curve_captions.items():
            pane.object = _caption_html(CAPTIONS[key] + (" " + BAND_NOTE if shown else ""))


def _held(fn) -> None:
    """Run `fn` with the document's model graph frozen and its messages held. A new run's curves
    are some 20 renderers, legend items and two sources: unfrozen, Bokeh walked the document's
    whole graph (a thousand models) again after each new model, which took a second or two of
    server time at every Start; unheld, each change went to the page as a message of its own."""
    doc = pn.state.curdoc
    with doc.models.freeze(), pn.io.hold():
        fn()


def member_note(cfg, member: int = 0) -> str:
    """Which member of a population the heatmaps show (the Heatmap member menu's)."""
    if cfg.members() == 1:
        return ""
    who = member_name(cfg.member_values()[member])
    return f", member {member} ({who}) of {cfg.members()} {'members' if len(cfg.groups()) > 1 else 'seeds'}"


def member_options(cfg) -> dict[str, int]:
    """The Heatmap member menu of a population: each member by its seed (and compared settings)."""
    return {f"member {k}: {member_name(who)}": k for k, who in enumerate(cfg.member_values())}


def heat_heading(where: str) -> str:
    return f"### Is B learning to look like Wᵀ?{' — ' + where if where else ''}\n{HEAT_HELP}"


def layer_options(n_layers: int) -> dict[str, int]:
    """The heatmap layer menu, top layer first (the one whose B is fed by the output)."""
    options = {}
    for i in range(n_layers, 0, -1):
        above = "output" if i == n_layers else f"layer {i + 1}"
        note = " (top)" if i == n_layers else (" (input side)" if i == 1 else "")
        options[f"layer {i} ← {above}{note}"] = i
    return options


def plot_grid(panes: list, min_width: int, css_class: str) -> pn.Column:
    """Plots side by side in equal columns, wrapping onto new rows: as many columns as fit at
    `min_width` each (never more than there are plots, nor than 4), so a narrow page gets fewer
    columns instead of plots drawn over each other or past its edge. A CSS grid on the layout's
    element, whose grid items are the plots' own elements."""
    most = min(4, len(panes))
    grid = {"display": "grid", "gap": "0px", "grid-template-columns":
            f"repeat(auto-fill, minmax(max({min_width}px, {100 / most:.4g}%), 1fr))"}
    return pn.Column(*panes, sizing_mode="stretch_width", styles=grid, css_classes=[css_class],
                     margin=(0, 12, 0, 0))


def _with_caption(pane, text: str, min_width: int, css_class: str) -> pn.Column:
    """A plot with its one-sentence caption under it, as one cell of a plot grid. HTML, not a
    Bokeh title: it wraps at any width, where a title would be cut off at the plot's edge."""
    caption = pn.pane.HTML(_caption_html(text), sizing_mode="stretch_width",
                           margin=(0, 10, 6, 10), styles={"font-size": "0.9em", "color": "#444"})
    return pn.Column(pane, caption, sizing_mode="stretch_width", min_width=min_width, margin=0,
                     css_classes=[css_class])


def _caption_html(text: str) -> str:
    return f'<div class="creditlab-caption">{html.escape(text)}</div>'


def _record_step(run, version: int) -> int | None:
    """The step of the record that brought matrix snapshot `version` (records and snapshots are
    counted alike when every record carries matrices, as the dashboard's subscription asks)."""
    for record in reversed(run.buffer.records()[-64:]):
        if record.get("_seq") == version:
            return record.get("step")
        if record.get("_seq", 0) < version:
            break
    return None
