"""``bnconf replay``: run one case file on each requested adapter and compare with the reference.

Each framework is checked on its own; a framework that is unavailable, or an adapter that
fails outright, becomes a row of its own and never hides the other frameworks' rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adapters.registry import FrameworkUnavailableError, get_adapter, registered
from conformance.judging.check import check_case
from conformance.judging.compare import ERROR, PASS, UNSUPPORTED, Comparison
from datamodel.case import Case

from .exitcodes import EXIT_FOUND, EXIT_NOTHING_CHECKED, EXIT_OK
from .texttable import text_table


@dataclass(frozen=True)
class ReplayRow:
    framework: str
    version: str
    comparison: Comparison

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "version": self.version, **asdict(self.comparison)}


def default_frameworks(case: Case) -> list[str]:
    """The frameworks a case names (where it was found), else every registered one."""
    return list(case.frameworks) or list(registered())


def replay(case: Case, frameworks: list[str]) -> list[ReplayRow]:
    """Check ``case`` on each framework spec; unknown names must be rejected before this."""
    rows = []
    for spec in frameworks:
        try:
            adapter = get_adapter(spec)
        except FrameworkUnavailableError as error:
            rows.append(ReplayRow(spec, "", Comparison("*", UNSUPPORTED, message=str(error))))
            continue
        version = ""
        try:
            version = adapter.version()
            result = check_case(adapter, case)
        except Exception as error:  # an adapter bug must not hide the other frameworks
            message = f"the check itself failed: {type(error).__name__}: {error}"
            rows.append(ReplayRow(spec, version, Comparison("*", ERROR, message=message)))
            continue
        rows.extend(ReplayRow(spec, version, comparison) for comparison in result.comparisons)
    return rows


def exit_code(rows: list[ReplayRow]) -> int:
    """1 when any row is a discrepancy or error; else 3 when no row was checked (every one
    unsupported or unavailable: nothing checked is not a pass); else 0."""
    if any(row.comparison.verdict not in (PASS, UNSUPPORTED) for row in rows):
        return EXIT_FOUND
    if not any(row.comparison.verdict == PASS for row in rows):
        return EXIT_NOTHING_CHECKED
    return EXIT_OK


def verdict_line(rows: list[ReplayRow]) -> str:
    """One line that says what the replay established."""
    checked = sum(row.comparison.verdict != UNSUPPORTED for row in rows)
    found = sum(row.comparison.verdict not in (PASS, UNSUPPORTED) for row in rows)
    if not checked:
        return "nothing was checked: every framework was unavailable or could not run this case"
    unsupported = len(rows) - checked
    tail = f"; {unsupported} unsupported" if unsupported else ""
    return f"{checked} checked: {checked - found} passed, {found} found{tail}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def render_table(rows: list[ReplayRow]) -> str:
    headers = ("framework", "quantity", "verdict", "max abs err", "max rel err", "worst err", "allowed", "ratio")
    table = [
        (row.framework, row.comparison.quantity, row.comparison.verdict, _number(row.comparison.max_abs_error),
         _number(row.comparison.max_rel_error), _number(row.comparison.error_at_worst), _number(row.comparison.allowed),
         _number(row.comparison.ratio))
        for row in rows
    ]  # fmt: skip
    notes = [row.comparison.message if row.comparison.verdict != PASS else None for row in rows]
    return "\n".join(text_table(headers, table, notes))
