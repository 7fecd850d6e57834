"""Ctrl-C on ``bnconf run`` stops every framework process and keeps what was written.

The suite processes run in sessions of their own, so a terminal's Ctrl-C reaches only
``bnconf``; its supervisor must stop them itself.  ``bnconf run`` on the hanging fake gets
SIGINT once its first records are on disk: it exits 130, no process with the records path
on its command line survives, and the records read back.  The child gets SIGINT and
usually ends its run with a ``run_end`` record marked interrupted; if a test swallowed the
signal it is killed without one.  Either way the report says the run is partial.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.orchestration.cli import main
from datamodel.records import read_records

HERE = Path(__file__).parent


def _processes_mentioning(text: str) -> list[int]:
    """Ids of live processes whose command line contains ``text`` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended while we looked
            continue
        if text in command:
            found.append(int(entry.name))
    return found


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL every live process whose command line contains ``text`` (a failed test's leftovers)."""
    for pid in _processes_mentioning(text):
        with contextlib.suppress(ProcessLookupError):  # it ended while we looked
            os.kill(pid, signal.SIGKILL)


def as_from_a_terminal(command: list[str]) -> list[str]:
    """``command`` (a Python one) started as a terminal would start it: SIGINT at its default.

    A command a non-interactive shell runs in the background (``make test &``, ``nohup``)
    inherits SIGINT ignored, and an ignored signal stays ignored across exec, so Python
    installs no KeyboardInterrupt handler and the SIGINT these tests send, standing in for
    Ctrl-C, would do nothing.  That is the shell's rule for background jobs, not a fault of
    ``bnconf``; the tests restore the disposition a terminal's foreground job has, in a
    small Python that then execs ``command`` in place (same process id).  Not ``preexec_fn``:
    it runs Python in a forked copy of a process that may hold JAX's threads.
    """
    restore = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", restore, *command]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("interrupted")
    records = out / "records" / "hanging-fake.jsonl"
    env = {**os.environ, "BNCONF_ADAPTERS": "hanging-fake=fakes:HangingAdapter",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--frameworks", "hanging-fake",
               "--profile", "dev", "--out", str(out), "--case-timeout", "300"]  # fmt: skip
    process = subprocess.Popen(as_from_a_terminal(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=HERE.parent)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (records.exists() and b'"kind": "probe"' in records.read_bytes()):
            assert process.poll() is None, "bnconf run ended before it was interrupted"
            assert time.monotonic() < deadline, "no records appeared in 120 s"
            time.sleep(0.2)
        assert _processes_mentioning(str(records)), "the suite process is not running"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # it did not stop: kill it, and its suite process, which it would have stopped
            process.kill()
            process.communicate()
            kill_processes_mentioning(str(records))
    return process.returncode, stdout, stderr, out, records


def test_interrupted_run_exits_130(interrupted):
    code, stdout, stderr, _, _ = interrupted
    assert code == 130, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr


def test_no_framework_process_survives_the_interrupt(interrupted):
    *_, records = interrupted
    assert _processes_mentioning(str(records)) == []


def test_records_written_before_the_interrupt_are_kept(interrupted):
    *_, records = interrupted
    kept = read_records(records)
    assert any(r.kind == "probe" for r in kept)
    assert all(r.interrupted for r in kept if r.kind == "run_end"), "a run_end written after SIGINT says interrupted"


def test_the_report_of_an_interrupted_run_says_it_is_partial(interrupted, capsys):
    *_, out, _ = interrupted
    assert main(["report", str(out / "records"), "-o", str(out / "after")]) in (0, 1)
    assert "PARTIAL RUN: the records of hanging-fake" in capsys.readouterr().out.splitlines()[-1]


def test_bnconf_run_renders_and_says_interrupted(interrupted):
    _, stdout, _, out, _ = interrupted
    assert (out / "summary.json").exists()
    assert "interrupted" in stdout.splitlines()[-1].lower() or "PARTIAL RUN" in stdout


def test_a_child_that_ignores_sigint_is_killed_with_its_own_children():
    """``stop`` SIGKILLs the whole group after the grace period: grandchildren die too."""
    from conformance.orchestration.supervise import stop

    marker = f"bnconf-stop-test-{os.getpid()}-{time.time_ns()}"  # names this test's processes only
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        f"subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(300)', {marker!r}])\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", script, marker], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10  # the grandchild may still be starting (seen on a loaded machine)
        while len(_processes_mentioning(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_processes_mentioning(marker)) == 2, "the child and its own child are running"
        started = time.monotonic()
        stop(child, grace=0.5)
        assert time.monotonic() - started < 10
        deadline = time.monotonic() + 5  # the grandchild is reaped by init, a moment later
        while _processes_mentioning(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_mentioning(marker) == [], "a process of the stopped group survived"
        assert child.returncode == -signal.SIGKILL, f"ended by {child.returncode}, not by SIGKILL"
    finally:  # on a failure: nothing of the group may outlive the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
