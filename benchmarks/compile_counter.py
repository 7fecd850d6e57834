"""A pytest plugin for ``bench_compile.py``: counts what the suite process compiles, and how long it takes.

Loaded into a suite process only by the benchmark (``PYTEST_ADDOPTS=-p compile_counter`` with
this folder on ``PYTHONPATH``); the product never imports it.  ``BNCONF_COMPILE_KINDS`` names
the compilers to watch (``jax``, ``torch``, ``tf``), ``BNCONF_COMPILE_STATS`` the JSON file it
writes at the end of the session:

- ``jax``: JAX's own monitoring events: one ``backend_compile_duration`` per XLA program
  compiled or loaded from the persistent cache (its ``cache_hits`` event tells them apart),
  by function name, plus tracing and lowering time;
- ``torch``: dynamo's counters: graphs compiled (``unique_graphs``) and the time spent in
  dynamo's and inductor's compile steps;
- ``tf``: every trace of a ``tf.function`` into a concrete function (``jit_compile`` functions
  are then compiled by XLA once per concrete input shape, which TensorFlow does not expose to
  Python), and the time spent tracing.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import defaultdict

STATS: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
#: XLA programs compiled (or loaded from the persistent cache) per JAX function name
FUNCTIONS: dict[str, int] = defaultdict(int)
FUNCTION_SECONDS: dict[str, float] = defaultdict(float)
_STARTED = time.perf_counter()


def _watch_jax() -> None:
    import jax.monitoring
    from jax._src import dispatch

    names = {dispatch.BACKEND_COMPILE_EVENT: "compile", dispatch.JAXPR_TRACE_EVENT: "trace",
             dispatch.JAXPR_TO_MLIR_MODULE_EVENT: "lower"}  # fmt: skip

    def listener(event: str, seconds: float, fun_name: str = "", **_) -> None:
        name = names.get(event)
        if name is not None:
            STATS["jax"][f"{name}_count"] += 1
            STATS["jax"][f"{name}_seconds"] += seconds
        if name == "compile":
            FUNCTIONS[fun_name] += 1
            FUNCTION_SECONDS[fun_name] += seconds

    def cache_listener(event: str, **_) -> None:
        if event.endswith(("/cache_hits", "/cache_misses")):
            STATS["jax"][event.rsplit("/", 1)[1]] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    jax.monitoring.register_event_listener(cache_listener)


def _watch_tf() -> None:
    from tensorflow.python.eager.polymorphic_function import tracing_compilation

    original = tracing_compilation._create_concrete_function

    @functools.wraps(original)
    def counted(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            STATS["tf"]["trace_count"] += 1
            STATS["tf"]["trace_seconds"] += time.perf_counter() - start

    tracing_compilation._create_concrete_function = counted


def _torch_stats() -> dict[str, float]:
    import sys

    if "torch._dynamo" not in sys.modules:
        return {"graphs": 0, "compile_seconds": 0.0}
    from torch._dynamo import utils

    # the outermost compile step of each frame: dynamo's tracing, AOT autograd and inductor inside it
    seconds = sum(utils.compilation_time_metrics.get("_compile.compile_inner", []))
    return {"graphs": utils.counters["stats"]["unique_graphs"], "compile_seconds": seconds}


WATCHERS = {"jax": _watch_jax, "tf": _watch_tf}


def pytest_configure(config) -> None:
    for kind in filter(None, os.environ.get("BNCONF_COMPILE_KINDS", "").split(",")):
        if kind in WATCHERS:
            WATCHERS[kind]()


def pytest_unconfigure(config) -> None:
    path = os.environ.get("BNCONF_COMPILE_STATS")
    if not path:
        return
    stats = {kind: dict(values) for kind, values in STATS.items()}
    if "torch" in os.environ.get("BNCONF_COMPILE_KINDS", ""):
        stats["torch"] = _torch_stats()
    if FUNCTIONS:
        stats["jax"]["functions"] = dict(sorted(FUNCTIONS.items(), key=lambda item: -item[1]))
        stats["jax"]["function_seconds"] = dict(FUNCTION_SECONDS)
    stats["session_seconds"] = time.perf_counter() - _STARTED
    with open(path, "w", encoding="utf-8") as file:
        json.dump(stats, file)
