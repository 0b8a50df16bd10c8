"""The dashboard is fully offline: no request leaves this machine while a teacher loads the page,
starts and stops runs, resets and reloads, as `creditlab serve` serves it.

Panel points a document's stylesheets at its CDN when the document's HTML page was not rendered
here; a page that lost its session while loading (a busy laptop) then fetched its CSS from the
internet, and offline its styles failed (app/main.py)."""

from __future__ import annotations

import pytest
from browser import CHROMIUM, chromium_context, free_port, wait_for_bokeh
from conftest import creditlab_serve, listening, require_browser, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

require_browser()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent")
def test_no_request_leaves_localhost_through_loads_starts_stops_and_reloads(tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    serve = creditlab_serve(port, log)
    # blob: and data: URLs are the page's own memory (Bokeh's web workers, inline images)
    local = (f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/", f"blob:http://127.0.0.1:{port}/", "data:")
    try:
        wait_until(lambda: listening(port), 120, "the dashboard server did not listen")
        with chromium_context(tmp_path / "profile") as browser:
            page = browser.new_page()
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
            for cycle in range(3):
                if cycle == 0:
                    page.goto(f"http://127.0.0.1:{port}/app?steps=1000000", timeout=120_000)
                else:
                    page.reload(timeout=120_000)
                wait_for_bokeh(page, 120)
                page.get_by_role("button", name="Start").click(timeout=120_000)
                page.get_by_text("— running").first.wait_for(timeout=120_000)
                page.get_by_role("button", name="Stop").click()
                page.get_by_text("— stopped").first.wait_for(timeout=120_000)
                page.get_by_role("button", name="Reset").click()
            page.wait_for_load_state("networkidle")
            assert outside == [], outside[:5]
    finally:
        serve.kill()
        serve.wait(10)
