"""Wall time of the same sweep serially (in-process) and on a 2-worker LocalCluster, in one run.

    .venv/bin/python scripts/measure/sweep_scaling.py [--trials 12] [--steps 1500] [--workers 2] [--repeat 3]

The machine's 1-minute load average is printed with each round: other work on the cores makes the
ratio meaningless (2 workers cannot get 2 cores), so compare rounds run at a load below ~2.

"trials … s" is the sum of the trials' wall times, "cpu" the sum of their CPU (thread) times:
cpu ≪ wall means the trials waited for a core.

Each round runs the same trials twice into fresh temporary runs folders (so nothing is skipped),
alternating which goes first. The serial side is warmed up first (imports, dataset) so it is at its
best; the Dask side includes starting and closing the cluster. Both are the whole `run_sweep` call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from engine import sweep as sw


def make_spec(trials: int, steps: int) -> sw.SweepSpec:
    rules = ["np", "fa", "bp"]
    samples = max(1, trials // len(rules))
    return sw.parse_sweep({
        "sweep": {"name": "scaling", "seed": 0, "samples": samples, "seeds_per_point": 1},
        "base": {"dataset": "digits", "depth": 2, "width": [50, 20], "steps": steps,
                 "metric_interval": 100, "eval_interval": steps},
        "grid": {"rule": rules},
        "random": {"sigma": {"log_uniform": [1e-3, 1e-2]}, "lr": {"log_uniform": [0.03, 0.1]},
                   "feedback_lr": {"log_uniform": [1e-3, 1e-2]}}})


def timed(spec, **kw) -> tuple[float, float, float]:
    """(wall of the whole sweep, sum of trial walls, sum of trial CPU times)."""
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        result = sw.run_sweep(spec, d, progress=False, **kw)
        wall = time.perf_counter() - t
        assert result.ran == result.total, result
        return (wall, float(result.table["wall_seconds"].sum()),
                float(result.table["cpu_seconds"].sum()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    spec = make_spec(a.trials, a.steps)
    n = len(spec.trials())
    torch.set_num_threads(1)
    print(f"{n} trials (np, fa, bp on digits, MLP 50-20, {a.steps} steps); serial in-process vs "
          f"{a.workers} Dask workers; {a.repeat} rounds", flush=True)
    sw.run_trial(spec.trials()[0].to_json(), tempfile.mkdtemp(), "warmup")   # imports, dataset
    ratios = []
    for r in range(a.repeat):
        order = ["serial", "dask"] if r % 2 == 0 else ["dask", "serial"]
        walls = {}
        for which in order:
            if which == "serial":
                walls[which] = timed(spec, serial=True)
            else:
                walls[which] = timed(spec, workers=a.workers)
        ratio = walls["dask"][0] / walls["serial"][0]
        ratios.append(ratio)
        print(f"round {r + 1}: serial {walls['serial'][0]:6.1f} s (trials {walls['serial'][1]:5.1f} s,"
              f" cpu {walls['serial'][2]:5.1f} s) | {a.workers} workers {walls['dask'][0]:6.1f} s"
              f" (trials {walls['dask'][1]:5.1f} s, cpu {walls['dask'][2]:5.1f} s)"
              f" | ratio {ratio:.2f} | load avg {os.getloadavg()[0]:.1f}", flush=True)
    print(f"ratio dask/serial: median {statistics.median(ratios):.2f}, "
          f"min {min(ratios):.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
