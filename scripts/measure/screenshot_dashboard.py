"""Regenerate the README's screenshots: the dashboard as a user sees it, in headless chromium.

Scene "compare" (docs/dashboard.png): at a projector-like 1920 px width, the paper's FA preset
runs briefly, then NP, so the comparison shows two runs overlaid, shot while NP still learns.
Scene "learn-b" (docs/learn_b.png): the "Learn B only (frozen W)" preset (the paper's Fig. 2)
after `--seconds` (default 30): the top layer's heatmaps, first on the page.

    .venv/bin/python scripts/measure/screenshot_dashboard.py [--scene compare|learn-b] [--out PATH] [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=["compare", "learn-b"], default="compare")
    parser.add_argument("--out", default=None, help="default: docs/dashboard.png or docs/learn_b.png")
    parser.add_argument("--seconds", type=float, default=None,
                        help="how long the (last) run trains before the shot (default 8; learn-b: 30)")
    args = parser.parse_args(argv)
    learn_b = args.scene == "learn-b"
    args.out = args.out or str(ROOT / "docs" / ("learn_b.png" if learn_b else "dashboard.png"))
    args.seconds = args.seconds or (30.0 if learn_b else 8.0)

    from app.state import ConfigState
    from browser import CHROMIUM, chromium_context, open_dashboard, serve_dashboard

    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is absent", file=sys.stderr)
        return 2
    state = ConfigState()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve_dashboard() as (url, dashboards), \
            chromium_context(tempfile.mkdtemp(), viewport=(1920, 1080)) as context:
        page = context.new_page()
        # The first run: its preset in the address bar, as a shared link would open it.
        state.apply_preset("Learn B only (frozen W)" if learn_b else "Paper MLP: FA")
        open_dashboard(page, url, "?" + urlencode(state.to_query()))
        time.sleep(1.0)
        page.get_by_role("button", name="Start").click()
        time.sleep(args.seconds)
        if learn_b:
            # The top of the page: the heatmaps come first, above the curves.
            page.screenshot(path=str(out), full_page=False)
        else:
            # Second run: NP, chosen through the preset menu like a user would.
            page.get_by_label("Preset (the paper's set-ups)").select_option("Paper MLP: NP")
            time.sleep(1.0)
            page.get_by_role("button", name="Start").click()
            time.sleep(args.seconds)
            page.screenshot(path=str(out), full_page=False)
        for dash in dashboards:
            dash.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
