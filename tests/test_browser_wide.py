"""The dashboard as a researcher sees it on a 1440×900 screen, in Debian's chromium: several runs
of different settings side by side, whose long labels stay clear of the controls beside them; the
plots' titles whole, with the curves three a row and in story mode's narrower maps; the mode
switch's tooltip off the page's title.

The boxes are read from the page (through shadow roots) once the runs have drawn their curves; a
plot's titles are drawn on its canvas, so their text is measured there.
"""

from __future__ import annotations

import pytest
from browser import open_dashboard
from conftest import JS_TITLES, cut_off, require_browser, settled_boxes, stop_runs, total_points, wait_until

from app.dashboard import STORY_FOCUS

pytestmark = pytest.mark.browser

require_browser()

WIDTH, HEIGHT = 1440, 900

# Long labels: a population comparing σ with every setting that differs named, then a deeper net.
LONG_LINK = ("?mode=all&rule=np&steps=2000&sigma=0.001,0.01&seeds=2&warmup_steps=100&init=paper"
             "&activation=tanh&optimizer=sgd")

# The Compare card's run labels (its checkboxes' texts), and its other controls (buttons, menus),
# as boxes.
JS_COMPARE = """() => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  const box = el => { const r = el.getBoundingClientRect();
                      return {x: r.x, y: r.y, w: r.width, h: r.height, text: el.textContent.trim()}; };
  const card = all(document, []).find(el => el.classList && el.classList.contains('card')
      && el.shadowRoot && all(el.shadowRoot, []).some(h => h.textContent.trim() === 'Compare and export'));
  const inCard = all(card.shadowRoot, []);
  const labels = inCard.filter(el => el.tagName === 'LABEL' && el.querySelector('input[type=checkbox]'))
                       .map(el => box(el.querySelector('span')));
  const controls = inCard.filter(el => ['BUTTON', 'SELECT'].includes(el.tagName)).map(box)
                         .filter(b => b.w > 0 && b.h > 0 && b.text !== 'Compare and export');
  return {labels, controls, card: box(card)};
}"""


def overlap(a: dict, b: dict) -> bool:
    return (min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]) > 0.5
            and min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]) > 0.5)


def test_run_labels_stay_clear_of_the_controls_beside_them_at_1440(server, page):
    url, dashboards = server
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    open_dashboard(page, url, LONG_LINK)
    try:
        page.get_by_role("button", name="Start", exact=True).click()
        wait_until(lambda: total_points(page) > 0, timeout=180)
        for label, text in (("Hidden layers (depth)", "3"), ("Width (one, or per layer: 50,20)", "30,20,10")):
            box = page.get_by_label(label, exact=True)
            box.fill(text)
            box.press("Enter")
        dash = dashboards[-1]
        wait_until(lambda: dash.state.width == "30,20,10")
        page.get_by_role("button", name="Start", exact=True).click()
        wait_until(lambda: len(page.evaluate(JS_COMPARE)["labels"]) == 2, timeout=180,
                   what="the second run was not listed")
    finally:
        stop_runs(dashboards[-1:])
    boxes = page.evaluate(JS_COMPARE)
    card = boxes["card"]
    assert any(len(b["text"]) > 60 for b in boxes["labels"]), boxes["labels"]     # long ones
    for label in boxes["labels"]:
        assert label["x"] + label["w"] <= card["x"] + card["w"] + 0.5, (label, card)
        for control in boxes["controls"]:
            assert not overlap(label, control), (label, control)


def test_the_curves_titles_and_subtitles_fit_their_plots_three_a_row_at_1440(server, page):
    """The subtitles (what a good value is, and the paper's notation) once ran past the plots'
    right edge here, three plots a row at 366 px each: Signs of B's by 87 px."""
    url, _ = server
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    open_dashboard(page, url, "?mode=all")
    boxes = settled_boxes(page)
    assert len({round(c["x"]) for c in boxes["curves"]}) == 3, boxes["curves"]     # three a row
    titles = page.evaluate(JS_TITLES, "creditlab-curve")
    assert len({t["plot"] for t in titles}) == 8 and len(titles) == 16, titles      # a title and a subtitle each
    assert not cut_off(titles), "\n".join(cut_off(titles))


def test_the_heatmaps_and_the_story_curve_keep_their_titles_whole_at_1440(server, page):
    """Story mode puts the four maps and the step's curve in one row: each map ~190 px wide, where
    "B at the start (step 0)" and the difference map's formula were cut off, and so was the
    curve's subtitle."""
    url, dashboards = server
    step = next(name for name in STORY_FOCUS if name.startswith("2."))      # np, learned B: every title
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    open_dashboard(page, url)
    page.get_by_label("Preset (the paper's set-ups)").select_option(step)
    wait_until(lambda: dashboards[-1].controls.preset.value == step)
    try:
        page.get_by_role("button", name="Start", exact=True).click()
        wait_until(lambda: total_points(page) > 0, timeout=180)
        # the maps' titles name their steps once the first maps are drawn
        wait_until(lambda: sum("(step " in t["text"] for t in page.evaluate(JS_TITLES, "creditlab-heatmap")) == 2,
                   timeout=180, what="the maps' titles did not name their steps")
    finally:
        stop_runs(dashboards[-1:])
    settled_boxes(page)
    heat = page.evaluate(JS_TITLES, "creditlab-heatmap")
    assert {t["plot"] for t in heat} == {f"creditlab-heatmap-{k}" for k in ("start", "B", "WT", "diff")}, heat
    assert all(t["canvas"] < 200 for t in heat), heat               # the story's narrow maps
    focus = [t for t in page.evaluate(JS_TITLES, "creditlab-curve")
             if t["plot"] == f"creditlab-curve-{STORY_FOCUS[step]}"]
    assert len(focus) == 2, focus
    assert not cut_off(heat + focus), "\n".join(cut_off(heat + focus))


# The boxes of the page's title and sidebar, and of every tooltip shown.
JS_TOOLTIPS = """() => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  const box = el => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const els = all(document, []);
  const one = c => box(els.find(el => el.classList && el.classList.contains(c)));
  const shown = el => { const s = getComputedStyle(el); const r = el.getBoundingClientRect();
                        return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0; };
  return {header: one('creditlab-header'), sidebar: one('creditlab-sidebar'),
          tips: els.filter(el => el.classList && el.classList.contains('bk-Tooltip') && shown(el)).map(box)};
}"""


def test_the_mode_switchs_tooltip_stays_off_the_title_after_a_click(server, page):
    """The pointer that has clicked the switch is still over it, so its tooltip shows: once to its
    right, over the page's title, until the pointer moved away."""
    url, _ = server
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    open_dashboard(page, url)
    for name in ("All settings", "Story"):
        page.get_by_role("button", name=name, exact=True).click()
        boxes = wait_until(lambda: (b := page.evaluate(JS_TOOLTIPS))["tips"] and b, timeout=30,
                           what="the switch's tooltip did not show")
        side = boxes["sidebar"]
        for tip in boxes["tips"]:
            assert not overlap(tip, boxes["header"]), (name, tip, boxes["header"])
            assert tip["x"] + tip["w"] <= side["x"] + side["w"] + 0.5, (name, tip, side)   # the sidebar's own
    page.mouse.move(WIDTH / 2, HEIGHT - 10)
    wait_until(lambda: not page.evaluate(JS_TOOLTIPS)["tips"], what="the tooltip stayed after the pointer left")
