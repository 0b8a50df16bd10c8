"""Server start-up hook for `panel serve app/`: pay torch's one-off costs before the first click,
without keeping the server from answering.

The first Trainer in a process takes seconds (torch import, the lazy torch._dynamo import behind
the first optimiser, dataset loading), and the run processes' forkserver imports torch once
more. Done in `on_server_loaded` itself, they held the server back from listening for ~15 s.
They now run in two daemon threads started there: the server answers at once, and the warm-up
finishes while the first page loads. Nothing waits for it: a Start pressed before it is done
still works: the run's process start then waits for the forkserver (which has a lock of its
own), and the page's first import of torch waits for the import under way (app/main.py builds
the page once it has loaded, so the HTTP answer waits for neither).
"""

from __future__ import annotations

import threading
import time

# Set once both warm-ups have finished (tests and the latency test read it).
WARM = threading.Event()


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


def _warm_forkserver(done: dict) -> None:
    # Runs train in processes forked from a forkserver that imports torch once: start it now.
    from engine.host import worker
    started = time.perf_counter()
    worker.warm_up()
    done["processes"] = time.perf_counter() - started


def warm_up_in_background() -> threading.Thread:
    """Start both warm-ups in daemon threads; `WARM` is set when both are done."""
    done: dict[str, float] = {}
    forkserver = threading.Thread(target=_warm_forkserver, args=(done,), name="creditlab-forkserver",
                                  daemon=True)

    def work() -> None:
        try:
            forkserver.start()
            done["trainer"] = warm_up()
            # The page's own modules (HoloViews, for the sweep page, takes a second or two), so
            # that the first page loaded builds as fast as every later one.
            import app.dashboard  # noqa: F401
            import app.sweep_view  # noqa: F401
            forkserver.join()
            print(f"creditlab: warm-up done in {done.get('trainer', 0):.1f} s (torch, first optimiser, "
                  f"digits data); run processes ready in {done.get('processes', 0):.1f} s", flush=True)
        except Exception as exc:       # a failed warm-up only costs the first Start its time
            print(f"creditlab: warm-up failed ({type(exc).__name__}: {exc}); the first Start will be slower",
                  flush=True)
        finally:
            WARM.set()

    thread = threading.Thread(target=work, name="creditlab-warm-up", daemon=True)
    thread.start()
    return thread


def on_server_loaded(server_context) -> None:
    warm_up_in_background()
