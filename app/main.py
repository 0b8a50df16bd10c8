"""`panel serve app/` entry point: one Dashboard per browser session.

Kept thin on purpose: Bokeh clears this module's globals when a session ends, so everything that
must outlive a line of this file (runs, cleanup callbacks) lives on the Dashboard object.

The page is answered at once and the Dashboard is built as soon as it has loaded (`onload`):
building it imports torch, the engine and HoloViews the first time (seconds, while the server's
warm-up in app/app_hooks.py may still be importing them) and lays out about a thousand models
every time, and none of that should keep the HTTP answer waiting.
"""

import panel as pn
from panel.io.resources import LOCAL_DIST

# The page's custom components (Panel JSComponents), defined before this session's page is
# rendered: a page bundles the code of the components that exist when it is rendered, and the
# Dashboard arrives later (onload). On a fresh server whose warm-up had not yet imported these
# modules, the page could not resolve the AddressBar model the Dashboard then sent ("could not
# resolve type 'AddressBar1'") and stayed at "Loading…": about one cold start in twenty.
import app.address_bar  # noqa: F401,E402
import app.notebook  # noqa: F401,E402
import app.pace  # noqa: F401,E402

pn.extension()

# Panel points a document's stylesheets at its CDN unless the document's HTML page was rendered
# here. A session Bokeh makes when a page's websocket connects, because the page took longer to
# load than an unused session lives, never had its page rendered: without this it fetched its
# CSS from the internet (offline: an alert lost its red box). Panel's own expression for the URL.
pn.state.curdoc.template_variables.setdefault(
    "dist_url", f"{pn.state.rel_path}/{LOCAL_DIST}" if pn.state.rel_path else LOCAL_DIST)

page = pn.Column(pn.pane.Markdown("**Loading the dashboard…**", margin=(20, 20)),
                 sizing_mode="stretch_width")


def _build() -> None:
    from app.dashboard import Dashboard

    page[:] = [Dashboard()]


pn.state.onload(_build)
page.servable(title="creditlab: learning to solve credit assignment")
