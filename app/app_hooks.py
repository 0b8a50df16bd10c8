"""Server start-up hook for `panel serve app/`: pay torch's one-off costs before the first click.

The first Trainer in a process takes seconds (torch import, the lazy torch._dynamo import behind
the first optimiser, dataset loading). Doing it once here means the first Start on the page is as
quick as every later one.
"""

from __future__ import annotations

import time


def warm_up() -> float:
    """Build and step one tiny Trainer; returns the seconds it took."""
    t0 = time.perf_counter()
    from engine.config import RunConfig
    from engine.trainer import Trainer

    trainer = Trainer(RunConfig(depth=1, width=4, steps=2, metric_interval=1, eval_interval=2,
                                device="cpu"))
    trainer.subscribe(lambda record: None, matrices=True)
    trainer.run()
    return time.perf_counter() - t0


def on_server_loaded(server_context) -> None:
    seconds = warm_up()
    # Runs train in processes forked from a forkserver that imports torch once: start it now.
    from app import run_worker
    started = time.perf_counter()
    run_worker.warm_up()
    print(f"creditlab: warm-up done in {seconds:.1f} s (torch, first optimiser, digits data); "
          f"run processes ready in {time.perf_counter() - started:.1f} s", flush=True)
