"""`panel serve app/` entry point: one Dashboard per browser session.

Kept thin on purpose: Bokeh clears this module's globals when a session ends, so everything that
must outlive a line of this file (runs, cleanup callbacks) lives on the Dashboard object.

The page is answered at once and the Dashboard is built as soon as it has loaded (`onload`):
building it imports torch, the engine and HoloViews the first time (seconds, while the server's
warm-up in app/app_hooks.py may still be importing them) and lays out about a thousand models
every time, and none of that should keep the HTTP answer waiting.
"""

import panel as pn

pn.extension()

page = pn.Column(pn.pane.Markdown("**Loading the dashboard…**", margin=(20, 20)),
                 sizing_mode="stretch_width")


def _build() -> None:
    from app.dashboard import Dashboard

    page[:] = [Dashboard()]


pn.state.onload(_build)
page.servable(title="creditlab: learning to solve credit assignment")
