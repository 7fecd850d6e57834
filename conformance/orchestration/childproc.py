"""Running one ``bnconf`` command in a child process with an engine's declared environment.

Some engines fix a setting when they are first imported (Keras reads ``KERAS_BACKEND``
once), so a command that compares engines in one process starts a child for each engine
whose declared environment (``Adapter.process_environment``) this process does not have.
The child runs the same command for that engine alone and prints JSON; its failure is
reported in one line, never as a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from adapters.registry import declared_environment

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
    timed out, crashed or printed no JSON.
    """
    command = [sys.executable, "-m", "conformance.orchestration.cli", *arguments]
    assignments = " ".join(f"{key}={value}" for key, value in environment.items())
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, env={**os.environ, **environment})
    except subprocess.TimeoutExpired:
        return None, f"the child process with {assignments} did not finish in {CHILD_TIMEOUT:.0f} s"
    try:
        return json.loads(done.stdout), ""
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"the child process with {assignments} failed (exit {done.returncode}): {last}"
