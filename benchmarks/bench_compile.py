"""Benchmark: how much each compiling engine compiles in a run, and what share of the run it takes.

Run: ``.venv/bin/python benchmarks/bench_compile.py [--profile ci] [--frameworks a,b] [--warm] [--json F]``.

Each engine runs ``bnconf run --profile P --quick --frameworks ENGINE`` (its execution twins
included, as ``make test`` runs it) with ``compile_counter`` loaded into the suite process,
cold: JAX's persistent cache and inductor's kernel cache start empty in a directory of the
benchmark's own.  With ``--warm`` it runs again with the caches the cold run filled, to show
what they save (a JAX cache hit compiles nothing and is not counted).

Per engine it prints the compiler's count (for JAX the XLA programs of the engine's own phase
functions, with the programs JAX compiles for single operations beside them; graphs for
dynamo; traces for ``tf.function``), the distinct (shape, dtype, configuration) the compiled
frameworks' checks used, their ratio, the time spent compiling (tracing and lowering
included, every program counted) and its share of the suite's wall time.  A configuration is the layer's
channel axis, affine flag, ε and decay; each is traced or compiled for its phases (inference,
training, gradient), so a ratio up to about 3 is one compile per phase.  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The compiler each engine's process runs (what compile_counter watches), and the frameworks
#: of that process whose checks run compiled code: their cases are the configurations counted.
COMPILERS = {
    "flax": ("jax", ("flax", "flax:two_pass")), "nnx": ("jax", ("nnx", "nnx:two_pass")), "haiku": ("jax", ("haiku",)),
    "equinox": ("jax", ("equinox", "equinox:batch", "equinox:batch_trained")), "keras-jax": ("jax", ("keras-jax:jit",)),
    "torch": ("torch", ("torch:compile",)), "keras": ("tf", ("keras:jit", "keras:tf_function")),
}  # fmt: skip
#: The JAX programs of an engine's own phases (inference, training step, gradient; Keras' call):
#: every other program is JAX compiling one operation at a time (an eager twin, the harness).
PHASE_PROGRAMS = ("jit(evaluate)", "jit(train_step)", "jit(gradients)", "jit(call)")


def distinct_configurations(records_dir: Path, frameworks: tuple[str, ...]) -> int:
    """Distinct (shape, dtype, channel axis, affine, ε, decay) among the cases ``frameworks`` checked."""
    seen = set()
    for path in records_dir.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            case = record.get("case")
            if record.get("kind") != "result" or not case or record.get("verdict") == "unsupported":
                continue
            if record.get("framework") not in frameworks:
                continue
            seen.add((tuple(case["shape"]), case["dtype"], case["channel_axis"], case.get("affine"), case.get("eps"), case.get("decay")))
    return len(seen)


def run(engine: str, profile: str, caches: Path, warm: bool) -> dict:
    kind, compiled = COMPILERS[engine]
    with tempfile.TemporaryDirectory(prefix="bnconf-bench-") as out:
        stats_file = Path(out) / "compile-stats.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")])),
            "PYTEST_ADDOPTS": (os.environ.get("PYTEST_ADDOPTS", "") + " -p compile_counter").strip(),
            "BNCONF_COMPILE_KINDS": kind,
            "BNCONF_COMPILE_STATS": str(stats_file),
            "BNCONF_CACHE_DIR": str(caches / "bnconf"),  # empty for the cold run, which fills it
            "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"),
        }
        command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--profile", profile, "--quick",
                   "--frameworks", engine, "--out", out]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        if not stats_file.exists():
            return {"engine": engine, "error": (done.stdout.strip().splitlines() or ["no output"])[-1]}
        stats = json.loads(stats_file.read_text())
        configurations = distinct_configurations(Path(out) / "records", compiled)
    measured = stats.get(kind, {})
    functions = measured.get("functions", {})
    phase_programs = sum(count for name, count in functions.items() if name in PHASE_PROGRAMS)
    phase_seconds = sum(t for name, t in measured.get("function_seconds", {}).items() if name in PHASE_PROGRAMS)
    count = {"jax": phase_programs, "torch": measured.get("graphs", 0), "tf": measured.get("trace_count", 0)}[kind]
    seconds = {"jax": sum(measured.get(f"{step}_seconds", 0.0) for step in ("trace", "lower", "compile")),
               "torch": measured.get("compile_seconds", 0.0), "tf": measured.get("trace_seconds", 0.0)}[kind]  # fmt: skip
    return {"engine": engine, "compiler": kind, "warm": warm, "count": int(count), "configurations": configurations,
            "per_configuration": count / configurations if configurations else None, "compile_seconds": seconds,
            "suite_seconds": stats["session_seconds"], "share": seconds / stats["session_seconds"], "exit_code": done.returncode,
            "op_by_op_programs": int(measured.get("compile_count", 0)) - phase_programs if kind == "jax" else None,
            "cache_hits": int(measured.get("cache_hits", 0)) if kind == "jax" else None,
            "phase_compile_seconds": phase_seconds if kind == "jax" else None}  # fmt: skip


UNITS = {"jax": "phase programs", "torch": "dynamo graphs", "tf": "tf.function traces"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--frameworks", default=",".join(COMPILERS))
    parser.add_argument("--warm", action="store_true", help="run each engine again with the caches the cold run filled")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engines = [e.strip() for e in args.frameworks.split(",") if e.strip()]
    unknown = [e for e in engines if e not in COMPILERS]
    if unknown:
        parser.error(f"no compiler known for {', '.join(unknown)}; expected some of {', '.join(COMPILERS)}")
    rows = []
    print(f"profile {args.profile} (--quick): engine, cache, what was compiled, distinct (shape, dtype, configuration), "
          "compile seconds / suite seconds")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bnconf-caches-") as caches:
        for engine in engines:
            for warm in (False, True) if args.warm else (False,):
                row = run(engine, args.profile, Path(caches) / engine, warm)
                rows.append(row)
                if "error" in row:
                    print(f"  {engine:<10} not measured: {row['error']}")
                    continue
                ratio = f"{row['per_configuration']:.2f}" if row["per_configuration"] is not None else "-"
                print(f"  {engine:<10} {'warm' if warm else 'cold'}  {row['count']:>5} {UNITS[row['compiler']]:<19} "
                      f"{row['configurations']:>5} configurations ({ratio} each)  "
                      f"{row['compile_seconds']:6.1f} s / {row['suite_seconds']:6.1f} s = {row['share']:.0%}"
                      + (f"  (+{row['op_by_op_programs']} op-by-op programs; phase programs' XLA compile "
                         f"{row['phase_compile_seconds']:.1f} s; {row['cache_hits']} cache hits)"
                         if row["compiler"] == "jax" else ""))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
