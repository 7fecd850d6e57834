"""Result records: one JSON object per check, appended to a JSON-lines file as it finishes.

JSON lines are the source of truth for every report: a run that is killed keeps every
record written before it died.  Each record is self-contained: what was run (the case file,
the framework and its version, the device), what was found (errors, tolerance, ratio,
verdict), and how to reproduce it (a replay command; the hypothesis blob when the suite
found the case).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .case import Case, Generator
from .casefile import case_to_json
from .verdicts import ERROR

RECORD_SCHEMA_VERSION = 1


def replay_command(case_path: str | Path, framework: str, device: str = "cpu") -> str:
    return f"bnconf replay {shlex.quote(str(case_path))} --frameworks {framework} --device {device}"


def make_record(
    *,
    prop: str,
    framework: str,
    framework_version: str,
    case: Case,
    comparison: Any,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A result record for one quantity of one check (``comparison``: a dataclass such as
    ``conformance.judging.compare.Comparison``, or a mapping of its fields)."""
    record = {
        "schema_version": RECORD_SCHEMA_VERSION,
        "record_type": "result",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "property": prop,
        "framework": framework,
        "framework_version": framework_version,
        "device": case.device,
        "dtype": case.dtype,
        "rank": case.rank,
        "channel_axis": case.layout.axis,
        "layout": "channels_first" if case.layout.axis == 1 else (
            "channels_last" if case.layout.axis == case.rank - 1 else "other"
        ),
        **(comparison if isinstance(comparison, dict) else asdict(comparison)),
        "case": case_to_json(case),
    }
    if extra:
        record.update(extra)
    return record


def error_record(
    *, prop: str, framework: str, message: str, case: Case | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An ``error`` record for something that failed outside a comparison (a crashed or hung
    process, a harness exception), so that nothing fails without a record.  Without the case
    that was running, a one-element placeholder stands in."""
    placeholder = Case(shape=(1, 1), channel_axis=1, dtype="float32", x=Generator())
    return make_record(prop=prop, framework=framework, framework_version="unknown", case=case or placeholder,
                       comparison=_error_comparison(message), extra=extra)  # fmt: skip


def _error_comparison(message: str) -> dict[str, Any]:
    return {"quantity": "*", "verdict": ERROR, "max_abs_error": None, "max_rel_error": None, "allowed": None,
            "error_at_worst": None, "ratio": None, "mismatched": 0, "total": 0, "uninformative": 0,
            "worst_index": None, "message": message}  # fmt: skip


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a result record")


def _finite_or_text(value: Any) -> Any:
    """JSON has no NaN/inf; write them as strings so every reader can parse the line."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite_or_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_text(v) for v in value]
    return value


class RecordWriter:
    """Appends records to a JSON-lines file, flushed and fsynced one line at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_finite_or_text(record), default=_json_default, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordFileError(ValueError):
    """A results file that cannot be read; the message names the file and line."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines results file; a torn last line (a killed run) is skipped."""
    path = Path(path)
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise RecordFileError(f"{path}: cannot read results: {error.strerror or error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):  # the run was killed while writing its last line
                break
            raise RecordFileError(f"{path}:{number}: not a JSON record ({error.msg})") from None
        if not isinstance(record, dict) or "schema_version" not in record:
            raise RecordFileError(f"{path}:{number}: not a result record (no schema_version)")
        if record["schema_version"] != RECORD_SCHEMA_VERSION:
            raise RecordFileError(
                f"{path}:{number}: record schema version {record['schema_version']!r} is not supported "
                f"(this bnconf reads version {RECORD_SCHEMA_VERSION})"
            )
        records.append(record)
    return records


def commit() -> str | None:
    """The git commit being run (``BNCONF_COMMIT`` overrides), or ``None`` outside a checkout."""
    if os.environ.get("BNCONF_COMMIT"):
        return os.environ["BNCONF_COMMIT"]
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Where a run happened: machine and Python (framework versions come with each record)."""
    import hypothesis

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "hypothesis": hypothesis.__version__,
    }


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def environment_record(run_id: str, **details: Any) -> dict[str, Any]:
    """A record that describes a run (``record_type`` "environment") rather than a check."""
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "record_type": "environment",
        "run_id": run_id,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        **environment(),
        **details,
    }


def framework_record(run_id: str, framework: str, version: str, devices: dict[str, str]) -> dict[str, Any]:
    """A record of one framework's version and device details in a run."""
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "record_type": "framework",
        "run_id": run_id,
        "framework": framework,
        "framework_version": version,
        "device_info": devices,
    }
