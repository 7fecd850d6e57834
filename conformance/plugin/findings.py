"""Classifying findings: which ledger entry explains each, and one reproduction snippet per kind.

A finding (a discrepancy or an error) that no ledger entry explains is *unexpected* and
fails the test; one the ledger explains is *known* and carries the entry's id.  The first
finding of each kind (framework, property, quantity, ledger entry) gets a standalone
snippet in the framework's own API; later ones of the same kind would repeat it.
"""

from __future__ import annotations

from adapters.base import Adapter
from conformance.judging.ledger import Ledger
from datamodel.case import Case
from datamodel.records import CheckRecord


class Triage:
    """Marks findings as known or unexpected against ``ledger`` and attaches snippets."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._snippets_written: set[tuple] = set()

    def classify(self, record: CheckRecord, adapter: Adapter, case: Case, case_file: str | None, replay: str) -> CheckRecord:
        """``record`` (a finding) with its case file, replay command, ledger id and perhaps a snippet."""
        entry = self.ledger.explain(record)
        known = entry.id if entry else None
        update: dict = {"case_file": case_file, "replay": replay, "known": known,
                        "known_kind": entry.kind if entry else None, "known_severity": entry.severity if entry else None}
        kind = (adapter.label, record.property, record.quantity, known)
        if kind not in self._snippets_written:
            self._snippets_written.add(kind)
            update["snippet"] = adapter.snippet(case)
        return record.model_copy(update=update)
