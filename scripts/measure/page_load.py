"""How hard the live dashboard works a browser, and how quickly that browser still answers.

Serves the dashboard, opens it in headless Debian chromium (optionally with its CPU slowed down
by Chrome's own throttling, to stand in for a slow laptop or a loaded CI machine), starts an NP
run and, over a window of seconds, measures inside the page:

- busy: the share of the window the page's main thread spent in long tasks (drawing plots);
- lag: how late a 100 ms timer fires (median and worst): what a click waits before it is seen;
- batches the server sent and records that reached the curves;
- pause: the time from a click on Pause to the status line saying "paused".

`--unpaced` also measures the same dashboard sending a batch every 200 ms whatever the page has
drawn (as before app/pace.py), for the comparison in one run:

    .venv/bin/python scripts/measure/page_load.py --throttle 1 2 --seconds 15 --unpaced
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from browser import chromium_context, open_dashboard, serve_dashboard, source_info  # noqa: E402

PROBE = """(seconds) => new Promise(resolve => {
  const tasks = [];
  const observer = new PerformanceObserver(list => tasks.push(...list.getEntries()));
  observer.observe({entryTypes: ['longtask']});
  const lags = [];
  const t0 = performance.now();
  let due = t0 + 100;
  const tick = () => {
    const now = performance.now();
    lags.push(now - due);
    if (now - t0 < seconds * 1000) { due = now + 100; setTimeout(tick, 100); }
    else setTimeout(() => {
      observer.disconnect();
      const end = t0 + seconds * 1000;
      const busy = tasks.reduce((s, t) => s + Math.max(0, Math.min(t.startTime + t.duration, end)
                                                        - Math.max(t.startTime, t0)), 0);
      resolve({busy: busy / (end - t0), lags: lags});
    }, 100);
  };
  setTimeout(tick, 100);
})"""

PAUSE = """() => new Promise(resolve => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  const els = all(document, []);
  const button = els.find(el => el.tagName === 'BUTTON' && el.textContent.trim() === 'Pause');
  const status = els.find(el => el.shadowRoot && el.shadowRoot.textContent.includes('— running')).shadowRoot;
  const t0 = performance.now();
  button.click();
  const poll = () => {
    const dt = performance.now() - t0;
    if (status.textContent.includes('— paused') || dt > 60000) resolve(dt); else setTimeout(poll, 5);
  };
  poll();
})"""


def measure(throttle: float, seconds: float, paced: bool) -> dict:
    with serve_dashboard() as (url, dashboards), tempfile.TemporaryDirectory() as profile:
        with chromium_context(Path(profile)) as context:
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
            open_dashboard(page, url, "?rule=np&steps=10000000")
            dash = dashboards[-1]
            if not paced:
                dash.pace.patience_s = 0.0
            page.get_by_role("button", name="Start", exact=True).click()
            deadline = time.time() + 120
            while time.time() < deadline and not sum(s["n"] for s in source_info(page, "curves-", "step")):
                time.sleep(0.2)
            batches, t0 = dash.pace.sent, time.time()
            points0 = sum(s["n"] for s in source_info(page, "curves-", "step"))
            probe = page.evaluate(PROBE, seconds)
            window = time.time() - t0
            points = sum(s["n"] for s in source_info(page, "curves-", "step")) - points0
            batches = dash.pace.sent - batches
            pause_ms = page.evaluate(PAUSE)
            lags = probe["lags"]
            return {"throttle": throttle, "paced": paced, "busy": probe["busy"],
                    "lag_median_ms": statistics.median(lags), "lag_max_ms": max(lags),
                    "batches_per_s": batches / window, "records_per_s": points / window,
                    "pause_ms": pause_ms}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throttle", type=float, nargs="+", default=[1.0, 4.0],
                        help="Chrome CPU slow-down factors to measure (1 = none)")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--unpaced", action="store_true", help="also measure without app/pace.py")
    args = parser.parse_args(argv)
    print(f"{'throttle':>8} {'paced':>6} {'busy':>6} {'lag p50':>8} {'lag max':>8} "
          f"{'batch/s':>8} {'rec/s':>7} {'pause':>8}")
    for throttle in args.throttle:
        for paced in ([True, False] if args.unpaced else [True]):
            r = measure(throttle, args.seconds, paced)
            print(f"{r['throttle']:>7g}× {str(r['paced']):>6} {r['busy']:>6.0%} {r['lag_median_ms']:>6.0f}ms "
                  f"{r['lag_max_ms']:>6.0f}ms {r['batches_per_s']:>8.1f} {r['records_per_s']:>7.1f} "
                  f"{r['pause_ms']:>6.0f}ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
