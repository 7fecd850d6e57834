"""Benchmark: the ``ci`` profile, run again and again, gives no false alarm and the same records.

Run: ``.venv/bin/python benchmarks/bench_determinism.py [--runs 20] [--frameworks a,b] [--out DIR]``.

Each run is a full ``bnconf run --profile ci``.  The ``ci`` profile is derandomized, so every
run must draw the same cases and every framework must give the same verdicts: a run whose
exit code is not 0 is a false alarm (the suite found something unexpected on engines that
passed before), and any record that differs from the first run's, once the fields that
name a moment or a place are set aside, is non-determinism.  The script prints one line
per run and a summary, and exits 1 when either happened.  It asserts no time: it is a
benchmark, not a test (a full run takes minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

#: Fields that name when or where a record was written, not what was found.
VOLATILE = {"time", "run_id", "commit", "pid", "started", "seconds", "case_file", "replay", "log", "records"}


def stable(value):
    """``value`` with every volatile field removed, recursively."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def fingerprint(out: Path) -> dict[str, list[str]]:
    """Every records file of a run, as its stable records in order (one JSON text each)."""
    return {
        path.name: [json.dumps(stable(json.loads(line)), sort_keys=True) for line in path.read_text().splitlines() if line]
        for path in sorted((out / "records").glob("*.jsonl"))
    }


def first_difference(reference: dict[str, list[str]], other: dict[str, list[str]]) -> str | None:
    if reference.keys() != other.keys():
        return f"records files differ: {sorted(reference)} vs {sorted(other)}"
    for name, lines in reference.items():
        if len(lines) != len(other[name]):
            return f"{name}: {len(lines)} records vs {len(other[name])}"
        for number, (a, b) in enumerate(zip(lines, other[name], strict=True), 1):
            if a != b:
                return f"{name}:{number}: {a[:200]} ... vs {b[:200]} ..."
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--frameworks", default=None, help="comma-separated frameworks (default: all)")
    parser.add_argument("--out", default="bnconf-out/determinism")
    args = parser.parse_args()
    bnconf = [sys.executable, "-m", "conformance.orchestration.cli"]
    first: dict[str, list[str]] | None = None
    false_alarms, differing = 0, 0
    for run in range(1, args.runs + 1):
        out = Path(args.out) / f"run-{run:02d}"
        command = [*bnconf, "run", "--profile", "ci", "--out", str(out)]
        if args.frameworks:
            command += ["--frameworks", args.frameworks]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        records = fingerprint(out)
        difference = None if first is None else first_difference(first, records)
        first = first or records
        false_alarms += result.returncode != 0
        differing += difference is not None
        count = sum(len(lines) for lines in records.values())
        print(f"run {run:2d}: exit {result.returncode}, {count} records, {seconds:.0f} s, "
              f"{'identical to run 1' if difference is None else 'DIFFERS: ' + difference}", flush=True)  # fmt: skip
    print(f"{args.runs} runs: {false_alarms} false alarms (non-zero exit), {differing} runs whose records differ from run 1")
    return 1 if false_alarms or differing else 0


if __name__ == "__main__":
    sys.exit(main())
