"""Hostile text in a real browser: a link's values, a run folder's name and contents, and a
sweep's id reach the page as literal text; no script they carry runs, no markup they hold is made.

Each payload sets `window.__xss` if it ever runs. Besides that flag, the page's elements (shadow
roots included) are searched for an attribute that carries a payload (an event handler, a link, a
source): a payload shown as text is only ever in text nodes (and in a menu option's value).
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pandas as pd
import pytest
from browser import open_dashboard, serve_dashboard
from conftest import require_browser

from engine.config import RunConfig

pytestmark = pytest.mark.browser

require_browser()

PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    '<svg onload="window.__xss=1">',
    "[x](javascript:window.__xss=1)",
    '"><script>window.__xss=1</script>',
]
FOLDER = '<svg onload="window.__xss=1">'            # a run folder's name (no "/" in a name)
SWEEP_ID = '<img src=x onerror="window.__xss=1"> {x}'

# Elements whose attributes (other than a menu option's value, a tooltip or a label) hold a payload.
JS_INJECTED = """
() => {
  const hits = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      for (const a of el.attributes) {
        if (a.value.includes("__xss") && !["value", "title", "aria-label", "label"].includes(a.name))
          hits.push(`${el.tagName} ${a.name}=${a.value}`);
      }
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return hits;
}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, config in ((FOLDER, {}), ("optimizer", {"optimizer": PAYLOADS[0]}),
                         ("unknown-rule", {"rule": PAYLOADS[0]})):
        folder = root / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**RunConfig(depth=1, width=4).to_dict(), **config}))
        pd.DataFrame({"step": [0, 10], "train_loss": [1.0, 0.5]}).to_parquet(folder / "metrics.parquet")
    sweep = root / "sweeps" / "hostile"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"sweep_id": SWEEP_ID, "n_trials": 1, "varied": ["sigma"]}))
    pd.DataFrame({"rule": ["np"], "sigma": [0.01], "test_accuracy": [0.5], "seed": [0],
                  "status": ["finished"], "run_id": [PAYLOADS[1]]}).to_parquet(sweep / "trials.parquet")
    return root


@pytest.fixture(scope="module")
def server(runs):
    """conftest's, serving the hostile runs folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDITLAB_RUNS", str(runs))              # each session's Dashboard reads it
        with serve_dashboard() as (url, dashboards):
            yield url, dashboards


def assert_nothing_ran(page) -> None:
    time.sleep(1.0)                      # an image that fails to load fires its onerror by now
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate(JS_INJECTED) == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_links_values_show_as_text_in_the_alert(server, page, payload):
    url, _ = server
    query = {"depth": payload, "rule": payload, "sigma": payload, "freeze_forward": payload, "width": payload}
    open_dashboard(page, url, "?" + urlencode(query))
    page.get_by_text("cannot be read").first.wait_for()
    for name in ("depth", "rule", "sigma", "freeze_forward"):
        page.get_by_text(f"{name}={payload!r}").first.wait_for()
    page.get_by_text(f"width={payload!r} is not allowed").first.wait_for()
    assert_nothing_ran(page)


def test_saved_runs_with_hostile_names_and_settings_load_as_text(server, page):
    url, _ = server
    open_dashboard(page, url)
    menu = page.get_by_label("Saved runs (runs/)")
    labels = menu.evaluate("el => Array.from(el.options).map(o => o.text)")
    assert any(label.startswith("unknown-rule: unreadable") for label in labels), labels
    for prefix in (FOLDER, "optimizer"):
        label = next(label for label in labels if label.startswith(prefix + ": "))
        menu.select_option(label=label)
        page.get_by_role("button", name="Load into comparison").click()
    page.get_by_text(f"[{FOLDER}]").first.wait_for()        # the run's key above the plots
    page.get_by_text(f"{PAYLOADS[0]} seed0 [optimizer]").first.wait_for()
    assert_nothing_ran(page)


def test_a_sweeps_id_shows_as_text_on_the_sweeps_page(server, page):
    url, _ = server
    open_dashboard(page, url)
    page.get_by_text("Sweeps", exact=True).first.click()
    page.get_by_text(f"{SWEEP_ID}: 1 / 1 trials done").first.wait_for()
    assert_nothing_ran(page)
