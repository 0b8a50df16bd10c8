"""Writes the set-up into the browser's address bar, so a copied link reproduces it.

Why not `pn.state.location.search = ...`: with Panel 1.9 the first write after page load reached
the address bar but later writes updated only the Location model, not the URL (checked in
chromium, Nov 2026). This tiny component calls `history.replaceState` itself whenever its
`search` changes: no reload, no extra history entries, no network.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


class Invisible(JSComponent):
    """A zero-size component that only runs its script (this one and app/notebook.py's)."""

    def __init__(self, **params):
        params.setdefault("width", 0)
        params.setdefault("height", 0)
        params.setdefault("margin", 0)
        super().__init__(**params)


class AddressBar(Invisible):
    """Invisible; keeps `window.location.search` equal to `search`."""

    search = param.String(default="", doc="the query string, with its leading '?'")

    _esm = """
    export function render({ model }) {
      const apply = () => {
        const search = model.search;
        if (search && window.location.search !== search) {
          const url = window.location.pathname + search + window.location.hash;
          window.history.replaceState(window.history.state, "", url);
        }
      };
      model.on("search", apply);
      apply();
      const el = document.createElement("span");
      el.style.display = "none";
      return el;
    }
    """
