"""Running one ``bnconf`` command in a child process with an engine's declared environment.

Some engines fix a setting when they are first imported (Keras reads ``KERAS_BACKEND``
once), so a command that compares engines in one process starts a child for each engine
whose declared environment (``Adapter.process_environment``) this process does not have.
The child runs the same command for that engine alone and prints JSON; its failure is
reported in one line, never as a traceback.  The child's framework log output goes to this
command's log file (``frameworklog``), with what else the child printed on stderr; the
failure line is the last line of the latter, naming the log when it holds anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from adapters.registry import declared_environment

from . import frameworklog

#: seconds one child command may take (framework import and compilation included)
CHILD_TIMEOUT = 600.0


def environment_to_start(spec: str) -> dict[str, str] | None:
    """The environment a child for ``spec`` must start with, or ``None`` when this process has it."""
    environment = declared_environment(spec)
    if all(os.environ.get(key) == value for key, value in environment.items()):
        return None
    return environment


def run_json_command(arguments: list[str], environment: dict[str, str]) -> tuple[Any | None, str]:
    """Run ``bnconf ARGUMENTS`` (which must print JSON) in a child with ``environment``.

    Returns ``(document, "")``, or ``(None, why)`` with a one-line reason when the child
    timed out, crashed or printed no JSON.  The child appends its frameworks' log output to
    this command's log (a fresh one outside ``frameworklog.captured``), followed by the rest
    of its stderr.
    """
    command = [sys.executable, "-m", "conformance.orchestration.cli", *arguments]
    assignments = " ".join(f"{key}={value}" for key, value in environment.items())
    log = frameworklog.active() or frameworklog.FrameworkLog(frameworklog.new_log_path("child"))
    with log.section(f"--- child process ({assignments}): bnconf {' '.join(arguments)}"):
        child_environment = {**os.environ, **environment, frameworklog.LOG_VARIABLE: str(log.path)}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, env=child_environment)
        except subprocess.TimeoutExpired as expired:
            log.append(_text(expired.stderr))
            return None, f"the child process with {assignments} did not finish in {CHILD_TIMEOUT:.0f} s (log: {log.path})"
        if done.stderr.strip():
            log.append(done.stderr)
    if frameworklog.active() is None and log.line_count() == 0:
        log.path.unlink(missing_ok=True)
    try:
        return json.loads(done.stdout), ""
    except ValueError:
        exit_ = frameworklog.exit_description(done.returncode)
        where = f" (log: {log.path})" if log.path.exists() else ""
        return None, f"the child process with {assignments} failed ({exit_}): {frameworklog.last_message(done.stderr)}{where}"


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
