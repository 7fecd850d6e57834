"""The conformance session: runs checks, writes their records, decides what fails.

One ``ConformanceSession`` lives for a pytest run (created by ``conformance.plugin.hooks``).
Property tests call ``session.check(...)`` (or ``session.record(...)`` for checks that are
not a case run, such as parameter inventories).  The session writes one record per
quantity at once (to the JSON-lines file when one was given), saves the case file of every
finding so it replays with one command, marks findings the ledger explains as known, and
raises ``ConformanceFailure`` for the rest.  When a hypothesis test fails, the last finding
it recorded is its minimal counterexample (hypothesis replays the shrunk example last);
``record_counterexample`` writes it once more, marked minimal, with the reproduction blob.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import Adapter
from conformance.judging.check import CheckResult, check_case
from conformance.judging.compare import DISCREPANCY, ERROR, Comparison
from conformance.judging.ledger import Ledger, default_ledger
from datamodel.case import Case, CaseData
from datamodel.casefile import case_to_json, dump_case
from datamodel.quantities import PHASES
from datamodel.records import (
    RecordWriter,
    environment_record,
    error_record,
    framework_record,
    make_record,
    new_run_id,
    replay_command,
)

FINDING_VERDICTS = (DISCREPANCY, ERROR)


class ConformanceFailure(AssertionError):
    """A framework disagreed with the reference in a way no ledger entry explains."""


class Unsupported(Exception):
    """The adapter cannot run this case (the reason is the message)."""


def case_id(case: Case) -> str:
    """A short stable id of a case, from its case-file content."""
    return hashlib.sha256(json.dumps(case_to_json(case), sort_keys=True).encode()).hexdigest()[:12]


def conditioning(case: Case, data: CaseData) -> dict[str, Any]:
    """How hard the case's first batch is, in the terms of the tolerance model.

    ``offset_ratio``: the largest per-channel |mean|/std (∞ for a constant channel away from 0);
    ``constant_channels``: channels with no spread; ``one_value_per_channel``: N = 1;
    ``min_var_over_eps``: the smallest
    per-channel variance relative to ε (``None`` when ε is the framework's default).
    """
    x = data.batches[0]
    axes = case.layout.reduced_axes
    with np.errstate(all="ignore"):
        mean = np.mean(x, axis=axes)
        std = np.std(x, axis=axes)
        # A constant channel away from zero is the limit of a large mean against a small
        # spread: its ratio is infinite (and 0 for a constant zero channel).
        offset = np.where(std > 0, np.abs(mean) / std, np.where(mean != 0, np.inf, 0.0))
    known = offset[~np.isnan(offset)]
    variances = (std**2)[np.isfinite(std)]
    return {
        "offset_ratio": float(known.max()) if known.size else 0.0,
        "constant_channels": int(np.count_nonzero(std == 0)),
        "one_value_per_channel": case.layout.count(case.shape) == 1,
        "min_var_over_eps": float(variances.min() / case.eps) if case.eps and variances.size else None,
        "class": case.extra.get("conditioning"),
    }


#: Quantities indexed (step, channel) or (channel,) rather than like the input.
_PER_CHANNEL_INDEX = {"running_mean": 1, "running_var": 1, "dgamma": 0, "dbeta": 0}


def worst_channel_offset(case: Case, data: CaseData, comparison: Comparison) -> float | None:
    """|mean|/std of the channel that holds a comparison's worst element (∞ for a constant one)."""
    if comparison.worst_index is None:
        return None
    quantity = comparison.quantity.split("@")[0]
    position = _PER_CHANNEL_INDEX.get(quantity)
    if position is None:
        position = case.layout.axis + (1 if quantity == "y_train" else 0)
    if position >= len(comparison.worst_index):
        return None
    channel = comparison.worst_index[position]
    x = np.moveaxis(data.batches[0], case.layout.axis, 0)[channel]
    with np.errstate(all="ignore"):
        mean, std = float(np.mean(x)), float(np.std(x))
    if std > 0:
        return abs(mean) / std
    return float("inf") if mean != 0 else 0.0


@dataclass
class CheckOutcome:
    """What ``ConformanceSession.check`` found; ``worst_unexplained_ratio`` steers hypothesis."""

    result: CheckResult
    records: list[dict[str, Any]]
    unexpected: list[dict[str, Any]]
    worst_unexplained_ratio: float


@dataclass(eq=False)
class ConformanceSession:
    results_path: Path | None = None
    ledger: Ledger = field(default_factory=default_ledger)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    current_test: str | None = None
    last_finding: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    run_details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._writer = RecordWriter(self.results_path) if self.results_path else None
        self.cases_dir = self._cases_dir(self.results_path)
        self.run_id = new_run_id()
        self.inflight_path = self.results_path.with_suffix(".inflight.json") if self.results_path else None
        self._frameworks_seen: set[str] = set()
        self._snippets_written: set[tuple] = set()
        self._adapters: dict[str, Adapter] = {}
        self.write(environment_record(self.run_id, **self.run_details))

    @staticmethod
    def _cases_dir(results: Path | None) -> Path | None:
        """OUT/cases for OUT/records/NAME.jsonl (as ``bnconf run`` writes), else beside the file."""
        if results is None:
            return None
        parent = results.parent
        return (parent.parent if parent.name == "records" else parent) / "cases"

    def __repr__(self) -> str:
        # Short on purpose: hypothesis prints test arguments, and records grow large.
        return f"<ConformanceSession: {len(self.records)} records, results to {self.results_path or 'memory'}>"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))

    def close(self) -> None:
        if self._writer:
            self._writer.close()

    def write(self, record: dict[str, Any]) -> None:
        record.setdefault("run_id", self.run_id)
        if self.current_test and record.get("record_type") == "result":
            record.setdefault("test", self.current_test)
        self.records.append(record)
        if self._writer:
            self._writer.write(record)

    def save_case(self, case: Case, framework: str) -> tuple[str | None, str]:
        """Write a finding's case file (when results go to disk); return its path and replay command."""
        case = case.with_(frameworks=(framework,))
        name = f"{framework.replace(':', '-')}-{case_id(case)}.json"
        if self.cases_dir is None:
            return None, replay_command(name, framework, case.device)
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        path = self.cases_dir / name
        dump_case(case, path)
        return str(path), replay_command(path, framework, case.device)

    def record(
        self, adapter: Adapter, case: Case, prop: str, comparisons: list[Comparison], extra: dict[str, Any] | None = None,
        data: CaseData | None = None,
    ) -> CheckOutcome:  # fmt: skip
        """Record comparisons made by a property; fail on findings the ledger does not explain."""
        data = case.materialize() if data is None else data
        if self.current_test:  # a finding belongs to the example that made it, not an earlier one
            self.last_finding.pop(self.current_test, None)
        version = adapter.version()
        if adapter.label not in self._frameworks_seen:
            self._frameworks_seen.add(adapter.label)
            self.write(framework_record(self.run_id, adapter.label, version, adapter.device_info()))
        hard = conditioning(case, data)
        findings = [c for c in comparisons if c.verdict in FINDING_VERDICTS]
        case_file, command = self.save_case(case, adapter.label) if findings else (None, None)
        records, unexpected, worst = [], [], 0.0
        for comparison in comparisons:
            at_worst = worst_channel_offset(case, data, comparison)
            details = {"conditioning": {**hard, "worst_channel_offset_ratio": at_worst}, **(extra or {})}
            record = make_record(prop=prop, framework=adapter.label, framework_version=version, case=case,
                                 comparison=comparison, extra=details)  # fmt: skip
            if comparison.verdict in FINDING_VERDICTS:
                record.update(case_file=case_file, replay=command)
                entry = self.ledger.explain(record)
                record["known"] = entry.id if entry else None
                if entry is None:
                    unexpected.append(record)
                kind = (adapter.label, prop, comparison.quantity, record["known"])
                if kind not in self._snippets_written:  # one reproduction snippet per kind of finding
                    self._snippets_written.add(kind)
                    record["snippet"] = adapter.snippet(case)
                if self.current_test and entry is None:  # the shrunk example's unexpected finding
                    self.last_finding[self.current_test] = record
                    self._adapters[self.current_test] = adapter
            if record.get("known") is None and comparison.ratio is not None and np.isfinite(comparison.ratio):
                worst = max(worst, comparison.ratio)
            self.write(record)
            records.append(record)
        outcome = CheckOutcome(CheckResult(comparisons), records, unexpected, worst)
        if unexpected:
            lines = [f"{adapter.label} {version} disagrees with the reference ({prop}), not explained by the ledger:"]
            lines += [f"  [{r['verdict']}] {r['message']}" for r in unexpected]
            lines.append(f"replay: {command}")
            lines.append("case: " + json.dumps(case_to_json(case))[:2000])
            raise ConformanceFailure("\n".join(lines))
        return outcome

    def check(
        self, adapter: Adapter, case: Case, prop: str, phases: tuple[str, ...] = PHASES, extra: dict[str, Any] | None = None
    ) -> CheckOutcome:
        """Run one case on one adapter, record every quantity of ``phases``, fail on what is unexpected."""
        reason = adapter.unsupported_reason(case)
        if reason is not None:
            raise Unsupported(reason)
        data = case.materialize()
        self.mark_inflight(adapter.label, prop, case)
        try:
            result = check_case(adapter, case, data, phases)
        finally:
            self.mark_inflight(None, prop, None)
        return self.record(adapter, case, prop, result.comparisons, extra, data)

    def observe(self, adapter: Adapter, case: Case, prop: str, data: CaseData | None = None, phases: tuple[str, ...] = PHASES):
        """``adapter.run`` for properties that compare outcomes themselves, announced like a check."""
        self.mark_inflight(adapter.label, prop, case)
        try:
            return adapter.run(case, data, phases)
        finally:
            self.mark_inflight(None, prop, None)

    def mark_inflight(self, framework: str | None, prop: str, case: Case | None) -> None:
        """Tell a supervising process which check is running (``None``: between checks).

        If the process crashes or hangs, the supervisor (``conformance.orchestration.supervise``) records an
        error for this check from this file; everything recorded before stays.
        """
        if self.inflight_path is None:
            return
        state = {"test": self.current_test, "framework": framework, "property": prop, "pid": os.getpid(),
                 "started": time.time() if case is not None or framework is not None else None,
                 "case": case_to_json(case) if case is not None else None}  # fmt: skip
        temporary = self.inflight_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, default=str))
        temporary.replace(self.inflight_path)

    def record_counterexample(self, test: str, blob: str | None) -> dict[str, Any] | None:
        """Re-write the failing test's last unexpected finding, marked as its minimal counterexample."""
        finding = self.last_finding.pop(test, None)
        if finding is None:
            return None
        record = copy.deepcopy(finding)
        record.update(minimal=True, hypothesis_blob=blob)
        adapter = self._adapters.get(test)
        if adapter is not None and "snippet" not in record:
            from datamodel.casefile import parse_case

            try:
                record["snippet"] = adapter.snippet(parse_case(record["case"]))
            except Exception as error:  # a report hook must never take the test run down
                record["snippet_error"] = f"{type(error).__name__}: {error}"
        self.write(record)
        return record

    def record_harness_failure(self, test: str, framework: str | None, message: str) -> dict[str, Any]:
        """An ``error`` record for a suite test that failed without recording a finding
        (the harness itself raised): nothing may fail silently."""
        record = error_record(prop="harness", framework=framework or "unknown", message=message,
                              extra={"harness_failure": True, "test": test})  # fmt: skip
        self.write(record)
        return record
