"""The known-discrepancy ledger: findings already understood, with reason and evidence.

One JSON file per framework in ``conformance/data/ledger/``.  Each entry says which findings it
explains (``match``: framework specs, properties, quantities, verdicts, and conditions on
record fields: ``{"min": a, "max": b}`` for numbers such as
``conditioning.worst_channel_offset_ratio``, ``{"contains": text}`` for messages, or an
exact value), why (``reason``), the ``evidence``
(a case file under ``conformance/data/ledger/cases/`` that reproduces it, and what was
observed), and an ``upstream`` link where one exists.

A finding that no entry explains fails the run.  Every entry's evidence case is replayed
by the suite (``test_ledger.py``); an entry whose evidence no longer reproduces is reported
as a failure too, so a run notices when a framework fixes or regresses something.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from datamodel.jsoncodec import as_number

LEDGER_DIR = Path(__file__).parent.parent / "data" / "ledger"
_MATCH_KEYS = {"framework", "property", "quantity", "verdict", "where"}


class LedgerError(ValueError):
    """A ledger file that cannot be used; the message names the file and entry."""


@dataclass(frozen=True)
class Entry:
    id: str
    reason: str
    match: dict[str, Any]
    evidence: dict[str, Any]
    upstream: str | None = None
    source: str = ""

    @property
    def case_path(self) -> Path | None:
        case = self.evidence.get("case_file")
        return LEDGER_DIR / case if case else None

    def explains(self, record: BaseModel | Mapping[str, Any]) -> bool:
        """Whether this entry covers a finding: a check record (``datamodel.records``), or a
        mapping of its fields.  ``where`` paths name record fields, dotted into nested ones."""
        if isinstance(record, BaseModel):
            record = record.model_dump()
        for key in ("framework", "property", "quantity", "verdict"):
            allowed = self.match.get(key)
            if allowed is not None and record.get(key) not in allowed:
                return False
        return all(_satisfies(_lookup(record, path), condition) for path, condition in self.match.get("where", {}).items())


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _satisfies(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and "contains" in condition:
        return isinstance(value, str) and condition["contains"] in value
    if isinstance(condition, dict):
        number = as_number(value)  # "inf" is how a record file writes an infinite float
        if number is None or number != number:
            return False  # missing, NaN or not a number: no bound holds
        if "min" in condition and not number >= condition["min"]:
            return False
        return not ("max" in condition and not number <= condition["max"])
    if isinstance(condition, list):
        return value in condition
    return value == condition


def _entry(raw: Any, source: str, index: int) -> Entry:
    where = f"{source}: entry {index}"
    if not isinstance(raw, dict):
        raise LedgerError(f"{where}: expected an object, got {type(raw).__name__}")
    for key in ("id", "reason", "match", "evidence"):
        if key not in raw:
            raise LedgerError(f"{where}: missing field {key!r}")
    unknown = set(raw["match"]) - _MATCH_KEYS
    if unknown:
        raise LedgerError(f"{where} ({raw['id']}): unknown match keys {sorted(unknown)}; known: {sorted(_MATCH_KEYS)}")
    for key in ("framework", "property", "quantity", "verdict"):
        if key in raw["match"] and not isinstance(raw["match"][key], list):
            raise LedgerError(f"{where} ({raw['id']}): match.{key} must be a list, got {raw['match'][key]!r}")
    conditions = raw["match"].get("where", {})
    if not isinstance(conditions, dict):
        raise LedgerError(f"{where} ({raw['id']}): match.where must be an object of field path → condition, got {conditions!r}")
    for path, condition in conditions.items():
        if isinstance(condition, dict) and (
            not condition or (set(condition) - {"min", "max"} and set(condition) != {"contains"})
        ):
            raise LedgerError(
                f"{where} ({raw['id']}): match.where[{path!r}] must use 'min' and/or 'max', or 'contains'; "
                f"got keys {sorted(condition)}"
            )
    return Entry(id=raw["id"], reason=raw["reason"], match=raw["match"], evidence=raw["evidence"],
                 upstream=raw.get("upstream"), source=source)  # fmt: skip


@dataclass
class Ledger:
    entries: list[Entry] = field(default_factory=list)

    def explain(self, record: BaseModel | Mapping[str, Any]) -> Entry | None:
        """The first entry that explains ``record`` (order decides between overlapping entries)."""
        if isinstance(record, BaseModel):
            record = record.model_dump()
        return next((entry for entry in self.entries if entry.explains(record)), None)

    def for_framework(self, spec: str) -> list[Entry]:
        return [e for e in self.entries if spec in e.match.get("framework", [spec])]


def load_ledger(directory: Path = LEDGER_DIR) -> Ledger:
    entries: list[Entry] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise LedgerError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
        raw_entries = document.get("entries") if isinstance(document, dict) else None
        if not isinstance(raw_entries, list):
            raise LedgerError(f"{path}: expected an object with a list 'entries'")
        for index, raw in enumerate(raw_entries):
            entry = _entry(raw, str(path), index)
            if entry.id in seen:
                raise LedgerError(f"{path}: duplicate entry id {entry.id!r}")
            seen.add(entry.id)
            entries.append(entry)
    return Ledger(entries)


@cache
def default_ledger() -> Ledger:
    return load_ledger()
