"""``bnconf replay``: run one case file on each requested adapter and compare with the reference.

Each finding is named by the ledger entry that explains it and that entry's kind (convention,
numerical, defect, out_of_domain), or called unexpected, so a replay says what a discrepancy
*means*, not only that it is there.  Each framework is checked on its own; a framework that is unavailable, or an adapter that
fails outright, becomes a row of its own and never hides the other frameworks' rows.  A
framework whose adapter declares a process environment this process does not have (Keras'
backend, fixed at its first import) is replayed in a child process that has it, so
``--frameworks keras,keras-jax,keras-torch`` compares all three backends in one command.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from adapters.registry import FrameworkUnavailableError, get_adapter, registered
from conformance.judging.check import check_case
from conformance.judging.compare import ERROR, PASS, UNSUPPORTED, Comparison
from conformance.judging.conditioning import at_worst, conditioning
from conformance.judging.ledger import Ledger, default_ledger
from datamodel.case import Case
from datamodel.casefile import dump_case
from datamodel.jsoncodec import as_number
from datamodel.records import result_record

from .childproc import environment_to_start, run_json_command
from .exitcodes import EXIT_FOUND, EXIT_NOTHING_CHECKED, EXIT_OK
from .texttable import text_table


@dataclass(frozen=True)
class ReplayRow:
    framework: str
    version: str
    comparison: Comparison
    known: str | None = None  # the ledger entry that explains this finding
    known_kind: str | None = None  # its kind

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "version": self.version, **asdict(self.comparison), "known": self.known,
                "known_kind": self.known_kind}  # fmt: skip

    @property
    def finding(self) -> str:
        """What the row's finding is: its ledger entry and kind, or unexpected; empty for a pass."""
        if self.comparison.verdict in (PASS, UNSUPPORTED):
            return ""
        return f"{self.known_kind}: {self.known}" if self.known else "unexpected"


def default_frameworks(case: Case) -> list[str]:
    """The frameworks a case names (where it was found), else every registered one."""
    return list(case.frameworks) or list(registered())


def replay(case: Case, frameworks: list[str]) -> list[ReplayRow]:
    """Check ``case`` on each framework spec; unknown names must be rejected before this."""
    rows = []
    for spec in frameworks:
        environment = environment_to_start(spec)
        if environment is not None:
            rows.extend(replay_in_child(case, spec, environment))
            continue
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
        rows.extend(classified_rows(adapter, case, version, result.comparisons, default_ledger()))
    return rows


def classified_rows(adapter, case: Case, version: str, comparisons: list[Comparison], ledger: Ledger) -> list[ReplayRow]:
    """One row per comparison, each finding marked with the ledger entry that explains it, as a suite run would."""
    data, rows = None, []
    for comparison in comparisons:
        entry = None
        if comparison.verdict not in (PASS, UNSUPPORTED):
            data = case.materialize() if data is None else data
            hard = conditioning(case, data)
            record = result_record(run_id=None, prop="ledger-evidence", framework=adapter.label, framework_version=version,
                                   case=case, comparison=comparison,
                                   conditioning=at_worst(hard, case, data, comparison.quantity, comparison.worst_index))  # fmt: skip
            entry = ledger.explain(record)
        rows.append(ReplayRow(adapter.label, version, comparison, entry.id if entry else None, entry.kind if entry else None))
    return rows


def replay_in_child(case: Case, spec: str, environment: dict[str, str]) -> list[ReplayRow]:
    """Replay ``case`` on ``spec`` in a child process started with ``environment``."""
    with tempfile.TemporaryDirectory(prefix="bnconf-replay-") as directory:
        path = Path(directory) / "case.json"
        dump_case(case, path)
        document, why = run_json_command(["replay", str(path), "--frameworks", spec, "--json"], environment)
    if document is not None:
        try:
            return [_row_from_dict(result) for result in document["results"]]
        except (KeyError, TypeError):
            why = "the child process printed JSON without results"
    return [ReplayRow(spec, "", Comparison("*", ERROR, message=why))]


def _row_from_dict(result: dict[str, Any]) -> ReplayRow:
    known = {f.name for f in fields(Comparison)}
    values = {key: value for key, value in result.items() if key in known}
    for name in ("max_abs_error", "max_rel_error", "allowed", "error_at_worst", "ratio", "stable_error", "accuracy_grade"):
        if values.get(name) is not None:
            values[name] = as_number(values[name])  # the JSON codec writes inf and NaN as strings
    if values.get("worst_index") is not None:
        values["worst_index"] = tuple(values["worst_index"])
    return ReplayRow(result["framework"], result["version"], Comparison(**values), result.get("known"),
                     result.get("known_kind"))  # fmt: skip


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
    headers = ("framework", "quantity", "verdict", "max abs err", "max rel err", "worst err", "allowed", "ratio", "grade",
               "finding")  # fmt: skip
    table = [
        (row.framework, row.comparison.quantity, row.comparison.verdict, _number(row.comparison.max_abs_error),
         _number(row.comparison.max_rel_error), _number(row.comparison.error_at_worst), _number(row.comparison.allowed),
         _number(row.comparison.ratio), _number(row.comparison.accuracy_grade), row.finding)
        for row in rows
    ]  # fmt: skip
    notes = [row.comparison.message if row.comparison.verdict != PASS else None for row in rows]
    return "\n".join(text_table(headers, table, notes))
