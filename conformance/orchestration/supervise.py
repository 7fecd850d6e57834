"""Supervising one framework's suite process: progress, per-case timeout, crash records.

Each framework runs ``pytest`` in a process of its own.  The child announces the check it
is running in ``<records>.inflight.json`` (``datamodel.inflight``, written by
``conformance.plugin.inflight``).  The
supervisor here forwards progress, kills the child when one check runs longer than the
per-case timeout, and when the child dies (a signal such as SIGSEGV or SIGABRT, the OOM
killer's SIGKILL, or a timeout) writes an ``error`` record for the check it was running.
Records written before stay: they were flushed line by line.

The child runs in a session of its own (``start_new_session``), so a terminal's Ctrl-C
reaches only the supervisor.  On ``KeyboardInterrupt`` the supervisor stops the child's
whole process group (SIGINT first, so pytest ends its run and writes its ``run_end``
record marked interrupted; SIGKILL for whatever is left after a grace period) and raises
``Interrupted`` (a ``KeyboardInterrupt``): the caller renders what was written and exits 130.
A supervisor in a worker thread (``bnconf matrix --jobs N``) never sees the signal, which
Python delivers to the main thread only: it watches ``stop_requested``, an event the main
thread sets on Ctrl-C, and stops its child the same way.
"""

from __future__ import annotations

import contextlib
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
#: Seconds an interrupted child gets to finish its run (and write ``run_end``) before SIGKILL.
INTERRUPT_GRACE = 5.0


@dataclass
class Outcome:
    exit_code: int
    outcome: str
    seconds: float
    timed_out: bool = False
    crash_message: str | None = None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a supervised run; its process is gone and ``outcome`` says how it ended."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.outcome)
        self.outcome = outcome


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
    echo=print, stop_requested: threading.Event | None = None,
) -> Outcome:  # fmt: skip
    """Run ``command`` (a suite process writing ``results``), enforcing the per-case timeout.

    Ctrl-C in this thread, or ``stop_requested`` set by another, stops the child and raises
    ``Interrupted``.
    """
    inflight = inflight_path(results)
    inflight.unlink(missing_ok=True)
    started = time.monotonic()
    timed_out = False
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=env, start_new_session=True)  # fmt: skip
        thread = threading.Thread(target=_reader, args=(process.stdout, log, label, echo), daemon=True)
        thread.start()
        try:
            while process.poll() is None:
                if stop_requested is not None and stop_requested.is_set():
                    raise KeyboardInterrupt  # handled below, as a Ctrl-C in this thread would be
                state = read_inflight(inflight)
                if state is not None and state.started and time.time() - state.started > case_timeout:
                    timed_out = True
                    kill_group(process)
                    break
                time.sleep(0.2)
        except KeyboardInterrupt as interrupt:
            stop(process)
            thread.join(timeout=10)
            inflight.unlink(missing_ok=True)
            seconds = round(time.monotonic() - started, 1)
            echo(f"[{label}] interrupted: its process was stopped; the records it wrote are kept")
            raise Interrupted(Outcome(process.returncode, "interrupted", seconds)) from interrupt
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


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it leads a session of its own), then reap it."""
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _exited(process: subprocess.Popen) -> bool:
    """Whether the child has exited, without reaping it: until it is reaped its id keeps naming
    its process group, so signalling the group cannot reach a stranger that reused the id."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop(process: subprocess.Popen, grace: float = INTERRUPT_GRACE) -> None:
    """Stop an interrupted child: SIGINT to its group, then SIGKILL whatever is left after ``grace``.

    SIGINT lets pytest end its run and write its ``run_end`` record (marked interrupted).  A
    test can swallow it (hypothesis may turn it into a failed example and go on), so a child
    still running at half the grace period gets a second one, like a second Ctrl-C.  The
    SIGKILL runs even when another Ctrl-C cuts the grace period short: no child outlives the
    supervisor.
    """
    if process.returncode is not None:  # already reaped: nothing of it left to stop
        return
    try:
        for wait in (grace / 2, grace / 2):
            os.killpg(process.pid, signal.SIGINT)
            deadline = time.monotonic() + wait
            while not _exited(process) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _exited(process):
                break
    except ProcessLookupError:
        pass
    finally:
        # The group, not just the leader: whatever pytest started dies with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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
    drop_torn_line(results)
    with RecordWriter(results) as writer:
        writer.write(record)


def drop_torn_line(results: Path) -> None:
    """Cut a torn last line (the process died writing it) so that the record appended next
    starts a line of its own: only the last line of a records file may be torn, so one left
    in the middle would make the whole file unreadable.  A torn line holds no readable record."""
    if not results.exists() or not results.stat().st_size:
        return
    with results.open("rb+") as existing:
        content = existing.read()
        if not content.endswith(b"\n"):
            existing.truncate(content.rfind(b"\n") + 1)
