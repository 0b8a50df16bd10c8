"""Cold starts of `creditlab serve`: does the first page of a fresh server always show the dashboard?

Each round starts `creditlab serve` on a free port, loads the page in headless Debian chromium as
soon as the server listens (while its warm-up still runs), and waits for the Start button. A
round that fails prints what the page shows and the errors its console logged. The page's
session used to race the server's warm-up: a page rendered before the warm-up had imported the
dashboard's custom components could not resolve them and stayed at "Loading…".

    .venv/bin/python scripts/measure/cold_start.py --rounds 10
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from browser import chromium_context, free_port  # noqa: E402


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def one_round(port: int, profile: Path, timeout_s: float) -> tuple[bool, float, str]:
    """(the Start button showed, seconds from the page request to it, what went wrong)."""
    server = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port),
                               "--address", "127.0.0.1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            if time.monotonic() > deadline:
                return False, 0.0, "the server did not listen"
            time.sleep(0.05)
        with chromium_context(profile) as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)[:200]))
            t0 = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/app")
            try:
                page.get_by_role("button", name="Start").wait_for(timeout=timeout_s * 1000)
                return True, time.monotonic() - t0, ""
            except Exception:
                return False, time.monotonic() - t0, f"page: {page.inner_text('body')[:80]!r}; errors: {errors[:3]}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Start")
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            ok, seconds, why = one_round(free_port(), Path(tmp) / f"profile-{k}", args.timeout)
            failed += not ok
            print(f"round {k}: {'ok' if ok else 'FAILED'} after {seconds:.1f} s {why}", flush=True)
    print(f"{args.rounds - failed} of {args.rounds} cold starts showed the dashboard")


if __name__ == "__main__":
    main()
