"""What the page says about the session's runs: which of Start … Reset apply, the current run's
status line, the alerts, and a coloured key per run above the plots.

The dashboard's handlers decide what the buttons do; this only shows where things stand. Its
`refresh` runs once a second from the dashboard's pull, at once when a button was pressed, and
between two of those when the current run's status changed (finished, diverged).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import panel as pn

from engine.members import member_name
from engine.status import ACTIVE, FINAL, Status

from app.curves import CurvePlots
from app.setting_groups import curve_sets, set_label
from engine.host.runner import RunHandle, SessionRuns
from app.safe_text import html_text, md_text, plain, text_pane

READY = "**Ready.** Pick a rule or a preset and press Start."
RECENT_BATCHES = 10          # train accuracy in the status line: the mean of this many logged batches


class RunStatus:
    """The run buttons, the status line, the alerts and the run legend of one session."""

    def __init__(self, session: SessionRuns, curves: CurvePlots):
        self.session = session
        self.curves = curves                       # the runs' colours, for the legend
        self._status_seen: dict[Any, str] = {}
        self._rate = (0.0, 0, 0.0)                  # (time, step, steps/s) for the status line
        self._legend_signature: tuple = ()
        w = pn.widgets
        self.start_button = w.Button(label="Start", color="primary", width=95)
        self.pause_button = w.Button(label="Pause", width=95, disabled=True)
        self.resume_button = w.Button(label="Resume", width=100, disabled=True)
        self.step_button = w.Button(label="Step", width=90, disabled=True,
                                    description="advance one logging interval (metric_interval steps)")
        self.stop_button = w.Button(label="Stop", color="default", width=90, disabled=True)
        self.reset_button = w.Button(label="Reset", width=95,
                                     description="stop every run and clear the plots")
        self.buttons = wrapping_row(self.start_button, self.pause_button, self.resume_button,
                                    self.step_button, self.stop_button, self.reset_button)
        # These quote run labels, errors and a link's values: panes for outside text (app/safe_text.py).
        self.status = text_pane(READY, styles={"font-size": "1.1em"}, margin=(0, 10),
                                sizing_mode="stretch_width")
        self.config_alert = text_pane("", pn.pane.Alert, alert_type="danger", visible=False, margin=(0, 10),
                                      sizing_mode="stretch_width")
        self.run_alert = text_pane("", pn.pane.Alert, alert_type="danger", visible=False, margin=(0, 10),
                                   sizing_mode="stretch_width")
        self.note = pn.pane.Markdown("", styles={"font-size": "0.9em", "color": "#7a5b00"},
                                     margin=(0, 10), visible=False)
        self.run_legend = pn.pane.HTML("", margin=(0, 10), sizing_mode="stretch_width",
                                       styles={"font-size": "1.0em"})

    def refresh(self, expect: str | None = None) -> None:
        """The current run's status line and buttons; `expect`: the status a button just asked
        for, shown while the run is still active (its process answers a moment later)."""
        run = self.session.current
        if run is None:
            self.set_buttons(None)
            return
        status = expect if expect and run.active else run.status
        now = time.time()
        t0, s0, rate = self._rate
        if now - t0 >= 0.9:
            rate = (run.step_count - s0) / (now - t0) if run.step_count >= s0 else 0.0
            self._rate = (now, run.step_count, rate)
        extra = ""
        if status != Status.STARTING:
            # One batch of 32 swings by several points: the mean of the recent batches, and the
            # newest test-set accuracy, which is the figure to trust. A population's records
            # hold its members' mean.
            seeds = f", mean of {run.cfg.seeds} seeds" if run.cfg.seeds > 1 else ""
            if len(run.cfg.groups()) > 1:           # the curves give each group of settings its own
                seeds = f", mean of all {run.cfg.members()} members ({len(run.cfg.groups())} groups of settings)"
            recent = [r["train_accuracy"] for r in run.buffer.tail(RECENT_BATCHES)
                      if r.get("train_accuracy") is not None and r["train_accuracy"] == r["train_accuracy"]]
            if recent:
                extra = (f" · train accuracy {sum(recent) / len(recent):.1%} (last {len(recent)} logged "
                         f"batches{seeds})")
            test = run.buffer.last_eval()
            if test is not None and test.get("test_accuracy") == test.get("test_accuracy"):
                extra += f" · **test accuracy {test['test_accuracy']:.1%}** (step {test['step']:,}{seeds})"
        speed = f" · {rate:,.0f} steps/s" if status == Status.RUNNING else ""
        self.status.object = (f"**{md_text(display_name(run))}** — {status}, step {run.step_count:,} / "
                              f"{run.cfg.steps:,}{speed}{extra}{_diverged(run)}{_saving(run, status)}")
        self.set_buttons(status)
        signature = tuple((r.id, r.status, r.label) for r in self.session.runs)
        if signature != self._legend_signature:
            self._legend_signature = signature
            self.refresh_legend()
        if self._status_seen.get(run.id) != run.status:
            self._status_seen[run.id] = run.status
            if run.status in (Status.DIVERGED, Status.FAILED, Status.INTERRUPTED):
                self.run_alert.object = f"**Run stopped:** {md_text(run.error)}"
                self.run_alert.visible = True
            if not run.active:
                self.note.visible = False

    def refresh_if_changed(self) -> None:
        """Refresh now if the current run's status changed since it was last shown."""
        run = self.session.current
        if run is not None and self._status_seen.get(run.id) != run.status:
            self.refresh()      # finished / diverged: say so without waiting

    def set_buttons(self, status: str | None) -> None:
        active = status in ACTIVE
        self.pause_button.disabled = status not in (Status.STARTING, Status.RUNNING)
        self.resume_button.disabled = status != Status.PAUSED
        self.step_button.disabled = not active
        self.stop_button.disabled = not active
        # A disabled button keeps its colour in Panel's theme: a red Stop looked live with nothing
        # to stop. Red only while there is a run to stop.
        self.stop_button.color = "danger" if active else "default"

    def restart_rate(self) -> None:
        """Count steps/s from now (a run was just started)."""
        self._rate = (time.time(), 0, 0.0)

    def ready(self) -> None:
        """No run: the opening line; Pause, Resume, Step and Stop disabled."""
        self.status.object = READY
        self.set_buttons(None)

    def forget(self, run) -> None:
        self._status_seen.pop(run.id, None)

    def refresh_legend(self) -> None:
        """The runs as coloured keys above the plots (legible from the back of a lecture room)."""
        keys = []
        for run in self.session.runs:
            for key, group, _ in curve_sets(run.id, run.cfg):      # a set per group of settings
                color = self.curves.color(key)
                if color is None:
                    continue
                swatch = (f'<span style="display:inline-block;width:26px;height:5px;background:{color};'
                          f'vertical-align:middle;margin-right:6px"></span>')
                label = set_label(display_name(run), run.cfg, group)
                keys.append(f'<span style="margin-right:22px;white-space:nowrap">{swatch}'
                            f'{html_text(label)} <i style="color:#666">{html_text(run.status)}</i></span>')
        self.run_legend.object = " ".join(keys)


def _saving(run: RunHandle, status: str) -> str:
    """The status line's word on the run's folder: why it is not being saved (once, from the
    first write that failed: the run trains on), or, once it has ended, where it is."""
    if run.save_error:
        return f" · **not saved:** {md_text(run.save_error)}"
    if run.run_dir and status in FINAL:
        return f" · saved in {md_text(_short_path(run.run_dir))}"
    return ""


def _short_path(path: str) -> str:
    """A folder under the working folder as a relative path (runs/…), any other in full."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def wrapping_row(*objects, **params) -> pn.Column:
    """Objects side by side that wrap onto the next line when the page is too narrow for them.

    A Column laid out as a wrapping flex row, because a `pn.Row` asks for the sum of its
    children's widths as its minimum width. A Column asks for the widest child's width, so a
    narrow notebook cell gets the children stacked instead of cut off at its edge."""
    params.setdefault("sizing_mode", "stretch_width")
    styles = {"display": "flex", "flex-direction": "row", "flex-wrap": "wrap", **params.pop("styles", {})}
    # A Column's scroll-to-bottom button is a flex item here too: hide it, this never scrolls.
    sheets = [".scroll-button { display: none; }", *params.pop("stylesheets", [])]
    return pn.Column(*objects, styles=styles, stylesheets=sheets, **params)


def _diverged(run) -> str:
    """' · 2 of 8 members diverged (seed 3 at step 120, …)': the members a population left behind
    (engine/divergence.py), which its curves' means and bands no longer count."""
    last = run.buffer.tail(1)
    members = (last[0].get("members") or []) if last else []
    gone = [m for m in members if m.get("diverged_step") is not None and not math.isnan(m["diverged_step"])]
    if not gone:
        return ""
    named = ", ".join(f"{md_text(member_name({k: m[k] for k in ('seed', *run.cfg.compared())}))} at step "
                      f"{m['diverged_step']:,}" for m in gone[:3]) + (", …" if len(gone) > 3 else "")
    return (f" · **{len(gone)} of {len(members)} members diverged** ({named}); the curves show the "
            "others")


def display_name(run) -> str:
    """A run's name in legends and lists: unique within the session ("#3 np σ=0.01 …"; a
    population's label ends with its seeds, "×4 seeds (0–3)"). Plain text: a loaded run's label
    names its folder."""
    return plain(f"#{run.id} {run.label}" if isinstance(run, RunHandle) else run.label)
