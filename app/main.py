"""`panel serve app/` entry point: one Dashboard per browser session.

Kept thin on purpose: Bokeh clears this module's globals when a session ends, so everything that
must outlive a line of this file (runs, cleanup callbacks) lives on the Dashboard object.
"""

import panel as pn

from app.dashboard import Dashboard

pn.extension()

Dashboard().servable(title="creditlab: learning to solve credit assignment")
