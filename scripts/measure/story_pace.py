"""When does the story's step 2 show B becoming Wᵀ, at the paper's batch of 32 and at the story's?

The lecture's central moment is the top layer's B turning into Wᵀ (17°: the maps correlate
0.96). Two parts, each at both batch sizes:

- the engine, one torch thread: the cost of a step (interleaved, the fastest of several rounds,
  so both see the same load) and the step at which seed 0, as the page runs it, first reaches 17°;
- with --dashboard, the served page at 1280×720 in Debian's chromium, started with its Start
  button: the seconds from Start to that step. With --load N, N busy loops run beside it, as on
  a teacher's busy laptop (the page took 45–55 s at load 20 with a batch of 32).

    .venv/bin/python scripts/measure/story_pace.py
    .venv/bin/python scripts/measure/story_pace.py --dashboard --load 18
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

STEP2 = "2. Node perturbation learns B (W frozen)"
ANGLE = 17.0


def config(batch: int, steps: int = 100_000):
    from app.presets import preset_config

    cfg = preset_config(STEP2)
    cfg.batch_size, cfg.steps = batch, steps
    return cfg


def step_costs(batches: tuple[int, ...], rounds: int = 6, steps: int = 300) -> dict[int, float]:
    """Seconds per step of each batch size, as the page runs it (metrics every 50 steps)."""
    from engine.trainer import Trainer

    trainers = {b: Trainer(config(b)) for b in batches}
    for t in trainers.values():
        for _ in range(100):
            t.step()
    best = {b: float("inf") for b in batches}
    for _ in range(rounds):
        for b, t in trainers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                t.step()
            best[b] = min(best[b], (time.perf_counter() - t0) / steps)
    return best


def step_reaching(batch: int, limit: int = 20_000) -> int | None:
    """The first logged step at which seed 0's top-layer B is within ANGLE of Wᵀ."""
    from engine.trainer import Trainer

    cfg = config(batch, limit)
    cfg.eval_interval = limit
    trainer = Trainer(cfg)
    for _ in range(limit):
        record = trainer.step()
        if record is not None and record["layers"][-1]["weight_angle_deg"] <= ANGLE:
            return record["step"]
    return None


@contextlib.contextmanager
def busy_loops(n: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def dashboard_seconds(batches: tuple[int, ...], reach: dict[int, int | None]) -> dict[int, float | None]:
    """Seconds from the Start click to the step `reach[batch]`, in the served page."""
    from urllib.parse import urlencode

    from browser import chromium_context, open_dashboard, serve_dashboard

    from app.state import ConfigState

    out: dict[int, float | None] = {}
    with serve_dashboard() as (url, dashboards), chromium_context(tempfile.mkdtemp(), (1280, 720)) as ctx:
        for b in batches:
            page = ctx.new_page()
            state = ConfigState()
            state.set_config(config(b))
            open_dashboard(page, url, "?" + urlencode(state.to_query()))
            dash = dashboards[-1]
            page.get_by_role("button", name="Start", exact=True).click()
            t0, out[b] = time.monotonic(), None
            while reach[b] and time.monotonic() - t0 < 300:
                run = dash.session.current
                if run is not None and run.step_count >= reach[b]:
                    out[b] = time.monotonic() - t0
                    break
                time.sleep(0.1)
            dash.close()              # stops its run; the page goes once nothing is sent to it
            page.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", action="store_true", help="also time it in the served page")
    parser.add_argument("--load", type=int, default=0, help="busy loops beside the served page")
    args = parser.parse_args(argv)
    import torch

    from app.presets import STORY_B_BATCH

    torch.set_num_threads(1)
    batches = (32, STORY_B_BATCH)
    cost = step_costs(batches)
    reach = {b: step_reaching(b) for b in batches}
    for b in batches:
        at = f"step {reach[b]:,}" if reach[b] else "not within 20,000 steps"
        print(f"batch {b:3d}: {cost[b] * 1e3:.3f} ms a step ({cost[b] / cost[32]:.2f}× batch 32's); "
              f"top layer at {ANGLE:.0f}° by {at}: {reach[b] * cost[b]:.1f} s of a quiet core"
              if reach[b] else f"batch {b}: {at}", flush=True)
    if args.dashboard:
        with busy_loops(args.load):
            time.sleep(2 if args.load else 0)
            seconds = dashboard_seconds(batches, reach)
        for b in batches:
            s = f"{seconds[b]:.1f} s" if seconds[b] is not None else "not within 300 s"
            print(f"batch {b:3d}, served page, {args.load} busy loops: Start → step {reach[b]:,} in {s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
