"""The conformance session: runs checks, writes their records, decides what fails.

One ``ConformanceSession`` lives for a pytest run (created by ``conformance.plugin.hooks``).
Property tests call ``session.check(...)``, or ``record(...)`` for comparisons they made
themselves, and ``record_counts``, ``record_probe`` and ``record_ledger`` for checks that
are not toleranced numbers.  Each call writes one typed record per thing checked
(``datamodel.records``) and then, for the findings among them: saves the case file so it
replays with one command (``casefiles``), marks those the ledger explains as known
(``findings``), remembers the last unexpected one as the test's candidate minimal
counterexample (``counterexamples``), and raises ``ConformanceFailure`` for the unexpected
ones.  The session itself only composes these parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import Adapter
from conformance.judging.check import check_case
from conformance.judging.compare import Comparison
from conformance.judging.conditioning import at_worst, conditioning
from conformance.judging.ledger import Entry, Ledger, default_ledger
from datamodel.case import Case, CaseData
from datamodel.casefile import case_to_json
from datamodel.jsoncodec import dumps
from datamodel.quantities import PHASES
from datamodel.records import (
    CheckRecord,
    ErrorRecord,
    Inventory,
    ResultRecord,
    count_record,
    error_record,
    ledger_record,
    probe_record,
    result_record,
    run_end_record,
)

from .casefiles import CaseStore, cases_dir
from .counterexamples import Counterexamples
from .findings import Triage
from .inflight import InflightMarker
from .recorder import Recorder

__all__ = ["CheckOutcome", "ConformanceFailure", "ConformanceSession", "Count", "Unsupported"]


class ConformanceFailure(AssertionError):
    """A framework disagreed with the reference in a way no ledger entry explains."""


class Unsupported(Exception):
    """The adapter cannot run this case (the reason is the message)."""


@dataclass
class CheckOutcome:
    """What one call recorded; ``worst_unexplained_ratio`` steers hypothesis."""

    records: list[CheckRecord]
    unexpected: list[CheckRecord]
    worst_unexplained_ratio: float


@dataclass(frozen=True)
class Count:
    """One inventory count to record: what the framework reports against the canonical figure."""

    quantity: str
    observed: int
    canonical: int
    message: str | None = None  # None: the standard "reports X, the canonical count is Y"


@dataclass(eq=False)
class ConformanceSession:
    results_path: Path | None = None
    ledger: Ledger = field(default_factory=default_ledger)
    current_test: str | None = None
    run_details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.results_path, self.run_details)
        self.cases = CaseStore(cases_dir(self.results_path))
        self.triage = Triage(self.ledger)
        self.counterexamples = Counterexamples()
        self.inflight = InflightMarker(self.results_path, self.run_id)

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    @property
    def records(self) -> list:
        """Every record written in this session, in order."""
        return self.recorder.records

    def __repr__(self) -> str:
        # Short on purpose: hypothesis prints test arguments, and records grow large.
        return f"<ConformanceSession: {len(self.records)} records, results to {self.results_path or 'memory'}>"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))

    def finish(self, exit_status: int, outcome: str, interrupted: bool) -> None:
        """Write the run's completion marker (``run_end``): records without one are a partial run."""
        checks = sum(record.kind not in ("environment", "framework") for record in self.records)
        self.recorder.write(run_end_record(self.run_id, exit_status=exit_status, outcome=outcome,
                                           interrupted=interrupted, checks=checks))  # fmt: skip

    def close(self) -> None:
        self.recorder.close()

    # -- running checks ------------------------------------------------------------------------

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
        """Tell a supervising process which check is running (``None``: between checks)."""
        self.inflight.mark(self.current_test, framework, prop, case)

    # -- recording checks ----------------------------------------------------------------------

    def record(
        self, adapter: Adapter, case: Case, prop: str, comparisons: list[Comparison], extra: dict[str, Any] | None = None,
        data: CaseData | None = None,
    ) -> CheckOutcome:  # fmt: skip
        """Record toleranced comparisons made by a property (``result`` records); fail on unexplained findings.

        ``extra`` labels the comparison (``twin``, ``twin_of``, ``compared_with``: fields of
        ``ResultRecord``); any other key is refused by the record's validation.
        """
        data = case.materialize() if data is None else data
        version = self.recorder.framework_version(adapter)
        hard = conditioning(case, data)
        records = [
            result_record(run_id=self.run_id, prop=prop, framework=adapter.label, framework_version=version, case=case,
                          comparison=c, conditioning=at_worst(hard, case, data, c.quantity, c.worst_index),
                          test=self.current_test, **(extra or {}))
            for c in comparisons
        ]  # fmt: skip
        return self._conclude(adapter, case, prop, version, records)

    def record_counts(self, adapter: Adapter, case: Case, counts: Sequence[Count], inventory: Inventory) -> CheckOutcome:
        """Record parameter-inventory counts (``count`` records, property ``inventory``)."""
        version = self.recorder.framework_version(adapter)
        records = [
            count_record(run_id=self.run_id, framework=adapter.label, framework_version=version, case=case,
                         quantity=c.quantity, observed=c.observed, canonical=c.canonical, message=c.message,
                         inventory=inventory, test=self.current_test)
            for c in counts
        ]  # fmt: skip
        return self._conclude(adapter, case, "inventory", version, records)

    def record_probe(
        self, adapter: Adapter, case: Case, *, convention: str, declared: str | float, probed: str | float, agrees: bool,
        evidence: Mapping[str, float], declared_conventions: Mapping[str, str], message: str | None = None,
    ) -> CheckOutcome:  # fmt: skip
        """Record one convention probe (a ``probe`` record, property ``conventions``); ``message``
        explains a disagreement (default: "declared X, but the framework behaves as Y")."""
        version = self.recorder.framework_version(adapter)
        record = probe_record(run_id=self.run_id, framework=adapter.label, framework_version=version, case=case,
                              convention=convention, declared=declared, probed=probed, agrees=agrees, evidence=evidence,
                              declared_conventions=declared_conventions, message=message,
                              test=self.current_test)  # fmt: skip
        return self._conclude(adapter, case, "conventions", version, [record])

    def record_ledger(
        self, adapter: Adapter, case: Case, *, entry_id: str, reproduced: bool | None,
        explained_quantities: list[str], message: str = "", entry: Entry | None = None,
    ) -> CheckOutcome:  # fmt: skip
        """Record whether a ledger entry's evidence still reproduces (a ``ledger`` record);
        ``reproduced`` ``None``: not replayed here (the entry needs a device this session lacks)."""
        version = self.recorder.framework_version(adapter)
        classification = {"known_kind": entry.kind, "known_severity": entry.severity} if entry is not None else {}
        record = ledger_record(run_id=self.run_id, framework=adapter.label, framework_version=version, case=case,
                               entry_id=entry_id, reproduced=reproduced, explained_quantities=explained_quantities,
                               message=message, test=self.current_test, **classification)  # fmt: skip
        return self._conclude(adapter, case, "ledger", version, [record])

    def _conclude(self, adapter: Adapter, case: Case, prop: str, version: str, records: list[CheckRecord]) -> CheckOutcome:
        """Write ``records``; save, classify and remember their findings; fail on the unexpected ones."""
        self.counterexamples.forget(self.current_test)
        saved = self.cases.save(case, adapter.label) if any(r.is_finding for r in records) else None
        written, unexpected, worst = [], [], 0.0
        for record in records:
            if record.is_finding:
                assert saved is not None
                record = self.triage.classify(record, adapter, case, *saved)
                if record.known is None:
                    unexpected.append(record)
                    self.counterexamples.remember(self.current_test, record, adapter)
            numeric = isinstance(record, ResultRecord) and record.ratio is not None and np.isfinite(record.ratio)
            if numeric and record.known is None:  # hypothesis steers toward new trouble, not known trouble
                worst = max(worst, record.ratio)
            self.recorder.write(record)
            written.append(record)
        if unexpected:
            lines = [f"{adapter.label} {version} disagrees with the reference ({prop}), not explained by the ledger:"]
            lines += [f"  [{r.verdict}] {r.message}" for r in unexpected]
            lines.append(f"replay: {saved[1] if saved else None}")
            lines.append("case: " + dumps(case_to_json(case))[:2000])
            raise ConformanceFailure("\n".join(lines))
        return CheckOutcome(written, unexpected, worst)

    # -- failures outside a check --------------------------------------------------------------

    def record_counterexample(self, test: str, blob: str | None) -> CheckRecord | None:
        """Re-write the failing test's last unexpected finding, marked as its minimal counterexample."""
        record = self.counterexamples.minimal(test, blob)
        if record is not None:
            self.recorder.write(record)
        return record

    def record_harness_failure(self, test: str, framework: str | None, message: str) -> ErrorRecord:
        """An ``error`` record for a suite test that failed without recording a finding
        (the harness itself raised): nothing may fail silently."""
        record = error_record(run_id=self.run_id, prop="harness", framework=framework or "unknown", message=message,
                              cause="harness", test=test)  # fmt: skip
        self.recorder.write(record)
        return record
