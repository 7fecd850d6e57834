"""``bnconf run``: the suite, one process per framework, then the merged report.

Each framework (with its variants) runs ``pytest`` on the suite in a process of its own,
appending result records to ``OUT/records/<framework>.jsonl`` as each check finishes.  A
framework that fails, crashes or is missing never loses another framework's records; the
report is rendered from whatever records exist when every process has ended.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from adapters.registry import all_specs, declared_environment, registered, split_spec
from datamodel.verdicts import UNSUPPORTED, VERDICTS

from .exitcodes import EXIT_FOUND, EXIT_INTERRUPTED, EXIT_NOTHING_CHECKED, EXIT_OK
from .supervise import Interrupted, supervise

SUITE = Path(__file__).parent.parent / "suite"
#: Seconds one check may run before its framework's process is killed and an error recorded.
DEFAULT_CASE_TIMEOUT = 600.0


def group_by_framework(specs: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for spec in specs:
        groups.setdefault(split_spec(spec)[0], []).append(spec)
    return groups


def pytest_command(specs: list[str], device: str, profile: str, results: Path) -> list[str]:
    return [
        sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider", "--no-header",
        "-o", "console_output_style=count", f"--bnconf-frameworks={','.join(specs)}", f"--bnconf-device={device}",
        f"--bnconf-profile={profile}", f"--bnconf-results={results}", "-rfE", "--tb=line",
    ]  # fmt: skip


#: Where compiling engines keep compiled programs between runs; ``BNCONF_CACHE_DIR=""`` turns it off.
CACHE_DIR_VARIABLE = "BNCONF_CACHE_DIR"
DEFAULT_CACHE_DIR = ".bnconf-cache"


def compile_cache_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a suite process that keeps JAX's compiled programs between runs.

    JAX's persistent compilation cache works on CPU too, but by default stores only programs
    that took a second or more to compile; a batch norm compiles in milliseconds, so both
    thresholds are set to 0.  Variables the user set are left alone.  (PyTorch's inductor
    keeps its own cache by default.)
    """
    environ = os.environ if environ is None else environ
    directory = environ.get(CACHE_DIR_VARIABLE, DEFAULT_CACHE_DIR)
    if not directory:
        return {}
    wanted = {
        "JAX_COMPILATION_CACHE_DIR": str(Path(directory, "jax").resolve()),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    return {key: value for key, value in wanted.items() if key not in environ}


def run_framework(
    name: str, specs: list[str], device: str, profile: str, out: Path, case_timeout: float = DEFAULT_CASE_TIMEOUT,
    env: dict | None = None, label: str | None = None, stop_requested: threading.Event | None = None,
) -> dict:  # fmt: skip
    """Run the suite for one framework in its own supervised process; return how it ended.

    ``stop_requested``: set by the main thread on Ctrl-C when this runs in a worker thread.
    """
    label = label or name
    if env is None:
        env = {**os.environ, **declared_environment(name)}
    env = {**env, **compile_cache_environment(env)}
    results = out / "records" / f"{label}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.unlink(missing_ok=True)
    log_path = out / "logs" / f"{label}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{label}] running {', '.join(specs)} on {device} (profile {profile}) ...", flush=True)
    try:
        outcome = supervise(pytest_command(specs, device, profile, results), label=label, results=results,
                            log_path=log_path, case_timeout=case_timeout, env=env,
                            echo=lambda line: print(line, flush=True), stop_requested=stop_requested)  # fmt: skip
    except Interrupted as stopped:  # Ctrl-C: the process group is gone; say how this run ended
        stopped.run = {"framework": label, "specs": specs, "exit_code": stopped.outcome.exit_code,
                       "outcome": "interrupted", "seconds": stopped.outcome.seconds, "records": str(results),
                       "log": str(log_path)}  # fmt: skip
        raise
    print(f"[{label}] {outcome.outcome} in {outcome.seconds:.0f}s; log: {log_path}", flush=True)
    return {"framework": label, "specs": specs, "exit_code": outcome.exit_code, "outcome": outcome.outcome,
            "seconds": outcome.seconds, "records": str(results), "log": str(log_path)}  # fmt: skip


def run_suite(
    frameworks: list[str] | None, device: str, profile: str, out: str | Path, case_timeout: float = DEFAULT_CASE_TIMEOUT,
    jobs: int = 1, quick: bool = False,
) -> int:  # fmt: skip
    """Run each framework's suite in its own supervised process, ``jobs`` at a time, then the report.

    Without ``frameworks`` every registered engine runs, ``quick`` leaving out the slow variants."""
    from reports.render import render_report

    from .parallel import run_parallel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = frameworks or all_specs(list(registered()), quick=quick)
    stop_requested = threading.Event()

    def run(item: tuple[str, list[str]]) -> dict:
        name, group = item
        return run_framework(name, group, device, profile, out, case_timeout, stop_requested=stop_requested)

    def not_started(item: tuple[str, list[str]]) -> dict:
        name, group = item
        return {"framework": name, "specs": group, "exit_code": None, "outcome": "not started: interrupted",
                "seconds": 0, "records": "", "log": ""}  # fmt: skip

    runs, interrupted = run_parallel(run, list(group_by_framework(specs).items()), jobs, stop_requested,
                                     not_started=not_started)  # fmt: skip
    record_files = [r["records"] for r in runs if r["records"] and Path(r["records"]).exists()]
    summary = render_report(record_files, out, runs=runs, profile=profile)
    print()
    print(summary["text"])
    print(f"\nreport: {summary['html']}")
    print(f"records: {out / 'records'}; JSON summary: {summary['json']}")
    return exit_code(runs, summary["totals"], interrupted)


def exit_code(runs: list[dict], totals: dict[str, int], interrupted: bool = False) -> int:
    """How a run ended, printing the line that says why when it is not a plain pass or finding.

    Nothing checked is not a pass: when every framework was unavailable or skipped every
    check, the run exits ``EXIT_NOTHING_CHECKED``.
    """
    if interrupted:
        print("bnconf: interrupted (Ctrl-C): the report covers the records written before it")
        return EXIT_INTERRUPTED
    if not all(r["exit_code"] == 0 for r in runs):
        return EXIT_FOUND
    checked = sum(totals.get(verdict, 0) for verdict in VERDICTS if verdict != UNSUPPORTED)
    if checked == 0:
        print("bnconf: nothing was checked: every framework was unavailable or skipped every check")
        return EXIT_NOTHING_CHECKED
    return EXIT_OK
