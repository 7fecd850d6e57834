"""Benchmark: checks per second of a profile, per engine, on one core and on every core.

Run: ``.venv/bin/python benchmarks/bench_profiles.py [--profile ci] [--frameworks a,b] [--cores 1,2] [--plot F.png]``.

Each engine runs ``bnconf run --profile P --frameworks ENGINE`` in a fresh output directory,
pinned with ``taskset`` to the first N cores for each N of ``--cores``; the checks are the
records the run wrote (every verdict), the time is the run's wall time, framework import and
compilation included (that is what a user waits for).  JAX's compilation cache is turned
off (``BNCONF_CACHE_DIR=""``) and inductor's kernel cache starts empty in the run's own
directory, so every run compiles from scratch.  Each engine runs its default variant and the
twins its properties compare it with (not its other variants).  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plotting

ROOT = Path(__file__).resolve().parent.parent


def run(engine: str, profile: str, cores: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bnconf-bench-") as out:
        command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--profile", profile, "--frameworks", engine, "--out", out]
        if shutil.which("taskset"):
            command = ["taskset", "-c", ",".join(str(c) for c in range(cores)), *command]
        env = {**os.environ, "BNCONF_CACHE_DIR": "", "TORCHINDUCTOR_CACHE_DIR": str(Path(out) / "inductor")}
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        seconds = time.perf_counter() - start
        try:
            totals = json.loads((Path(out) / "summary.json").read_text())["totals"]
        except (OSError, ValueError, KeyError):
            return {"engine": engine, "cores": cores, "error": (done.stderr.strip().splitlines() or ["no summary"])[-1]}
    checks = sum(totals.get(v, 0) for v in ("pass", "discrepancy", "error"))
    return {"engine": engine, "cores": cores, "seconds": seconds, "checks": checks, "per_second": checks / seconds,
            "exit_code": done.returncode}  # fmt: skip


def plot(rows: list[dict], profile: str, path: Path) -> bool:
    """Checks per second per engine, one bar per core count (PNG)."""
    plt = plotting.pyplot()
    if plt is None:
        return False
    measured = [r for r in rows if "error" not in r]
    engines = list(dict.fromkeys(r["engine"] for r in measured))
    cores = sorted({r["cores"] for r in measured})
    figure, axes = plt.subplots(figsize=(max(6, len(engines) * 0.9), 4.2))
    width = 0.8 / max(len(cores), 1)
    for i, count in enumerate(cores):
        values = {r["engine"]: r["per_second"] for r in measured if r["cores"] == count}
        axes.bar([e + i * width for e in range(len(engines))], [values.get(name, 0) for name in engines], width,
                 label=f"{count} core{'s' if count > 1 else ''}")  # fmt: skip
    axes.set_xticks([e + width * (len(cores) - 1) / 2 for e in range(len(engines))], engines, rotation=30, ha="right")
    axes.set_ylabel("checks per second, whole run")
    axes.set_title(f"'{profile}' profile: checks per second per engine")
    axes.grid(True, axis="y", alpha=0.3)
    plotting.save(figure, axes, path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--frameworks", default="torch,keras,keras-jax,keras-torch,tf-keras,flax,nnx")
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="also draw checks per second per engine and core count (PNG)")
    args = parser.parse_args()
    rows = []
    print(f"profile {args.profile}: {'engine':<12} {'cores':>5} {'seconds':>8} {'checks':>7} {'checks/s':>9}")
    for engine in [e.strip() for e in args.frameworks.split(",") if e.strip()]:
        for cores in [int(c) for c in args.cores.split(",")]:
            row = run(engine, args.profile, cores)
            rows.append(row)
            if "error" in row:
                print(f"{'':>{len('profile ' + args.profile) + 1}}{engine:<12} {cores:>5}  not measured: {row['error']}")
            else:
                print(f"{'':>{len('profile ' + args.profile) + 1}}{engine:<12} {cores:>5} {row['seconds']:>8.1f} {row['checks']:>7} {row['per_second']:>9.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.profile, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
