"""``bnconf run``: the suite, one process per framework, then the merged report.

Each framework (with its variants) runs ``pytest`` on the suite in a process of its own,
appending result records to ``OUT/records/<framework>.jsonl`` as each check finishes.  A
framework that fails, crashes or is missing never loses another framework's records; the
report is rendered from whatever records exist when every process has ended.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from adapters.registry import all_specs, registered, split_spec

SUITE = Path(__file__).parent / "suite"
EXIT_OK, EXIT_FOUND = 0, 1
_PROGRESS = re.compile(r"\[\s*(\d+/\d+|\d+%)\]\s*$")
PYTEST_OUTCOMES = {0: "passed", 1: "findings", 2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests ran"}


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


def run_framework(name: str, specs: list[str], device: str, profile: str, out: Path) -> dict:
    """Run the suite for one framework in its own process; return how it ended."""
    results = out / "records" / f"{name}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.unlink(missing_ok=True)
    log_path = out / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"[{name}] running {', '.join(specs)} on {device} (profile {profile}) ...", flush=True)
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            pytest_command(specs, device, profile, results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        last = ""
        for line in process.stdout:
            log.write(line)
            match = _PROGRESS.search(line)  # pytest's progress lines: "....F. [ 12/140]"
            if match:
                progress = match.group(0).strip()
                if progress != last:
                    print(f"[{name}] {progress}", flush=True)
                    last = progress
        code = process.wait()
    seconds = time.monotonic() - started
    outcome = PYTEST_OUTCOMES.get(code, f"crashed (exit code {code})")
    print(f"[{name}] {outcome} in {seconds:.0f}s; log: {log_path}", flush=True)
    return {"framework": name, "specs": specs, "exit_code": code, "outcome": outcome, "seconds": round(seconds, 1),
            "records": str(results), "log": str(log_path)}  # fmt: skip


def run_suite(frameworks: list[str] | None, device: str, profile: str, out: str | Path) -> int:
    from reports.render import render_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = frameworks or all_specs(list(registered()))
    runs = [run_framework(name, group, device, profile, out) for name, group in group_by_framework(specs).items()]
    record_files = [r["records"] for r in runs if Path(r["records"]).exists()]
    summary = render_report(record_files, out, runs=runs, profile=profile)
    print()
    print(summary["text"])
    print(f"\nreport: {summary['html']}")
    print(f"records: {out / 'records'}; JSON summary: {summary['json']}")
    return EXIT_OK if all(r["exit_code"] == 0 for r in runs) else EXIT_FOUND
