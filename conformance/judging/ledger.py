"""The known-discrepancy ledger: findings already understood, with reason and evidence.

One JSON file per framework in ``conformance/data/ledger/``.  Each entry says which findings it
explains (``match``: framework specs, properties, quantities, verdicts, and conditions on
record fields: ``{"min": a, "max": b}`` for numbers such as
``conditioning.worst_channel_offset_ratio``, ``{"contains": text}`` for messages, or an
exact value), why (``reason``), the ``evidence``
(a case file under ``conformance/data/ledger/cases/`` that reproduces it, and what was
observed), and an ``upstream`` link where one exists.

Every entry also says what the finding *is* and how much it matters (``datamodel.findings``):
a ``kind`` (``convention``, ``numerical``, ``defect``, ``out_of_domain``) with the one field
that kind owes its reader, and a ``severity`` a user can sort by:

* ``convention``: ``unmodelled``, why the reference cannot express it (a convention it can
  express is declared by the adapter and modelled, never ledgered);
* ``numerical``: ``data``, the data on which the weakness shows (a data class, a dtype, a range);
* ``defect``: ``upstream``, the link to the report, or ``"not yet reported"``;
* ``out_of_domain``: ``bound``, the documented bound the evidence crosses.

An entry may be scoped to a ``device`` (``"gpu"``) and to ``backend`` conditions on the
adapter's ``device_info()`` (``{"cudnn": "on"}``): it explains only findings on that device,
and its evidence replays only where the device exists; elsewhere the suite writes it as "not
replayed here" (neither reproduced nor failed).  ``python -m conformance.judging.ledger
--schema`` prints the JSON Schema of a ledger file (committed as ``docs/ledger-schema.json``).

A finding that no entry explains fails the run.  Every entry's evidence case is replayed
by the suite (``test_ledger.py``); an entry whose evidence no longer reproduces is reported
as a failure too, so a run notices when a framework fixes or regresses something.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from datamodel.findings import FINDING_KINDS, NOT_YET_REPORTED, SEVERITIES
from datamodel.jsoncodec import as_number

LEDGER_DIR = Path(__file__).parent.parent / "data" / "ledger"
_MATCH_KEYS = {"framework", "property", "quantity", "verdict", "where"}
#: The field each kind must carry, and what it says.
KIND_FIELDS = {
    "convention": ("unmodelled", "why the reference cannot express this documented convention"),
    "numerical": ("data", "the data on which the weakness shows"),
    "defect": ("upstream", f"a link to the upstream report, or {NOT_YET_REPORTED!r}"),
    "out_of_domain": ("bound", "the documented bound the evidence crosses"),
}
DEVICES = ("cpu", "gpu")


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
    kind: str = "defect"
    severity: str = "wrong_values"
    #: The kind's own field (``KIND_FIELDS``): why unmodelled, on which data, which bound.
    unmodelled: str | None = None
    data: str | None = None
    bound: str | None = None
    #: Where the finding exists: a device (``None``: any) and backend conditions on ``device_info``.
    device: str | None = None
    backend: dict[str, str] = field(default_factory=dict)

    @property
    def reported_upstream(self) -> bool:
        return bool(self.upstream) and self.upstream != NOT_YET_REPORTED

    def scope_reason(self, device: str, device_info: Mapping[str, str] | None = None) -> str | None:
        """Why this entry cannot be replayed on ``device`` with ``device_info``; ``None`` when it can."""
        if self.device is not None and device != self.device:
            return f"not replayed here: needs {self.device}"
        info = device_info or {}
        missing = [f"{key}={value}" for key, value in self.backend.items() if str(info.get(key)) != value]
        return f"not replayed here: needs {', '.join(missing)}" if missing else None

    @property
    def case_path(self) -> Path | None:
        """The evidence case file, relative to the ledger file's folder."""
        case = self.evidence.get("case_file")
        if not case:
            return None
        return (Path(self.source).parent if self.source else LEDGER_DIR) / case

    def explains(self, record: BaseModel | Mapping[str, Any]) -> bool:
        """Whether this entry covers a finding: a check record (``datamodel.records``), or a
        mapping of its fields.  ``where`` paths name record fields, dotted into nested ones."""
        if isinstance(record, BaseModel):
            record = record.model_dump()
        if self.device is not None and record.get("device") != self.device:
            return False  # a device-scoped finding does not explain the same symptom elsewhere
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
    _check_classification(raw, f"{where} ({raw['id']})")
    return Entry(id=raw["id"], reason=raw["reason"], match=raw["match"], evidence=raw["evidence"],
                 upstream=raw.get("upstream"), source=source, kind=raw["kind"], severity=raw["severity"],
                 unmodelled=raw.get("unmodelled"), data=raw.get("data"), bound=raw.get("bound"),
                 device=raw.get("device"), backend=raw.get("backend", {}))  # fmt: skip


def _check_classification(raw: dict, where: str) -> None:
    """``kind``, ``severity``, the kind's own field and the device scope, each with a one-line error."""
    for key, allowed in (("kind", FINDING_KINDS), ("severity", tuple(SEVERITIES))):
        if key not in raw:
            raise LedgerError(f"{where}: missing field {key!r} (one of: {', '.join(allowed)})")
        if raw[key] not in allowed:
            raise LedgerError(f"{where}: {key} must be one of {', '.join(allowed)}; got {raw[key]!r}")
    name, meaning = KIND_FIELDS[raw["kind"]]
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise LedgerError(f"{where}: a {raw['kind']} entry needs {name!r}: {meaning}; got {value!r}")
    if raw["kind"] == "defect" and value != NOT_YET_REPORTED and not value.startswith(("https://", "http://")):
        raise LedgerError(f"{where}: upstream must be a URL or {NOT_YET_REPORTED!r}; got {value!r}")
    for other, (other_name, _) in KIND_FIELDS.items():
        if other != raw["kind"] and other_name != "upstream" and other_name in raw:
            raise LedgerError(f"{where}: {other_name!r} belongs to {other} entries, not to a {raw['kind']} entry")
    if raw.get("device") is not None and raw["device"] not in DEVICES:
        raise LedgerError(f"{where}: device must be one of {', '.join(DEVICES)}; got {raw['device']!r}")
    backend = raw.get("backend", {})
    if not isinstance(backend, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in backend.items()):
        raise LedgerError(f"{where}: backend must map device_info keys to text values; got {backend!r}")


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


#: A folder of ledger files to use instead of the project's own (a third party's, or a test's).
LEDGER_DIR_VARIABLE = "BNCONF_LEDGER_DIR"


@cache
def default_ledger() -> Ledger:
    """The project's ledger, or the one in ``$BNCONF_LEDGER_DIR`` when that is set."""
    override = os.environ.get(LEDGER_DIR_VARIABLE)
    if override and not Path(override).is_dir():
        raise LedgerError(f"{LEDGER_DIR_VARIABLE}={override}: expected a folder of ledger files")
    return load_ledger(Path(override)) if override else load_ledger()


# -- the file format, as a JSON Schema ----------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryDocument(_Strict):
    """One ledger entry as written in a ledger file (the loader checks the same rules)."""

    id: str
    kind: Literal["convention", "numerical", "defect", "out_of_domain"] = Field(
        description="what the finding is: " + "; ".join(f"{k} needs {v[0]!r} ({v[1]})" for k, v in KIND_FIELDS.items()))
    severity: Literal["nan_inf", "wrong_values", "wrong_statistics", "raises", "accuracy_loss", "cosmetic"] = Field(
        description="what a user sees, most severe first: " + "; ".join(f"{k}: {v}" for k, v in SEVERITIES.items()))
    reason: str
    unmodelled: str | None = Field(None, description=KIND_FIELDS["convention"][1])
    data: str | None = Field(None, description=KIND_FIELDS["numerical"][1])
    bound: str | None = Field(None, description=KIND_FIELDS["out_of_domain"][1])
    upstream: str | None = Field(None, description="a link to the upstream report; a defect without one says "
                                                   f"{NOT_YET_REPORTED!r}")
    device: Literal["cpu", "gpu"] | None = Field(None, description="the only device the finding exists on (none: any)")
    backend: dict[str, str] = Field({}, description="conditions on the adapter's device_info, e.g. {'cudnn': 'on'}")
    match: dict[str, Any] = Field(description="framework, property, quantity, verdict lists and 'where' conditions")
    evidence: dict[str, Any] = Field(description="case_file or inventory, command, observed")


class LedgerDocument(_Strict):
    """A ledger file: ``conformance/data/ledger/<framework>.json``."""

    framework: str | None = None
    entries: list[EntryDocument]


assert get_args(EntryDocument.model_fields["kind"].annotation) == FINDING_KINDS
assert get_args(EntryDocument.model_fields["severity"].annotation) == tuple(SEVERITIES)


def ledger_json_schema() -> dict[str, Any]:
    return LedgerDocument.model_json_schema()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The ledger file format.")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema of a ledger file")
    arguments = parser.parse_args(argv)
    if arguments.schema:
        print(json.dumps(ledger_json_schema(), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
