"""A population in a real browser: Seeds = 4 typed into the sidebar, Start, and the page draws each
curve's mean with a band over its members, and names the run's seeds.

The bands are read from the page itself: the GlyphRenderers named `band-<run>` in
`Bokeh.documents`, their data sources' band columns (app/curves.py)."""

from __future__ import annotations

import time

import pytest
from browser import open_dashboard
from conftest import require_browser, show_all_settings, total_points, wait_until

pytestmark = pytest.mark.browser

require_browser()

# Every band renderer on the page: its name, its glyph's type, how many rows its source holds,
# and how many of its lower and upper values are numbers (a band the page can draw).
JS_BANDS = """() => {
  const out = [];
  const field = spec => (spec && typeof spec === "object") ? spec.field : spec;
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      if (!m.name || !m.name.startsWith("band-") || !m.glyph || !m.data_source) continue;
      const data = m.data_source.data instanceof Map ? Object.fromEntries(m.data_source.data)
                                                     : m.data_source.data;
      const finite = col => Array.from(data[field(col)] || []).filter(Number.isFinite).length;
      out.push({name: m.name, glyph: m.glyph.type || m.glyph.constructor.name,
                visible: m.visible, n: (data.step || []).length,
                lower: finite(m.glyph.y1), upper: finite(m.glyph.y2)});
    }
  }
  return out;
}"""


def test_a_population_of_four_seeds_draws_bands_and_names_its_seeds(server, page):
    url, dashboards = server
    open_dashboard(page, url, "?rule=np&depth=2&width=20,10&steps=1000000&metric_interval=10")
    show_all_settings(page)                          # (Seeds is under "Advanced" in story mode)
    box = page.get_by_label("Seeds", exact=True)
    box.fill("4")
    box.press("Enter")
    wait_until(lambda: dashboards[-1].state.seeds == 4, what="the Seeds box did not reach the server")
    t0 = time.monotonic()
    page.get_by_role("button", name="Start").click()
    wait_until(lambda: total_points(page), what="no curve point after Start")
    print(f"\nStart → first curve point of a 4-seed population: {time.monotonic() - t0:.2f} s")
    run = dashboards[-1].session.current
    assert run.cfg.seeds == 4

    # Every line of the run has its band in the page (loss and accuracy: train and test; six
    # per-layer plots × 2 layers), each with numbers to draw. The bands come a plot per second
    # after the first points (app/curves.py, build_bands).
    def all_bands():
        bands = page.evaluate(JS_BANDS)
        return bands if len(bands) == 2 * 2 + 6 * 2 and all(b["lower"] and b["upper"] for b in bands) else None
    bands = wait_until(all_bands, timeout=120, what="the run's bands did not all reach the page with data",
                       interval=0.5)
    assert all(b["name"] == f"band-{run.id}" and b["glyph"] == "VArea" and b["visible"] for b in bands)
    # The run's key above the plots and its status line say it is a population.
    page.get_by_text("×4 seeds (0–3)").first.wait_for()
    page.get_by_text("member 0 (seed 0) of 4 seeds").first.wait_for()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("— stopped").first.wait_for()


def test_several_values_of_sigma_typed_in_its_box_train_side_by_side(server, page):
    """"0.001,0.1" in the σ box: one Start trains both (2 seeds each), and each σ gets its own
    coloured curves with their band and its own key above the plots."""
    url, dashboards = server
    open_dashboard(page, url, "?rule=np&depth=2&width=20,10&steps=1000000&metric_interval=10&seeds=2")
    box = page.get_by_label("σ: noise std (live)", exact=True)
    box.fill("0.001,0.1")
    box.press("Enter")
    wait_until(lambda: dashboards[-1].state.sigma == [0.001, 0.1], what="the σ box did not reach the server")
    page.get_by_role("button", name="Start").click()
    wait_until(lambda: total_points(page), what="no curve point after Start")
    run = dashboards[-1].session.current
    assert run.cfg.values_of("sigma") == [0.001, 0.1] and run.cfg.members() == 4

    def both_bands():
        names = {b["name"] for b in page.evaluate(JS_BANDS) if b["lower"] and b["upper"]}
        return names if len(names) == 2 else None
    names = wait_until(both_bands, timeout=120, what="each σ's band did not reach the page", interval=0.5)
    assert names == {f"band-{(run.id, 0)}", f"band-{(run.id, 1)}"}
    page.get_by_text("np σ=0.001 d2").first.wait_for()
    page.get_by_text("np σ=0.1 d2").first.wait_for()
    assert "sigma=0.001%2C0.1" in page.url
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("— stopped").first.wait_for()
