"""The in-flight marker: which check a suite process is running right now.

The suite process (``conformance.plugin.inflight.InflightMarker``) rewrites
``<records>.inflight.json`` before and after every check; the supervising process
(``conformance.orchestration.supervise``) reads it to enforce the per-case timeout and,
when the child dies, to write an ``error`` record for the check that was running.  Both
sides use this one model, so the file cannot drift between writer and reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .jsoncodec import dumps


class Inflight(BaseModel):
    """One snapshot of the marker; ``started`` is ``None`` between checks."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = None  # the run whose records file this marker sits beside
    test: str | None = None
    framework: str | None = None
    property: str | None = None
    pid: int
    started: float | None = None  # time.time() when the check began
    case: dict[str, Any] | None = None  # the case-file document of the running case


def inflight_path(results: Path) -> Path:
    """Where the marker of a records file lives: beside it, ``NAME.inflight.json``."""
    return results.with_suffix(".inflight.json")


def write_inflight(path: Path, state: Inflight) -> None:
    """Replace the marker atomically (a reader never sees half a file)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(dumps(state.model_dump()), encoding="utf-8")
    os.replace(temporary, path)


def read_inflight(path: Path) -> Inflight | None:
    """The marker's last state, or ``None`` when there is none (not started, or already removed)."""
    try:
        return Inflight.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
