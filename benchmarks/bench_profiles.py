"""Benchmark: checks per second of a profile, per engine, on one core and on every core.

Run: ``.venv/bin/python benchmarks/bench_profiles.py [--profile ci] [--frameworks a,b] [--cores 1,2] [--first-cpu 0] [--json F] [--plot F.png]``.

Each engine runs ``bnconf run --profile P --frameworks ENGINE`` in a fresh output directory,
pinned with ``taskset`` to N cores from ``--first-cpu`` on, for each N of ``--cores``; the checks are the
records the run wrote (every verdict), the time is the run's wall time, framework import and
compilation included (that is what a user waits for).  JAX's compilation cache is turned
off (``BNCONF_CACHE_DIR=""``) and inductor's kernel cache starts empty in the run's own
directory, so every run compiles from scratch.  Each engine runs its default variant and the
twins its properties compare it with (not its other variants).  A benchmark, not a test.

``--limit-seconds S`` stops each run after S seconds, as Ctrl-C would (bnconf then writes the
summary of the checks made so far), and reports the checks per second over those S seconds: a
compiling engine's ``nightly`` run, which compiles for nearly every example, would otherwise
take tens of minutes each, hours for all of them.  Such a row says ``stopped_after_s``.

``--json`` is written after every run and keeps the rows of other (engine, cores) pairs already
in the file, so a long measurement (the ``nightly`` profile of a compiling engine takes tens of
minutes) loses nothing when it is stopped, and can be completed piecewise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plotting

ROOT = Path(__file__).resolve().parent.parent


def run(engine: str, profile: str, cores: int, first_cpu: int = 0, limit: float | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bnconf-bench-") as out:
        command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--profile", profile, "--frameworks", engine, "--out", out]
        if shutil.which("taskset"):
            command = ["taskset", "-c", ",".join(str(c) for c in range(first_cpu, first_cpu + cores)), *command]
        env = {**os.environ, "BNCONF_CACHE_DIR": "", "TORCHINDUCTOR_CACHE_DIR": str(Path(out) / "inductor")}
        start = time.perf_counter()
        # SIGINT as a terminal has it: a job started in the background without job control (nohup,
        # a CI step) inherits it ignored, and the run would not stop at the limit.
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                                   start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        stopped = False
        try:
            _, stderr = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            stopped = True  # Ctrl-C: bnconf stops its engines and writes the summary of what they recorded
            os.killpg(process.pid, signal.SIGINT)
            try:
                _, stderr = process.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                _, stderr = process.communicate()
        seconds = limit if stopped else time.perf_counter() - start
        try:
            totals = json.loads((Path(out) / "summary.json").read_text())["totals"]
        except (OSError, ValueError, KeyError):
            return {"engine": engine, "cores": cores, "error": (stderr.strip().splitlines() or ["no summary"])[-1]}
    checks = sum(totals.get(v, 0) for v in ("pass", "discrepancy", "error"))
    row = {"engine": engine, "cores": cores, "seconds": seconds, "checks": checks, "per_second": checks / seconds,
           "exit_code": process.returncode}  # fmt: skip
    return {**row, "stopped_after_s": limit} if stopped else row


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
    limits = sorted({r["stopped_after_s"] for r in measured if "stopped_after_s" in r})
    stopped = f"; runs stopped at {', '.join(f'{limit:.0f}' for limit in limits)} s: up to then" if limits else ""
    axes.set_ylabel(f"checks per second (whole run{stopped})", fontsize=8 if limits else None)
    axes.set_title(f"'{profile}' profile: checks per second per engine")
    axes.grid(True, axis="y", alpha=0.3)
    plotting.save(figure, axes, path)
    return True


def merged(path: Path, rows: list[dict]) -> list[dict]:
    """The rows already in ``path`` that ``rows`` does not re-measure, then ``rows``."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        earlier = []
    measured = {(r["engine"], r["cores"]) for r in rows}
    return [r for r in earlier if (r.get("engine"), r.get("cores")) not in measured] + rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--frameworks", default="torch,keras,keras-jax,keras-torch,tf-keras,flax,nnx")
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--limit-seconds", type=float, help="stop each run after this long (Ctrl-C) and count the checks it made by then")
    parser.add_argument("--first-cpu", type=int, default=0, help="pin to CPUs from this one on (default 0)")
    parser.add_argument("--json", type=Path, help="merge the rows into this file, after every run")
    parser.add_argument("--plot", type=Path, help="also draw checks per second per engine and core count (PNG)")
    args = parser.parse_args()
    rows = []
    print(f"profile {args.profile}: {'engine':<12} {'cores':>5} {'seconds':>8} {'checks':>7} {'checks/s':>9}")
    for engine in [e.strip() for e in args.frameworks.split(",") if e.strip()]:
        for cores in [int(c) for c in args.cores.split(",")]:
            row = run(engine, args.profile, cores, args.first_cpu, args.limit_seconds)
            rows.append(row)
            if args.json:
                args.json.write_text(json.dumps(merged(args.json, [row]), indent=1))
            if "error" in row:
                print(f"{'':>{len('profile ' + args.profile) + 1}}{engine:<12} {cores:>5}  not measured: {row['error']}")
            else:
                stopped = "  (stopped at the limit)" if "stopped_after_s" in row else ""
                print(f"{'':>{len('profile ' + args.profile) + 1}}{engine:<12} {cores:>5} {row['seconds']:>8.1f} {row['checks']:>7} {row['per_second']:>9.1f}{stopped}", flush=True)
    if args.plot:
        plot(json.loads(args.json.read_text()) if args.json else rows, args.profile, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
