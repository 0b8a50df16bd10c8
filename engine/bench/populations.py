"""How many model-steps a second does a population make, against one model at a time?

A small network's step is dispatch overhead, not arithmetic: P members in one batched step
(engine/members.py) share the dispatches. For each network and rule this times `Trainer.step()`
at every population size P, with the default settings (metrics on, one logged step per metric
interval), on random data of the network's shape, and reports model-steps/s (P / seconds per
step) and its ratio to P = 1 in the same run.

Method as the rules bench's (engine/bench/rules.py): every candidate warmed up, then interleaved
rounds of one metric interval each, the median over rounds.
"""

from __future__ import annotations

import os
import statistics
from typing import Any, Callable, TextIO

import torch

from engine.bench.rules import load_average, random_dataset, time_candidates, trainer_steps
from engine.config import RunConfig
from engine.data.dataset import Dataset
from engine.errors import ConfigError
from engine.trainer import resolve_device

NETWORKS = [
    {"name": "64-50-20-10", "n_in": 64, "widths": [50, 20], "batch": 32},
    {"name": "784-50-20-10", "n_in": 784, "widths": [50, 20], "batch": 32},
    # compute-bound: a P = 128 step is ~0.6 s on one core, so it gets a third of the rounds
    {"name": "784-256-256-10", "n_in": 784, "widths": [256, 256], "batch": 128, "round_share": 3},
]
POPULATIONS = (1, 8, 32, 128)
RULES = ("np", "fa", "bp")
# Goals (one thread, NP at its defaults, metrics on): P = 32 against P = 1
GOALS = {"64-50-20-10": 10.0, "784-50-20-10": 4.0}


def _step(rule: str, net: dict, members: int, data: Dataset, device: str) -> Callable[[], Any]:
    """One step of a population of `members`; ConfigError where it does not fit."""
    cfg = RunConfig(rule=rule, dataset="digits", depth=len(net["widths"]), width=list(net["widths"]),
                    batch_size=net["batch"], steps=10 ** 9, device=device, seeds=members)
    return trainer_steps(cfg, data)


def run_benchmark(populations=POPULATIONS, rules=RULES, device: str = "cpu", threads: int | None = None,
                  rounds: int | None = None, steps: int | None = None, quick: bool = False,
                  progress: TextIO | None = None) -> dict[str, Any]:
    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    interval = RunConfig().metric_interval
    rounds = rounds or (1 if quick else 5)
    steps = steps or (2 if quick else interval)
    warmup = 1 if quick else interval // 2
    report: dict[str, Any] = {"torch": torch.__version__, "device": str(dev), "threads": torch.get_num_threads(),
                              "rounds": rounds, "steps_per_round": steps, "quick": quick,
                              "metric_interval": interval, "load_average_before": load_average(), "networks": []}
    for net in NETWORKS:
        data = random_dataset(dev, n_in=net["n_in"])
        candidates, refused = {}, {}
        for rule in rules:
            for p in populations:
                try:
                    candidates[(rule, p)] = _step(rule, net, p, data, device)
                except ConfigError as e:
                    refused[(rule, p)] = str(e)
        if progress is not None:
            print(f"timing {net['name']} (batch {net['batch']}): {len(candidates)} candidates …",
                  file=progress, flush=True)
        samples = time_candidates(candidates, dev, max(1, rounds // net.get("round_share", 1)), steps,
                                  warmup, progress)
        seconds = {key: statistics.median(v) for key, v in samples.items()}
        rows = []
        for rule in rules:
            single = seconds.get((rule, 1))
            for p in populations:
                if (rule, p) in refused:
                    rows.append({"rule": rule, "population": p, "refused": refused[(rule, p)]})
                    continue
                rate = p / seconds[(rule, p)]
                rows.append({"rule": rule, "population": p, "ms_per_step": seconds[(rule, p)] * 1e3,
                             "model_steps_per_s": rate,
                             "ratio": rate / (1 / single) if single else float("nan")})
        report["networks"].append({"name": net["name"], "batch": net["batch"], "rows": rows})
    report["load_average_after"] = load_average()
    report["goals"] = [_goal(report, name, limit) for name, limit in GOALS.items()]
    return report


def _goal(report: dict, network: str, limit: float) -> dict:
    net = next(n for n in report["networks"] if n["name"] == network)
    row = next((r for r in net["rows"] if r["rule"] == "np" and r["population"] == 32), None)
    ratio = row.get("ratio", float("nan")) if row else float("nan")
    return {"network": network, "rule": "np", "population": 32, "limit": limit, "ratio": ratio,
            "met": ratio >= limit}


def format_report(report: dict[str, Any]) -> str:
    lines = [f"creditlab bench --population: torch {report['torch']}, device {report['device']}, "
             f"{report['threads']} thread{'s' if report['threads'] != 1 else ''}; {report['rounds']} "
             f"interleaved rounds × {report['steps_per_round']} steps, median per step, metrics every "
             f"{report['metric_interval']} steps" + (" (QUICK: not a real timing)" if report["quick"] else ""),
             f"model-steps/s = P / seconds per step; × P=1: against the same rule's single model in this run; "
             f"load average before {report['load_average_before']}, after {report['load_average_after']} "
             f"(on {os.cpu_count()} CPUs)"]
    for net in report["networks"]:
        lines += ["", f"{net['name']} sigmoid, batch {net['batch']}",
                  f"{'rule':<6}{'P':>6}{'ms/step':>10}{'model-steps/s':>15}{'× P=1':>8}"]
        for r in net["rows"]:
            if "refused" in r:
                lines.append(f"{r['rule']:<6}{r['population']:>6}   not run: {r['refused']}")
            else:
                lines.append(f"{r['rule']:<6}{r['population']:>6}{r['ms_per_step']:>10.2f}"
                             f"{r['model_steps_per_s']:>15.0f}{r['ratio']:>8.2f}")
    if not report["quick"]:
        lines.append("")
        lines.append("goals (NP, P = 32 against P = 1): " + "; ".join(
            f"{g['network']} {g['ratio']:.1f}× ≥ {g['limit']:g}×: {'met' if g['met'] else 'MISSED'}"
            for g in report["goals"]))
    return "\n".join(lines)
