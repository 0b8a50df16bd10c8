"""How much training throughput does an open, updating dashboard cost? (issue 4: at most 10 %.)

Runs the same configuration (a) bare: a Trainer stepping in a worker thread, nobody watching, and
(b) from a served dashboard session open in headless chromium, started with its Start button,
with the page pulling curves at 5 Hz and heatmaps at 1 Hz. Both rates come from the run's own
records (steps between the first and last record over the trainer's clock), so build time and
page load are excluded. Bare and dashboard runs alternate, to spread any load from other
processes over both. Prints both rates and their ratio.

    .venv/bin/python scripts/measure/dashboard_overhead.py [--steps 20000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.config import RunConfig  # noqa: E402


def rate_from_records(records: list[dict]) -> float:
    if len(records) < 2:
        raise RuntimeError("too few records to measure a rate")
    first, last = records[0], records[-1]
    return (last["step"] - first["step"]) / (last["time"] - first["time"])


def bare_rate(cfg: RunConfig) -> float:
    """The run with nobody watching: same thread arrangement and torch threads as the dashboard."""
    from engine.host import runner
    from engine.trainer import Trainer

    out: dict = {}

    def work():
        import torch
        if runner.TORCH_THREADS is not None:
            torch.set_num_threads(runner.TORCH_THREADS)
        trainer = Trainer(cfg)
        records: list[dict] = []
        trainer.subscribe(records.append)
        trainer.run()
        out["rate"] = rate_from_records(records)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join()
    return out["rate"]


def dashboard_rate(page, url: str, dashboards: list, cfg: RunConfig, timeout: float = 600) -> float:
    from app.state import ConfigState
    from browser import open_dashboard

    state = ConfigState()
    state.set_config(cfg)
    open_dashboard(page, url, "?" + urlencode(state.to_query()))
    time.sleep(1.0)
    page.get_by_role("button", name="Start").click()
    page.get_by_text("— finished").first.wait_for(timeout=timeout * 1000)
    dash = dashboards[-1]
    run = dash.session.current
    return rate_from_records(run.buffer.records())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rule", default="np")
    args = parser.parse_args(argv)

    from browser import CHROMIUM, chromium_context, serve_dashboard

    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is absent: cannot open the dashboard in a browser", file=sys.stderr)
        return 2
    cfg = RunConfig(rule=args.rule, depth=2, width=[50, 20], steps=args.steps, device="cpu")
    bare, dash = [], []
    with serve_dashboard() as (url, dashboards), chromium_context(tempfile.mkdtemp()) as context:
        page = context.new_page()
        for i in range(args.repeats):
            bare.append(bare_rate(cfg))
            print(f"  bare      #{i + 1}: {bare[-1]:8.0f} steps/s", flush=True)
            dash.append(dashboard_rate(page, url, dashboards, cfg))
            print(f"  dashboard #{i + 1}: {dash[-1]:8.0f} steps/s", flush=True)
    b, d = statistics.mean(bare), statistics.mean(dash)
    print(f"config: {cfg.rule} depth {cfg.depth} width {cfg.widths()} steps {cfg.steps}, "
          f"metrics every {cfg.metric_interval} steps")
    print(f"bare:      {b:8.0f} steps/s")
    print(f"dashboard: {d:8.0f} steps/s (page open, pulling at 5 Hz / 1 Hz)")
    print(f"ratio:     {d / b:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
