"""What share of a run the metrics and the test-set evaluation take, per rule, measured inside one run.

A whole-run difference (with and without metrics) is at the mercy of the machine's load; this
times the two parts inside the run itself: `layer_metrics` (the alignment metrics, backprop's
reference included) and the record (its one sync and, every eval interval, the test-set pass),
against the run's whole wall time, at the default metric and evaluation intervals.

    .venv/bin/python scripts/measure/metric_share.py                               # Fashion-MNIST 784-256-256-10
    .venv/bin/python scripts/measure/metric_share.py --dataset digits --steps 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def timed(fn, bucket: list[float], sync):
    def wrapper(*args, **kwargs):
        sync()
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sync()
            bucket.append(time.perf_counter() - t0)
    return wrapper


def share(cfg, sync) -> tuple[float, float, float]:
    """(run seconds, metrics share, record + evaluation share) of one run of `cfg`."""
    import engine.trainer as tr
    metrics_t: list[float] = []
    record_t: list[float] = []
    original_metrics, original_record = tr.layer_metrics, tr.Trainer._record
    tr.layer_metrics = timed(original_metrics, metrics_t, sync)
    tr.Trainer._record = timed(original_record, record_t, sync)
    try:
        trainer = tr.Trainer(cfg)
        t0 = time.perf_counter()
        trainer.run()
        sync()
        total = time.perf_counter() - t0
    finally:
        tr.layer_metrics, tr.Trainer._record = original_metrics, original_record
    return total, sum(metrics_t) / total, sum(record_t) / total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--width", default="256,256")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rules", default="bp,fa,dfa,kp,ss,np,np-dfa,sg")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    a = p.parse_args(argv)
    import torch

    from engine.config import RunConfig
    if a.threads:
        torch.set_num_threads(a.threads)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    print(f"{a.dataset} {a.width} batch {a.batch_size}, {a.steps} steps, {torch.get_num_threads()} "
          f"threads, load {os.getloadavg()[0]:.2f}")
    print(f"{'rule':8} {'run s':>7} {'metrics':>8} {'record+eval':>12} {'together':>9}")
    for rule in a.rules.split(","):
        widths = [int(w) for w in a.width.split(",")]
        cfg = RunConfig(rule=rule, dataset=a.dataset, width=widths, depth=len(widths),
                        batch_size=a.batch_size, lr=a.lr, steps=a.steps, device=a.device).validate()
        total, m, r = share(cfg, sync)
        print(f"{rule:8} {total:7.2f} {m:8.1%} {r:12.1%} {m + r:9.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
