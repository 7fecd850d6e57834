"""The conformance session: runs checks, writes their records, decides what fails.

One ``ConformanceSession`` lives for a pytest run (registered as a plugin by
``conformance.plugin``).  Property tests call ``session.check(...)``; the session runs the
case on the adapter, writes one record per quantity (immediately, to the JSON-lines file
when one was given), saves the case file of every finding so it replays with one command,
and raises ``ConformanceFailure`` for what is not expected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.base import Adapter

from .case import Case
from .casefile import case_to_json, dump_case
from .check import CheckResult, check_case
from .compare import DISCREPANCY, ERROR
from .records import RecordWriter, make_record, replay_command


class ConformanceFailure(AssertionError):
    """A framework disagreed with the reference in a way no ledger entry explains."""


class Unsupported(Exception):
    """The adapter cannot run this case (the reason is the message)."""


def case_id(case: Case) -> str:
    """A short stable id of a case, from its case-file content."""
    return hashlib.sha256(json.dumps(case_to_json(case), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class ConformanceSession:
    results_path: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._writer = RecordWriter(self.results_path) if self.results_path else None
        self.cases_dir = (self.results_path.parent / "cases") if self.results_path else None

    def close(self) -> None:
        if self._writer:
            self._writer.close()

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._writer:
            self._writer.write(record)

    def save_case(self, case: Case, framework: str) -> tuple[str | None, str | None]:
        """Write a finding's case file; return its path and the command that replays it."""
        if self.cases_dir is None:
            return None, None
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        case = case.with_(frameworks=(framework,))
        path = self.cases_dir / f"{framework.replace(':', '-')}-{case_id(case)}.json"
        dump_case(case, path)
        return str(path), replay_command(path, framework, case.device)

    def check(self, adapter: Adapter, case: Case, prop: str, extra: dict[str, Any] | None = None) -> CheckResult:
        """Run one case on one adapter, record every quantity, fail on what is unexpected."""
        result = check_case(adapter, case)
        version = adapter.version()
        findings = [c for c in result.comparisons if c.verdict in (DISCREPANCY, ERROR)]
        case_file, command = self.save_case(case, adapter.label) if findings else (None, None)
        for comparison in result.comparisons:
            details = dict(extra or {})
            if comparison in findings:
                details.update(case_file=case_file, replay=command)
            self.write(make_record(prop=prop, framework=adapter.label, framework_version=version,
                                   case=case, comparison=comparison, extra=details))  # fmt: skip
        if result.unsupported_reason is not None:
            raise Unsupported(result.unsupported_reason)
        if findings:
            lines = [f"{adapter.label} {version} disagrees with the reference ({prop}):"]
            lines += [f"  [{c.verdict}] {c.message}" for c in findings]
            if command:
                lines.append(f"replay: {command}")
            lines.append("case: " + json.dumps(case_to_json(case))[:2000])
            raise ConformanceFailure("\n".join(lines))
        return result


