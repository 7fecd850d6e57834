"""Minimal counterexamples: a failing hypothesis test's last unexpected finding, written once more.

Hypothesis replays the shrunk example last, so the last unexpected finding a test recorded
is its minimal counterexample.  When the test fails, that finding is re-written marked
``minimal`` with hypothesis' reproduction blob (and a snippet, when it had none).
"""

from __future__ import annotations

from adapters.base import Adapter
from datamodel.casefile import parse_case
from datamodel.records import CheckRecord


class Counterexamples:
    """The last unexpected finding of each running test, and the adapter that made it."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[CheckRecord, Adapter]] = {}

    def forget(self, test: str | None) -> None:
        """A new example starts: a finding belongs to the example that made it, not an earlier one."""
        if test:
            self._last.pop(test, None)

    def remember(self, test: str | None, record: CheckRecord, adapter: Adapter) -> None:
        if test:
            self._last[test] = (record, adapter)

    def minimal(self, test: str, blob: str | None) -> CheckRecord | None:
        """The test's last unexpected finding marked as its minimal counterexample (``None``: none)."""
        found = self._last.pop(test, None)
        if found is None:
            return None
        finding, adapter = found
        update: dict = {"minimal": True, "hypothesis_blob": blob}
        if finding.snippet is None and finding.case is not None:
            try:
                update["snippet"] = adapter.snippet(parse_case(finding.case))
            except Exception as error:  # a report hook must never take the test run down
                update["snippet_error"] = f"{type(error).__name__}: {error}"
        return finding.model_copy(update=update, deep=True)
