"""Running supervised framework processes a few at a time, interruptibly.

``bnconf run --jobs N`` and ``bnconf matrix --jobs N`` start one supervised process per
framework (or matrix cell) in worker threads.  Python delivers SIGINT to the main thread
only, so a worker never sees Ctrl-C: the main thread waits here in short steps, and on
Ctrl-C sets ``stop_requested``, which every supervisor watches (``supervise``); each stops
its process group and raises ``Interrupted`` carrying how its run ended, and work not yet
started never starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from .supervise import Interrupted


def run_parallel(
    run: Callable[[Any], dict], items: list, jobs: int, stop_requested: threading.Event, *,
    not_started: Callable[[Any], dict],
) -> tuple[list[dict], bool]:  # fmt: skip
    """``run`` over ``items``, ``jobs`` at a time: ``(runs, interrupted)``, runs in ``items``' order.

    ``run`` must pass ``stop_requested`` on to its supervisor; ``not_started(item)`` describes
    an item that Ctrl-C kept from starting.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = [pool.submit(run, item) for item in items]
    interrupted = False
    try:
        while wait(futures, timeout=0.5).not_done:  # short waits: the main thread stays interruptible
            pass
    except KeyboardInterrupt:
        interrupted = True
        stop_requested.set()
        for future in futures:
            future.cancel()
    finally:
        pool.shutdown(wait=True)
    runs = []
    for item, future in zip(items, futures, strict=True):
        if future.cancelled():
            runs.append(not_started(item))
            continue
        try:
            runs.append(future.result())
        except Interrupted as stopped:
            runs.append(stopped.run)
            interrupted = True
    return runs, interrupted
