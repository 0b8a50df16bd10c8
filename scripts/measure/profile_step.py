"""Where a rule's step spends its time beyond the trainer's BP step: torch.profiler, op by op.

Both rules run through the bench's own trainer steps (engine/bench/rules.py: random 784-input data,
SGD, metrics off) on one thread; the table lists self CPU time per step for the ops whose time
differs most.

    .venv/bin/python scripts/measure/profile_step.py                  # np against bp on 784-256-256-10
    .venv/bin/python scripts/measure/profile_step.py --rule sg --steps 300
    .venv/bin/python scripts/measure/profile_step.py --against np-floor     # np's glue above its floor
    .venv/bin/python scripts/measure/profile_step.py --rule bp --against baseline   # the trainer's own

Besides the rules, --rule and --against take the bench's `baseline` and its floors
(`np-floor`, `np-dfa-floor`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def profile(rule: str, net: dict, data, steps: int) -> dict[str, tuple[float, float]]:
    """op name → (self CPU µs per step, calls per step)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from engine.bench import rules as bench
    references = bench.reference_steps(net, data, "cpu")
    step = references[rule] if rule in references else bench._trainer_step(
        rule, net, net["batch"], data, "cpu", metrics=False)
    for _ in range(50):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: (e.self_cpu_time_total / steps, e.count / steps) for e in prof.key_averages()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rule", default="np")
    p.add_argument("--against", default="bp")
    p.add_argument("--network", default="784-256-256-10")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rows", type=int, default=30)
    a = p.parse_args(argv)
    import torch

    from engine.bench import rules as bench
    torch.set_num_threads(1)
    net = next(n for n in bench.NETWORKS if n["name"].startswith(a.network))
    data = bench.random_dataset(torch.device("cpu"))
    base, rule = profile(a.against, net, data, a.steps), profile(a.rule, net, data, a.steps)
    total = {k: sum(t for t, _ in r.values()) for k, r in ((a.against, base), (a.rule, rule))}
    print(f"{net['name']}, batch {net['batch']}, 1 thread, {a.steps} steps: "
          + ", ".join(f"{k} {v:.0f} µs/step" for k, v in total.items()))
    zero = (0.0, 0.0)
    names = sorted(set(base) | set(rule), key=lambda k: -(rule.get(k, zero)[0] - base.get(k, zero)[0]))
    for name in names[:a.rows]:
        (bt, bn), (rt, rn) = base.get(name, zero), rule.get(name, zero)
        print(f"{name[:44]:44} {a.against} {bt:7.1f} µs ×{bn:4.1f}   {a.rule} {rt:7.1f} µs ×{rn:4.1f}   "
              f"+{rt - bt:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
