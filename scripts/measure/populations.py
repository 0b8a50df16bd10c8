"""What a population costs beyond the bench's model-steps/s, in thread CPU time (robust to a
shared machine's load): the paper's Fig. 2 set-up for 8 seeds against 1, a conv net's
population, and the peak memory of a 128-member digits NP population.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure/populations.py [--steps 5000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from engine.config import RunConfig
from engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
FIG2 = dict(rule="np", freeze_forward=True, init="paper", feedback_mode="ridge", width=[50, 20],
            metric_interval=10_000, eval_interval=10_000)
CONV = dict(rule="np", model="conv-small", activation="tanh")
PEAK = """
import re, torch
from engine.config import RunConfig
from engine.trainer import Trainer
torch.set_num_threads(1)
t = Trainer(RunConfig(rule="np", seeds=128, steps=400, device="cpu"))
for _ in range(300):
    t.step()
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


def seconds(settings: dict, seeds: int, steps: int) -> float:
    """Thread CPU seconds of `steps` steps after a short warm-up."""
    trainer = Trainer(RunConfig(**settings, seeds=seeds, steps=10 ** 9, device="cpu"))
    for _ in range(20):
        trainer.step()
    start = time.thread_time()
    for _ in range(steps):
        trainer.step()
    return time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="Fig. 2 steps per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    one, eight = seconds(FIG2, 1, args.steps), seconds(FIG2, 8, args.steps)
    print(f"Fig. 2 set-up, {args.steps} steps: 1 seed {one:.2f} s, 8 seeds {eight:.2f} s "
          f"({eight / one:.2f}× one seed's time)")
    conv_steps = max(20, args.steps // 100)
    one, eight = seconds(CONV, 1, conv_steps), seconds(CONV, 8, conv_steps)
    print(f"conv-small on digits, NP: 8 seeds make {8 * one / eight:.2f}× the model-steps/s of 1")
    if Path("/proc/self/status").exists():
        out = subprocess.run([sys.executable, "-c", PEAK], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        print(f"128-member digits NP population, 300 steps: peak resident {int(out) // 1024} MB")


if __name__ == "__main__":
    main()
