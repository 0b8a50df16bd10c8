"""Regenerate docs/dashboard.png: the dashboard a few seconds into runs, as a user sees it.

Serves the dashboard, opens it in headless chromium at a projector-like 1920 px width, runs the
paper's FA preset briefly and then NP (so the comparison shows two runs overlaid), and saves a
screenshot of the page while NP is still learning.

    .venv/bin/python scripts/screenshot_dashboard.py [--out docs/dashboard.png] [--seconds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--seconds", type=float, default=8.0, help="how long NP runs before the shot")
    args = parser.parse_args(argv)

    from app.state import ConfigState
    from browser_helpers import CHROMIUM, chromium_context, serve_dashboard, wait_for_bokeh

    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is absent", file=sys.stderr)
        return 2
    state = ConfigState()
    with serve_dashboard() as (url, dashboards), \
            chromium_context(tempfile.mkdtemp(), viewport=(1920, 1080)) as context:
        page = context.new_page()
        state.apply_preset("Paper MLP: FA")
        page.goto(url + "?" + urlencode(state.to_query()))
        wait_for_bokeh(page)
        page.get_by_role("button", name="Start").wait_for(timeout=60_000)
        time.sleep(1.0)
        page.get_by_role("button", name="Start").click()
        time.sleep(args.seconds)
        # Second run: NP, chosen through the preset menu like a user would.
        page.get_by_label("Preset (the paper's set-ups)").select_option("Paper MLP: NP")
        time.sleep(1.0)
        page.get_by_role("button", name="Start").click()
        time.sleep(args.seconds)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=False)
        for dash in dashboards:
            dash.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
