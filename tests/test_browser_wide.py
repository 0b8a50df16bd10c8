"""The dashboard as a researcher sees it on a 1440×900 screen, in Debian's chromium: several runs
of different settings side by side, whose long labels stay clear of the controls beside them.

The boxes are read from the page (through shadow roots) once the runs have drawn their curves.
"""

from __future__ import annotations

import pytest
from browser import open_dashboard
from conftest import require_browser, stop_runs, total_points, wait_until

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
