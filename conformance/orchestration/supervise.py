"""Supervising one framework's suite process: progress, per-case timeout, crash records.

Each framework runs ``pytest`` in a process of its own.  The child announces the check it
is running in ``<records>.inflight.json`` (``datamodel.inflight``, written by
``conformance.plugin.inflight``).  The
supervisor here forwards progress, kills the child when one check runs longer than the
per-case timeout, and when the child dies (a signal such as SIGSEGV or SIGABRT, the OOM
killer's SIGKILL, or a timeout) writes an ``error`` record for the check it was running.
Records written before stay: they were flushed line by line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from datamodel.casefile import CaseFileError, parse_case
from datamodel.inflight import Inflight, inflight_path, read_inflight
from datamodel.records import RecordWriter, error_record

_PROGRESS = re.compile(r"\[\s*(\d+/\d+|\d+%)\]\s*$")
PYTEST_OUTCOMES = {0: "passed", 1: "findings", 2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests ran"}


@dataclass
class Outcome:
    exit_code: int
    outcome: str
    seconds: float
    timed_out: bool = False
    crash_message: str | None = None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory, or a timeout)" if -code == signal.SIGKILL else ""
        return f"crashed with {name}{hint}"
    return PYTEST_OUTCOMES.get(code, f"exited with code {code}")


def _reader(stream, log, label: str, echo) -> None:
    last = ""
    for line in stream:
        log.write(line)
        log.flush()
        match = _PROGRESS.search(line)
        if match and match.group(0).strip() != last:
            last = match.group(0).strip()
            echo(f"[{label}] {last}")


def supervise(
    command: list[str], *, label: str, results: Path, log_path: Path, case_timeout: float, env: dict | None = None,
    echo=print,
) -> Outcome:  # fmt: skip
    """Run ``command`` (a suite process writing ``results``), enforcing the per-case timeout."""
    inflight = inflight_path(results)
    inflight.unlink(missing_ok=True)
    started = time.monotonic()
    timed_out = False
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=env, start_new_session=True)  # fmt: skip
        thread = threading.Thread(target=_reader, args=(process.stdout, log, label, echo), daemon=True)
        thread.start()
        while process.poll() is None:
            state = read_inflight(inflight)
            if state is not None and state.started and time.time() - state.started > case_timeout:
                timed_out = True
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(0.2)
        thread.join(timeout=10)
    code = process.returncode
    seconds = time.monotonic() - started
    outcome = f"hung: one check ran past {case_timeout:g}s and was killed" if timed_out else describe_exit(code)
    crashed = timed_out or code < 0 or code not in PYTEST_OUTCOMES
    result = Outcome(code, outcome, round(seconds, 1), timed_out, outcome if crashed else None)
    if crashed:
        record_crash(results, inflight, label, outcome, cause="hang" if timed_out else "crash")
    inflight.unlink(missing_ok=True)
    return result


def record_crash(results: Path, inflight: Path, label: str, outcome: str, cause: str = "crash") -> None:
    """An ``error`` record for the check the dead process was running (or for the process)."""
    state = read_inflight(inflight) or Inflight(pid=0)  # no marker: nothing is known of the running check
    case = None
    if state.case:
        try:
            case = parse_case(state.case)
        except CaseFileError:
            case = None
    running = state.test or "no check in flight (between checks, or before the first)"
    message = f"the {label} process {outcome} while running {running}"
    record = error_record(run_id=state.run_id, prop=state.property or "process", framework=state.framework or label,
                          message=message, cause=cause, case=case, test=state.test)  # fmt: skip
    if results.exists() and results.stat().st_size:
        with results.open("rb+") as existing:  # a torn last line must not swallow this record
            existing.seek(-1, 2)
            if existing.read(1) != b"\n":
                existing.write(b"\n")
    with RecordWriter(results) as writer:
        writer.write(record)
