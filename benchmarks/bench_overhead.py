"""Benchmark: the harness's overhead per case, against the bare framework calls, per engine.

Run: ``.venv/bin/python benchmarks/bench_overhead.py [--frameworks a,b] [--repeat 5] [--json OUT]``.

For each engine, one fixed set of cases (shapes, dtypes and data classes like the ``ci``
profile's, every case runnable by every engine) is run after a warm-up that fills each
engine's caches (layers, compiled functions):

* **bare**: ``adapter.run(case, data)``, the framework's own work (the protocol's calls and
  the conversions in and out);
* **full**: ``check_case(adapter, case, data)``, the same calls plus the reference, the
  tolerance model and the comparison, which is what a conformance check costs.

It prints ms per case for both, their ratio (the target is at most 1.2), and the harness's own
share split into reference, tolerance model and comparison.  Each engine runs in a process of
its own with its declared environment (Keras' backend).  A benchmark, not a test: it asserts
no time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (shape, channel axis, dtype, data class) — small to mid-size, as the ``ci`` profile draws
CASES = [
    ((8, 3), 1, "float32", "well"), ((32, 16), 1, "float32", "offset"), ((4, 3, 8, 8), 1, "float32", "well"),
    ((8, 16, 4, 4), 1, "float32", "offset"), ((2, 4, 6), 1, "float64", "well"), ((16, 8, 5, 5), 1, "float32", "well"),
    ((4, 2, 3, 3, 3), 1, "float32", "well"), ((64, 32), 1, "float64", "offset"), ((8, 4, 16, 16), 1, "float32", "well"),
    ((3, 5, 7), 1, "float16", "well"),
]  # fmt: skip


def cases():
    from datamodel.case import Case, Generator

    built = []
    for index, (shape, axis, dtype, kind) in enumerate(CASES):
        channels = shape[axis]
        loc = tuple(1e3 * (c + 1) for c in range(channels)) if kind == "offset" else 0.0
        built.append(Case(shape=shape, channel_axis=axis, dtype=dtype, x=Generator(seed=index, loc=loc), eps=1e-3,
                          decay=0.9, affine=True, training_steps=2))  # fmt: skip
    return built


def measure(spec: str, repeat: int) -> dict:
    """Time the engine in this process (the child's side)."""
    from adapters.registry import get_adapter
    from conformance.judging.check import check_case, expected_values, tolerances
    from conformance.judging.compare import compare

    adapter = get_adapter(spec)
    runnable = [c for c in cases() if adapter.unsupported_reason(c) is None]
    data = [c.materialize() for c in runnable]
    for case, d in zip(runnable, data, strict=True):  # warm-up: layers built, functions compiled
        check_case(adapter, case, d)

    def best(step) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for case, d in zip(runnable, data, strict=True):
                step(case, d)
            times.append(time.perf_counter() - start)
        return min(times) / len(runnable) * 1e3

    bare = best(lambda case, d: adapter.run(case, d))
    full = best(lambda case, d: check_case(adapter, case, d))
    settings = {id(c): adapter.settings(c) for c in runnable}
    reference = best(lambda case, d: expected_values(case, d, settings[id(case)]))
    expected = {id(c): expected_values(c, d, settings[id(c)]) for c, d in zip(runnable, data, strict=True)}
    tolerance = best(lambda case, d: tolerances(case, d, settings[id(case)], expected[id(case)]))
    allowed = {id(c): tolerances(c, d, settings[id(c)], expected[id(c)]) for c, d in zip(runnable, data, strict=True)}
    observed = {id(c): adapter.run(c, d) for c, d in zip(runnable, data, strict=True)}

    def comparing(case, _data):
        for name, outcome in observed[id(case)].items():
            if outcome.value is not None:
                compare(name, expected[id(case)].values[name], outcome.value, allowed[id(case)][name])

    comparison = best(comparing)
    return {"framework": spec, "version": adapter.version(), "cases": len(runnable), "bare_ms": bare, "full_ms": full,
            "ratio": full / bare, "reference_ms": reference, "tolerance_ms": tolerance, "comparison_ms": comparison}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="torch,keras,keras-jax,keras-torch,tf-keras,flax,nnx")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat)))
        return 0
    from adapters.registry import availability, declared_environment

    rows = []
    for spec in [s.strip() for s in args.frameworks.split(",") if s.strip()]:
        env = {**os.environ, **declared_environment(spec), "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, __file__, "--child", spec, "--repeat", str(args.repeat)],
                              capture_output=True, text=True, env=env)  # fmt: skip
        try:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            reason = availability(spec) or (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{spec}: not measured: {reason}", file=sys.stderr)
    print(f"{'engine':<12} {'cases':>5} {'bare ms':>8} {'full ms':>8} {'ratio':>6}   harness: reference / tolerance / comparison ms")
    for r in rows:
        print(f"{r['framework']:<12} {r['cases']:>5} {r['bare_ms']:>8.2f} {r['full_ms']:>8.2f} {r['ratio']:>6.2f}   "
              f"{r['reference_ms']:.2f} / {r['tolerance_ms']:.2f} / {r['comparison_ms']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
