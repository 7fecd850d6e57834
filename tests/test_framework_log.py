"""The frameworks' native log lines stay out of the CLI's output and in its log file.

Fakes write glog-style lines straight to file descriptor 2 (``tests/native_log_fakes.py``), in
this process and in a child process of their own: the CLI's stdout and stderr hold none of
them, one line names the log file that holds them all, and a child that dies still gives a
one-line error naming its signal.  The real engines' chatter: ``test_cli.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from native_log_fakes import NATIVE_LINES

from adapters import registry
from conformance.orchestration import frameworklog
from conformance.orchestration.cli import main

TESTS = Path(__file__).parent
CASE = TESTS.parent / "examples" / "ordinary.json"
ADAPTERS = ",".join(f"{name}=native_log_fakes:{cls}" for name, cls in (
    ("chattering-fake", "ChatteringAdapter"), ("process-bound-chattering-fake", "ProcessBoundChatteringAdapter"),
    ("process-bound-segfault-fake", "ProcessBoundSegfaultAdapter"), ("numpy-fake", "NumpyAdapter"),
))  # fmt: skip


@pytest.fixture
def logs(monkeypatch, tmp_path) -> Path:
    """The directory the CLI's log files go to, with the chattering fakes registered."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the child processes' temporary directory too
    monkeypatch.setenv("BNCONF_ADAPTERS", ADAPTERS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("BNCONF_FAKE_BACKEND", raising=False)
    monkeypatch.delenv(frameworklog.LOG_VARIABLE, raising=False)
    registry.registered.cache_clear()
    yield tmp_path / "bnconf-logs"
    registry.registered.cache_clear()


def _replay(capfd, *frameworks: str) -> tuple[int, str, str]:
    try:
        code = main(["replay", str(CASE), "--frameworks", ",".join(frameworks), "--json"])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capfd.readouterr()
    return code, out, err


def _log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log")) if directory.exists() else []


def test_native_lines_of_an_engine_in_this_process_go_to_the_log_not_the_terminal(capfd, logs):
    code, out, err = _replay(capfd, "chattering-fake")
    assert code == 0
    assert "I0000" not in out + err
    assert "absl::InitializeLog" not in out + err
    [log] = _log_files(logs)
    lines = log.read_text().splitlines()
    assert set(lines) == set(NATIVE_LINES.splitlines())  # as often as the fake logged, nothing else
    assert err.strip() == f"bnconf: the frameworks' own log output ({len(lines)} lines) is in {log}"
    assert json.loads(out)["summary"].startswith("8 checked")


def test_a_child_process_appends_its_native_lines_to_the_same_log(capfd, logs):
    code, out, err = _replay(capfd, "process-bound-chattering-fake", "numpy-fake")
    assert code == 0
    assert "I0000" not in out + err
    assert "absl::InitializeLog" not in out + err
    [log] = _log_files(logs)
    text = log.read_text()
    assert "--- child process (BNCONF_FAKE_BACKEND=bound): bnconf replay" in text
    assert "cpu_feature_guard.cc:227]" in text
    assert str(log) in err


def test_a_child_that_dies_is_one_error_line_naming_its_signal_and_the_log(capfd, logs):
    code, out, err = _replay(capfd, "process-bound-segfault-fake", "numpy-fake")
    assert code == 1
    rows = json.loads(out)["results"]
    [failed] = [r for r in rows if r["framework"] == "process-bound-segfault-fake"]
    assert failed["verdict"] == "error"
    assert "failed (killed by SIGSEGV)" in failed["message"]
    assert "\n" not in failed["message"]
    [log] = _log_files(logs)
    assert f"(log: {log})" in failed["message"]
    assert "I0000" not in out + err
    assert all(r["verdict"] == "pass" for r in rows if r["framework"] == "numpy-fake")


def test_a_command_without_native_output_leaves_no_log_and_no_note(capfd, logs):
    code, _, err = _replay(capfd, "numpy-fake")
    assert code == 0
    assert err == ""
    assert _log_files(logs) == []


def test_fd_2_and_the_cli_messages_are_back_after_the_command(capfd, logs):
    _replay(capfd, "chattering-fake")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
    assert frameworklog.active() is None


def test_the_failure_line_of_a_child_skips_native_log_lines():
    stderr = "bnconf: error: the case is too large\n" + NATIVE_LINES
    assert frameworklog.last_message(stderr) == "bnconf: error: the case is too large"
    assert frameworklog.last_message("") == "no output"
    assert frameworklog.exit_description(-11) == "killed by SIGSEGV"
    assert frameworklog.exit_description(2) == "exit 2"
