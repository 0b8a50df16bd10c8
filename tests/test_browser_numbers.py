"""A number box in a real browser: what is typed is what Start uses, or Start refuses.

Bokeh's number inputs reverted "nan", "inf" or "1e999" in the page and sent nothing, so the box's
old value stayed and Start ran with it. The sidebar's number boxes are text now, read on the
server: a bad entry shows its one-line message and Start starts nothing.
"""

from __future__ import annotations

import time

import pytest
from browser import open_dashboard, source_info
from conftest import require_browser, show_all_settings, wait_until

pytestmark = pytest.mark.browser

require_browser()

LR = "Learning rate (live)"


@pytest.mark.parametrize("text, key", [("nan", "Tab"), ("1e999", "Enter")])
def test_a_non_finite_number_is_refused_with_its_message_and_starts_nothing(server, page, text, key):
    url, dashboards = server
    open_dashboard(page, url)
    show_all_settings(page)                          # (lr is under "Advanced" in story mode)
    box = page.get_by_label(LR, exact=True)
    box.fill(text)
    box.press(key)
    message = page.get_by_text(f"lr='{text}' is not allowed; it must be a finite number").first
    message.wait_for()
    assert message.is_visible()
    assert box.input_value() == text                 # the page shows what was typed, not 0.001
    dash = dashboards[-1]
    assert dash.state.lr == 0.001 and "lr" in dash.state.unreadable
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Not started").first.wait_for()
    time.sleep(1.0)                                  # a run would have sent its first points by now
    assert source_info(page, "curves-", "step") == []
    assert dash.session.runs == []
    assert page.get_by_text("Ready.").first.is_visible()


def test_a_fixed_entry_clears_the_message_and_a_preset_shows_its_value(server, page):
    url, dashboards = server
    open_dashboard(page, url)
    show_all_settings(page)                          # (lr is under "Advanced" in story mode)
    box = page.get_by_label(LR, exact=True)
    box.fill("inf")
    box.press("Enter")
    page.get_by_text("lr='inf' is not allowed").first.wait_for()
    box.fill("0.02")
    box.press("Enter")
    page.get_by_text("lr='inf' is not allowed").first.wait_for(state="hidden")
    wait_until(lambda: dashboards[-1].state.lr == 0.02)
    page.get_by_label("Preset (the paper's set-ups)").select_option("Paper MLP: NP")
    wait_until(lambda: box.input_value() == "0.05")
