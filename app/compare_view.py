"""The "Compare and export" card under the plots: which runs the plots show, the saved runs under
runs/ that can be loaded beside them, and the session's runs as a Parquet or CSV download.

Loading a saved run adds it to the session, so the dashboard does that (see its `_on_load_saved`);
this card lists the folders and holds the widgets.
"""

from __future__ import annotations

import panel as pn

from app.library import list_saved_runs, runs_frame, to_csv_bytes, to_parquet_bytes
from app.live_plots import LivePlots
from app.run_status import display_name
from app.setting_groups import curve_sets
from engine.host.runner import SessionRuns


class CompareView(pn.viewable.Viewer):
    """The comparison's run list, the saved-runs menu and the downloads, in one card."""

    def __init__(self, session: SessionRuns, plots: LivePlots, **params):
        super().__init__(**params)
        self.session, self.plots = session, plots
        w = pn.widgets
        # Run labels are long (every setting that differs): each gets the card's whole width and
        # wraps within it; Bokeh's checkbox labels do not wrap, and in a third of the card they ran
        # over the buttons beside them at 1440 px.
        self.run_list = w.CheckBoxGroup(label="Runs shown", options={}, value=[], inline=False,
                                        sizing_mode="stretch_width", css_classes=["creditlab-run-list"],
                                        stylesheets=[".bk-input-group { white-space: normal; }"])
        self.run_list.param.watch(self._on_visibility, "value")
        self.saved_select = w.Select(label="Saved runs (runs/)", options={}, sizing_mode="stretch_width")
        self.saved_refresh = w.Button(label="Refresh list", width=120)
        self.saved_load = w.Button(label="Load into comparison", width=190)
        self.saved_refresh.on_click(lambda e: self.refresh_saved())
        self.download_parquet = w.FileDownload(callback=self._export_parquet, filename="creditlab-runs.parquet",
                                               label="Download Parquet", width=190)
        self.download_csv = w.FileDownload(callback=self._export_csv, filename="creditlab-runs.csv",
                                           label="Download CSV", width=190)
        self.refresh_saved()
        self.card = pn.Card(
            pn.pane.Markdown("**Runs in the comparison** (untick to hide)", margin=(5, 10, 0, 10)),
            self.run_list,
            pn.Row(
                pn.Column(self.saved_select, pn.Row(self.saved_refresh, self.saved_load),
                          sizing_mode="stretch_width"),
                pn.Column(pn.pane.Markdown("**Export** (plots: the save tool on each plot writes PNG)"),
                          self.download_parquet, self.download_csv),
                sizing_mode="stretch_width"),
            title="Compare and export", collapsed=False, sizing_mode="stretch_width",
            css_classes=["card", "creditlab-compare"])

    def __panel__(self):
        return self.card

    # ================================================================ the runs shown
    def refresh_run_list(self) -> None:
        """List the session's runs: new ones ticked, the ones unticked before still unticked."""
        options = {display_name(run): run.id for run in self.session.runs}
        visible = [v for v in self.run_list.value if v in options.values()]
        new_ids = [v for v in options.values() if v not in self.run_list.options.values()]
        self.run_list.options = options
        self.run_list.value = visible + new_ids

    def _on_visibility(self, event) -> None:
        shown, runs = set(event.new), list(self.session.runs)

        def apply():
            for run in runs:
                for key, _, _ in curve_sets(run.id, run.cfg):
                    self.plots.curves.set_visible(key, run.id in shown)

        self.plots.edit(apply)

    # ================================================================ saved runs
    def refresh_saved(self) -> None:
        options = list_saved_runs()
        self.saved_select.options = options
        self.saved_load.disabled = not options

    # ================================================================ export
    def frame(self):
        """Every run of the session as one tidy table (what the downloads contain)."""
        return runs_frame(list(self.session.runs))

    def _export_parquet(self):
        return to_parquet_bytes(self.frame())

    def _export_csv(self):
        return to_csv_bytes(self.frame())
