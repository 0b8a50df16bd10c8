"""Whole `creditlab train` runs as a user waits for them, as ratios to backprop in one sitting.

For each rule: the wall time of a full CLI run (saving on, default metric and evaluation
intervals), minus the start-up (the same command with --steps 1), and the share of that run
spent on metrics and evaluation (the same run with both intervals pushed past its end).
Rules are interleaved round by round so that a change in the machine's load hits all alike;
the best round of each is reported.

    .venv/bin/python scripts/measure/time_runs.py                       # Fashion-MNIST 784-256-256-10
    .venv/bin/python scripts/measure/time_runs.py --dataset digits --steps 1000 --rounds 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEVER = str(10**12)


def wall(args: list[str], out: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine", "train", *args, "--quiet", "--out", out],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--width", default="256,256")
    p.add_argument("--batch-size", default="128")
    p.add_argument("--lr", default="0.01")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rules", default="bp,fa,np")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    rules = a.rules.split(",")
    shape = ["--dataset", a.dataset, "--width", a.width, "--batch-size", a.batch_size, "--lr", a.lr]
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as out:
        for r in range(a.rounds):
            for rule in rules:
                base = [*shape, "--rule", rule]
                times = {"start": wall([*base, "--steps", "1"], out),
                         "run": wall([*base, "--steps", str(a.steps)], out),
                         "bare": wall([*base, "--steps", str(a.steps), "--metric-interval", NEVER,
                                       "--eval-interval", NEVER], out)}
                for kind, t in times.items():
                    best[rule, kind] = min(best.get((rule, kind), float("inf")), t)
                print(f"round {r + 1} {rule}: " + ", ".join(f"{k} {t:.2f} s" for k, t in times.items()),
                      file=sys.stderr, flush=True)
    ref = best["bp", "run"] - best["bp", "start"] if "bp" in rules else None
    print(f"{a.dataset} {a.width} batch {a.batch_size}, {a.steps} steps, best of {a.rounds} "
          "(start-up = the same command with --steps 1, subtracted)")
    print(f"{'rule':6} {'start s':>8} {'run s':>8} {'run/BP':>7} {'metrics+eval share':>19}")
    for rule in rules:
        run = best[rule, "run"] - best[rule, "start"]
        bare = best[rule, "bare"] - best[rule, "start"]
        ratio = f"{run / ref:.2f}×" if ref else "-"
        print(f"{rule:6} {best[rule, 'start']:8.2f} {run:8.2f} {ratio:>7} {max(0.0, 1 - bare / run):18.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
