"""The dashboard as a class sees it on a projector: Debian's chromium, driven by Playwright.

What is checked is read from the page itself: at 1280×720 and 1600×1000 no two plots are drawn
over each other or past the page's right edge and the top layer's heatmaps are in view without
scrolling; the layer menu opens on the top layer; B and Wᵀ are coloured on their own ranges
(read from the Bokeh colour mappers, checked against the images they colour); and the map of B
at the run's start stays as it was while B now keeps changing.
"""

from __future__ import annotations

import pytest
from browser import open_dashboard
from conftest import require_browser, settled_boxes, total_points, wait_until

pytestmark = pytest.mark.browser

require_browser()

# A short NP run: depth 2, so the top layer (layer 2 ← output, 12×10) differs in shape from
# layer 1 (20×12). Long enough to still run while we look; the tests stop it themselves.
QUERY = "?rule=np&depth=2&width=20,12&steps=1000000&metric_interval=10&eval_interval=500"
TOP_ROWS, TOP_COLS = 12, 10

# The heatmaps' colour mappers and, per source, the largest |value| of its image.
JS_HEATMAPS = """() => {
  const out = {mappers: {}, images: {}};
  for (const m of Bokeh.documents[0].all_models) {
    if (!m.name) continue;
    if (m.name.startsWith('heatmap-mapper-')) out.mappers[m.name.slice(15)] = [m.low, m.high];
    if (m.type === 'ColumnDataSource' || (m.constructor && m.constructor.name === 'ColumnDataSource')) {
      if (!m.name.startsWith('heatmap-')) continue;
      const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
      const img = data.image[0];
      const flat = Array.from(img.length !== undefined ? img : Object.values(img)).flat(Infinity);
      let max = 0, sum = 0, finite = 0;
      for (const v of flat) {
        if (Number.isFinite(v)) { finite++; sum += v; max = Math.max(max, Math.abs(v)); }
      }
      out.images[m.name.slice(8)] = {max: max, sum: sum, finite: finite, n: flat.length,
                                     version: data.version[0], dw: data.dw[0], dh: data.dh[0]};
    }
  }
  return out;
}"""


def start_run(page, url: str) -> None:
    open_dashboard(page, url, QUERY)
    page.get_by_role("button", name="Start").click()
    # Curves streaming, and a few heatmap snapshots on the page (about one a second).
    wait_until(lambda: total_points(page) > 0)
    wait_until(lambda: heatmaps(page)["images"].get("B", {}).get("version", 0) >= 3, timeout=120)


def heatmaps(page) -> dict:
    return page.evaluate(JS_HEATMAPS)


def overlap(a: dict, b: dict, tol: float = 0.5) -> bool:
    return (a["x"] + tol < b["x"] + b["w"] and b["x"] + tol < a["x"] + a["w"]
            and a["y"] + tol < b["y"] + b["h"] and b["y"] + tol < a["y"] + a["h"])


@pytest.mark.parametrize("viewport", [(1280, 720), (1600, 1000)], ids=["1280x720", "1600x1000"])
def test_plots_fit_the_page_and_the_top_layer_heatmaps_are_in_view(server, page, viewport):
    url, _ = server
    width, height = viewport
    page.set_viewport_size({"width": width, "height": height})
    start_run(page, url)
    boxes = settled_boxes(page)

    canvases = boxes["canvases"]
    assert len(canvases) >= 12, canvases              # 8 curve plots + 4 heatmaps, all drawn
    for i, a in enumerate(canvases):
        assert a["x"] >= -0.5, a
        assert a["x"] + a["w"] <= width + 0.5, f"a plot reaches past the right edge: {a}"
        for b in canvases[i + 1:]:
            assert not overlap(a, b), f"two plots overlap: {a} and {b}"
    assert boxes["scrollWidth"] <= width + 1, "the page scrolls sideways"

    # The central picture is on the first screen, without scrolling.
    assert boxes["scrollY"] == 0
    for key in ("start", "B", "WT", "diff"):
        (fig,) = boxes["heatmaps"][key]
        # (story mode, the default, puts the step's curve in the maps' row: ~165 px each at 1280)
        assert fig["w"] >= 140 and fig["h"] >= 250, (key, fig)
        assert fig["y"] >= 0 and fig["y"] + fig["h"] <= height + 0.5, (
            f"the {key} heatmap is not in view at {width}×{height}: {fig}")
        assert fig["x"] + fig["w"] <= width + 0.5
    # ... and it is the top layer's: layer 2 ← output, 12×10.
    images = heatmaps(page)["images"]
    assert (images["B"]["dh"], images["B"]["dw"]) == (TOP_ROWS, TOP_COLS)
    assert page.get_by_text("layer 2 ← output (12×10)").first.is_visible()


def test_heatmaps_open_on_the_top_layer_with_own_colour_ranges_and_a_fixed_start(server, page):
    url, _ = server
    page.set_viewport_size({"width": 1600, "height": 1000})
    start_run(page, url)
    select = page.get_by_label("Heatmap layer")
    chosen = select.evaluate("el => el.options[el.selectedIndex].text")
    assert chosen == "layer 2 ← output (top)"
    assert select.evaluate("el => el.options.length") == 2

    # Each of B at the start, B now and Wᵀ now is coloured on ±(its own largest |entry|).
    def ranges_match():
        hm = heatmaps(page)
        ok = all(hm["images"][k]["finite"] > 0 and hm["mappers"][k][1] == pytest.approx(
            hm["images"][k]["max"], rel=1e-4) for k in ("start", "B", "WT"))
        return hm if ok else None
    hm = wait_until(ranges_match)                   # a mapper and its image land in one batch
    for key in ("start", "B", "WT"):
        low, high = hm["mappers"][key]
        assert low == pytest.approx(-high) and high > 0, key
    # Own ranges differ where the maps differ in size: NP's B may already match Wᵀ's scale, but
    # B at the start does not, so at least one pair of the three ranges must differ.
    tops = sorted(hm["images"][k]["max"] for k in ("start", "B", "WT"))
    assert tops[-1] - tops[0] > 0.01 * tops[-1], f"all three maps happen to be the same size: {tops}"
    assert hm["mappers"]["B"] != hm["mappers"]["WT"]
    assert hm["mappers"]["diff"] == [-1, 1]
    for key in ("start", "B", "WT", "diff"):
        assert (hm["images"][key]["dh"], hm["images"][key]["dw"]) == (TOP_ROWS, TOP_COLS), key

    # B at the start stays as it was while B now changes.
    start, b_then = hm["images"]["start"], hm["images"]["B"]
    later = wait_until(lambda: (h := heatmaps(page))["images"]["B"]["version"]
                       >= b_then["version"] + 2 and h, timeout=120)
    assert later["images"]["start"] == start
    assert later["images"]["B"]["sum"] != b_then["sum"]
    assert later["images"]["B"]["sum"] != start["sum"]

    # Another layer from the menu: all four maps follow, the start map with that layer's first B.
    select.select_option(label="layer 1 ← layer 2 (input side)")
    wait_until(lambda: heatmaps(page)["images"]["start"]["dh"] == 20)
    images = heatmaps(page)["images"]
    assert all((images[k]["dh"], images[k]["dw"]) == (20, 12) for k in ("start", "B", "WT", "diff"))
