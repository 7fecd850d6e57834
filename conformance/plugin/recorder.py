"""Recording: every record of a session kept in memory and appended to the results file.

The first record of a session describes the run (``environment``); a framework's version
and device details (``framework``) are written once, before its first check.  Each record
is on disk, flushed, as soon as it is written, so a process that dies keeps what it found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.base import Adapter
from datamodel.records import RecordWriter, environment_record, framework_record
from datamodel.runinfo import new_run_id


class Recorder:
    """The session's records, in memory and (when ``results_path`` is given) in a JSON-lines file."""

    def __init__(self, results_path: Path | None, run_details: dict[str, Any]):
        self.run_id = new_run_id()
        self.records: list = []
        self._writer = RecordWriter(results_path) if results_path else None
        self._frameworks_seen: set[str] = set()
        self.write(environment_record(self.run_id, **run_details))

    def write(self, record) -> None:
        self.records.append(record)
        if self._writer:
            self._writer.write(record)

    def framework_version(self, adapter: Adapter) -> str:
        """``adapter``'s version, writing its ``framework`` record the first time it is seen."""
        version = adapter.version()
        if adapter.label not in self._frameworks_seen:
            self._frameworks_seen.add(adapter.label)
            self.write(framework_record(self.run_id, adapter.label, version, adapter.device_info()))
        return version

    def close(self) -> None:
        if self._writer:
            self._writer.close()
