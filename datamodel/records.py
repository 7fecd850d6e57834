"""Result records: one typed JSON object per check, appended to a JSON-lines file as it finishes.

JSON lines are the source of truth for every report: a run that is killed keeps every
record written before it died.  Each line is one of the models below, told apart by its
``kind`` (a pydantic discriminated union, validated on read):

* ``environment``: where a run happened (machine, Python, commit, hypothesis profile);
* ``framework``: one framework's version and device details in a run;
* ``result``: a toleranced numeric comparison of one quantity with the reference;
* ``count``: a parameter-inventory count, observed against the canonical one;
* ``probe``: a convention measured on the framework, against what its adapter declares;
* ``ledger``: a ledger entry's evidence replayed, and whether it still reproduces;
* ``error``: a crash, a hang or a harness failure (its ``case`` is ``null`` when unknown);
* ``run_end``: the last record of a suite process that finished (how it ended); a run whose
  records lack it was cut short (killed, crashed, hung), and its report says it is partial.

Every check record (all but ``environment``, ``framework`` and ``run_end``) says what was run (the case file, the framework
and its version, the device), what was found (``quantity``: what was checked; ``verdict``;
``message``), and how to reproduce it (a replay command; the hypothesis blob when the suite
found the case).  Non-finite numbers are written as text (``datamodel.jsoncodec``).

``python -m datamodel.records --schema`` prints the JSON Schema of a line
(committed as ``docs/record-schema.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema

from .case import Case
from .casefile import case_to_json
from .findings import FINDING_KINDS, SEVERITIES
from .jsoncodec import NON_FINITE_TEXT, decode_float, dumps
from .runinfo import commit, environment
from .verdicts import DISCREPANCY, ERROR, PASS, UNSUPPORTED, VERDICTS

RECORD_SCHEMA_VERSION = 2

#: A float that may be non-finite: written as a number, or as "nan", "inf" or "-inf".
Real = Annotated[
    float,
    BeforeValidator(decode_float),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"enum": list(NON_FINITE_TEXT)}]}),
]
Verdict = Literal["pass", "discrepancy", "error", "unsupported"]
assert get_args(Verdict) == VERDICTS, "datamodel.verdicts and the record schema name the same verdicts"
FindingKind = Literal["convention", "numerical", "defect", "out_of_domain"]
Severity = Literal["nan_inf", "wrong_values", "wrong_statistics", "raises", "accuracy_loss", "cosmetic"]
assert get_args(FindingKind) == FINDING_KINDS
assert get_args(Severity) == tuple(SEVERITIES)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Record(_Model):
    schema_version: Literal[2] = RECORD_SCHEMA_VERSION
    kind: str  # each model narrows it to its own literal: the discriminator of ``Record``
    #: ``None`` only for a record the supervisor wrote for a process that died before announcing its run.
    run_id: str | None
    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class EnvironmentRecord(_Record):
    """Where a run happened; one per suite process, written first."""

    kind: Literal["environment"] = "environment"
    commit: str | None = None
    python: str
    platform: str
    machine: str
    numpy: str
    hypothesis: str
    hypothesis_profile: str | None = None
    hypothesis_seed: str | int | None = None
    device: str | None = None  # the --bnconf-device option: cpu, gpu or all
    frameworks: str | None = None  # the --bnconf-frameworks option (None: every registered one)


class FrameworkRecord(_Record):
    """One framework spec's version and device details, written before its first check."""

    kind: Literal["framework"] = "framework"
    framework: str
    framework_version: str
    device_info: dict[str, str] = {}


class _Check(_Record):
    """What every check record says: what ran, what was found, how to reproduce it."""

    property: str
    #: What was checked: a quantity (``dx``, ``y_train@twin``), a count, a convention, a ledger entry id.
    quantity: str
    verdict: Verdict
    message: str = ""
    framework: str
    framework_version: str
    device: str
    dtype: str | None = None
    rank: int | None = None
    channel_axis: int | None = None
    layout: Literal["channels_first", "channels_last", "other"] | None = None
    #: The case-file document of the case (``datamodel.casefile``); ``None`` when it is not known.
    case: dict[str, Any] | None = None
    test: str | None = None  # the pytest node id that made the check
    known: str | None = None  # the ledger entry that explains this finding
    known_kind: FindingKind | None = None  # that entry's kind (``datamodel.findings``)
    known_severity: Severity | None = None  # that entry's severity
    case_file: str | None = None
    replay: str | None = None  # the command that replays the finding
    snippet: str | None = None  # standalone code in the framework's own API
    snippet_error: str | None = None  # why no snippet could be written
    minimal: bool = False  # a re-write of a finding as its test's minimal counterexample
    hypothesis_blob: str | None = None

    @property
    def is_finding(self) -> bool:
        return self.verdict in (DISCREPANCY, ERROR)


class Conditioning(_Model):
    """How hard the case's first batch is, in the terms of the tolerance model."""

    offset_ratio: Real  # the largest per-channel |mean|/std (∞ for a constant channel away from 0)
    constant_channels: int
    one_value_per_channel: bool
    min_var_over_eps: Real | None = None  # None when ε is the framework's default
    data_class: str | None = None  # the strategy's label for the data ("offset", "constant", ...)
    worst_channel_offset_ratio: Real | None = None  # |mean|/std of the channel of the worst element


class ResultRecord(_Check):
    """A toleranced numeric comparison of one quantity with the reference."""

    kind: Literal["result"] = "result"
    max_abs_error: Real | None = None
    max_rel_error: Real | None = None
    allowed: Real | None = None  # allowed error at the worst element
    error_at_worst: Real | None = None
    ratio: Real | None = None  # |error| / allowed at the worst element; above 1 is a discrepancy
    mismatched: int = 0
    total: int = 0
    uninformative: int = 0  # elements whose allowed error is at least their own size
    worst_index: list[int] | None = None
    #: The largest error a numerically stable implementation in the case's dtype makes on this
    #: quantity of this case (an emulation: ``conformance.judging.accuracy``), and the accuracy
    #: grade, ``max_abs_error`` in units of it (floored at a few roundings of the output): about
    #: 1 is as accurate as a stable implementation, 10 ten times less; ``None`` without a grade.
    stable_error: Real | None = None
    accuracy_grade: Real | None = None
    conditioning: Conditioning | None = None
    twin: str | None = None  # layout property: the framework spec this one was compared with
    twin_of: str | None = None  # layout property: this check ran as the twin of that spec
    compared_with: str | None = None  # cross-device property: the device compared against


class Variable(_Model):
    name: str
    role: str
    shape: list[int]
    dtype: str
    trainable: bool


class CanonicalCounts(_Model):
    """What the layer should hold: the canonical counts plus the extra state its adapter declares."""

    trainable: int
    running_statistics: int
    total: int
    extra_state: int = 0  # values of the declared extra state (a counter, a raw average), in ``total``
    declared_extra_state: list[str] = []  # each declared variable: "num_batches_tracked (counter, 1 value)"
    variable_shape: list[int] | None = None  # the declared shape of each per-channel variable; None: (C,)


class Inventory(_Model):
    """Every variable a framework creates for the layer, and its own totals."""

    variables: list[Variable]
    trainable_count: int
    non_trainable_count: int
    total_count: int
    reported: dict[str, int] = {}  # where a figure comes from ("count_params()") → the figure
    canonical: CanonicalCounts


class CountRecord(_Check):
    """A parameter-inventory count (``quantity``: which one) against the canonical count."""

    kind: Literal["count"] = "count"
    observed: int
    canonical: int
    inventory: Inventory


class ProbeRecord(_Check):
    """A convention (``quantity``) measured on the framework, against what its adapter declares."""

    kind: Literal["probe"] = "probe"
    declared: str | float
    probed: str | float
    evidence: dict[str, Real] = {}  # the observed numbers the probe decided from
    declared_conventions: dict[str, str] = {}  # every convention the adapter declares, for the report

    @property
    def convention(self) -> str:
        return self.quantity


class LedgerRecord(_Check):
    """A ledger entry (``quantity``: its id) whose evidence was replayed."""

    kind: Literal["ledger"] = "ledger"
    #: ``None``: not replayed here, because the entry is scoped to a device (or backend) this
    #: run does not have; the verdict is then ``unsupported`` and the message says what it needs.
    reproduced: bool | None
    explained_quantities: list[str] = []

    @property
    def entry_id(self) -> str:
        return self.quantity


class ErrorRecord(_Check):
    """Something that failed outside a comparison, so that nothing fails without a record."""

    kind: Literal["error"] = "error"
    cause: Literal["crash", "hang", "harness"]
    quantity: str = "*"
    verdict: Literal["error"] = "error"
    framework_version: str = "unknown"
    device: str = "unknown"


class RunEndRecord(_Record):
    """The completion marker: the last record of a suite process that reached the end of its run.

    A process that is killed (a crash, a hang, the OOM killer) never writes it, so records
    without one are a partial run; one that was interrupted (Ctrl-C) writes it with
    ``interrupted`` set.  ``exit_status`` and ``outcome`` are pytest's (``pytest.ExitCode``).
    """

    kind: Literal["run_end"] = "run_end"
    exit_status: int
    outcome: str
    interrupted: bool = False
    checks: int = 0  # check records the process wrote


CheckRecord = ResultRecord | CountRecord | ProbeRecord | LedgerRecord | ErrorRecord
RECORD_MODELS = (EnvironmentRecord, FrameworkRecord, ResultRecord, CountRecord, ProbeRecord, LedgerRecord, ErrorRecord,
                 RunEndRecord)  # fmt: skip
#: Every record kind, in the order of the models above.
KINDS = tuple(model.model_fields["kind"].default for model in RECORD_MODELS)
AnyRecord = EnvironmentRecord | FrameworkRecord | CheckRecord | RunEndRecord
Record = Annotated[AnyRecord, Field(discriminator="kind")]
RECORD = TypeAdapter(Record)


# -- building records --------------------------------------------------------------------------


def replay_command(case_path: str | Path, framework: str, device: str = "cpu") -> str:
    return f"bnconf replay {shlex.quote(str(case_path))} --frameworks {framework} --device {device}"


def case_fields(case: Case | None) -> dict[str, Any]:
    """The fields a check record derives from its case (none but the device when it is unknown)."""
    if case is None:
        return {}
    axis, rank = case.layout.axis, case.rank
    layout = "channels_first" if axis == 1 else ("channels_last" if axis == rank - 1 else "other")
    return {"device": case.device, "dtype": case.dtype, "rank": rank, "channel_axis": axis, "layout": layout,
            "case": case_to_json(case)}  # fmt: skip


def result_record(
    *, run_id: str | None, prop: str, framework: str, framework_version: str, case: Case, comparison: Any,
    conditioning: Conditioning | Mapping[str, Any] | None = None, **fields: Any,
) -> ResultRecord:  # fmt: skip
    """A ``result`` record for one comparison (a dataclass such as
    ``conformance.judging.compare.Comparison``, or a mapping of its fields)."""
    compared = asdict(comparison) if is_dataclass(comparison) else dict(comparison)
    return ResultRecord(run_id=run_id, property=prop, framework=framework, framework_version=framework_version,
                        **case_fields(case), **compared, conditioning=conditioning, **fields)  # fmt: skip


def count_record(
    *, run_id: str | None, framework: str, framework_version: str, case: Case, quantity: str, observed: int,
    canonical: int, inventory: Inventory, message: str | None = None, **fields: Any,
) -> CountRecord:  # fmt: skip
    """A ``count`` record: a pass when ``observed`` equals ``canonical``."""
    same = observed == canonical
    if message is None:
        message = "" if same else f"{quantity}: the framework reports {observed}, the canonical count is {canonical}"
    return CountRecord(run_id=run_id, property="inventory", quantity=quantity, verdict=PASS if same else DISCREPANCY,
                       message=message, framework=framework, framework_version=framework_version, **case_fields(case),
                       observed=observed, canonical=canonical, inventory=inventory, **fields)  # fmt: skip


def probe_record(
    *, run_id: str | None, framework: str, framework_version: str, case: Case, convention: str, declared: str | float,
    probed: str | float, agrees: bool, evidence: Mapping[str, float], declared_conventions: Mapping[str, str],
    message: str | None = None, **fields: Any,
) -> ProbeRecord:  # fmt: skip
    """A ``probe`` record of the ``conventions`` property: a discrepancy unless ``agrees``.

    ``message`` (for a discrepancy) replaces the standard "declared X, but behaves as Y".
    """
    if agrees:
        message = ""
    elif message is None:
        message = f"{convention}: declared {declared!r}, but the framework behaves as {probed!r}"
    return ProbeRecord(run_id=run_id, property="conventions", quantity=convention, verdict=PASS if agrees else DISCREPANCY,
                       message=message, framework=framework, framework_version=framework_version, **case_fields(case),
                       declared=declared, probed=probed, evidence=dict(evidence),
                       declared_conventions=dict(declared_conventions), **fields)  # fmt: skip


def ledger_record(
    *, run_id: str | None, framework: str, framework_version: str, case: Case, entry_id: str, reproduced: bool | None,
    explained_quantities: list[str], message: str = "", **fields: Any,
) -> LedgerRecord:  # fmt: skip
    """A ``ledger`` record: a discrepancy when the entry's evidence no longer reproduces, and
    ``unsupported`` (``reproduced`` ``None``) when it could not be replayed here."""
    verdict = UNSUPPORTED if reproduced is None else (PASS if reproduced else DISCREPANCY)
    return LedgerRecord(run_id=run_id, property="ledger", quantity=entry_id, verdict=verdict,
                        message=message, framework=framework, framework_version=framework_version, **case_fields(case),
                        reproduced=reproduced, explained_quantities=sorted(explained_quantities), **fields)  # fmt: skip


def error_record(
    *, run_id: str | None, prop: str, framework: str, message: str, cause: str, case: Case | None = None,
    framework_version: str = "unknown", test: str | None = None,
) -> ErrorRecord:  # fmt: skip
    """An ``error`` record for something that failed outside a comparison (a crashed or hung
    process, a harness exception).  Without the case that was running, ``case`` is ``None``."""
    return ErrorRecord(run_id=run_id, property=prop, framework=framework, framework_version=framework_version,
                       message=message, cause=cause, test=test, **case_fields(case))  # fmt: skip


def run_end_record(run_id: str, *, exit_status: int, outcome: str, interrupted: bool, checks: int) -> RunEndRecord:
    """The completion marker a suite process writes when its run ends (see ``RunEndRecord``)."""
    return RunEndRecord(run_id=run_id, exit_status=exit_status, outcome=outcome, interrupted=interrupted, checks=checks)


def environment_record(run_id: str, **details: Any) -> EnvironmentRecord:
    """The record that describes a run (``details``: the plugin's options) rather than a check."""
    return EnvironmentRecord(run_id=run_id, commit=commit(), **environment(), **details)


def framework_record(run_id: str, framework: str, version: str, devices: dict[str, str]) -> FrameworkRecord:
    """A record of one framework's version and device details in a run."""
    return FrameworkRecord(run_id=run_id, framework=framework, framework_version=version, device_info=devices)


# -- the file ----------------------------------------------------------------------------------


class RecordWriter:
    """Appends records to a JSON-lines file, flushed and fsynced one line at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: BaseModel) -> None:
        if not isinstance(record, _Record):
            raise TypeError(f"expected a record model (datamodel.records), got {type(record).__name__}")
        self._file.write(dumps(record.model_dump()) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordFileError(ValueError):
    """A results file that cannot be read; the message names the file and line."""


def parse_record(document: Any) -> AnyRecord:
    """One line's JSON document as its record model; ``ValueError`` with a one-line reason."""
    if not isinstance(document, dict) or "schema_version" not in document:
        raise ValueError("not a result record (no schema_version)")
    if document["schema_version"] != RECORD_SCHEMA_VERSION or isinstance(document["schema_version"], bool):
        raise ValueError(
            f"record schema version {_shown(document['schema_version'])} is not supported "
            f"(this bnconf reads version {RECORD_SCHEMA_VERSION})"
        )
    try:
        return RECORD.validate_python(document)
    except ValidationError as error:
        raise ValueError(_one_line(document, error)) from None


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: a hostile file's values can be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(document: dict, error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    # The discriminator is the first element of a location; the field path follows it.
    location = ".".join(str(part) for part in first["loc"][1:]) or "kind"
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return f"invalid record kind {_shown(document.get('kind'))} (expected one of: {', '.join(KINDS)})"
    seen = f", saw {_shown(first['input'], 110)}" if first["type"] != "missing" else ""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"invalid {document.get('kind')} record: field {location!r}: {first['msg']}{seen}{more}"


def _single_line(text: str) -> str:
    return " ".join(str(text).split())


def _json_line(line: bytes) -> Any:
    """One line's JSON document; ``ValueError`` with a one-line reason for anything else."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {error.start + 1} of the line)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON record ({error.msg})") from None
    except RecursionError:
        raise ValueError("not a result record (JSON nested too deeply)") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise ValueError(f"not a JSON record ({_single_line(error)[:200]})") from None


def read_records(path: str | Path) -> list[AnyRecord]:
    """Every record of a JSON-lines results file, validated; a torn last line (a killed run) is skipped.

    Anything wrong with the file is a ``RecordFileError`` with a one-line message naming the
    file and line.  Lines end at ``\n`` only: JSON text may hold other line separators.
    """
    path = Path(path)
    records = []
    try:
        content = path.read_bytes()
    except OSError as error:
        raise RecordFileError(_single_line(f"{path}: cannot read results: {error.strerror or error}")) from None
    lines = content.split(b"\n")
    last = max((number for number, line in enumerate(lines, 1) if line.strip()), default=0)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            document = _json_line(line)
        except ValueError as error:
            if number == last and not content.endswith(b"\n"):  # the run was killed while writing its last line
                break
            raise RecordFileError(_single_line(f"{path}:{number}: {error}")) from None
        try:
            records.append(parse_record(document))
        except ValueError as error:
            raise RecordFileError(_single_line(f"{path}:{number}: {error}")) from None
        except RecursionError:
            raise RecordFileError(f"{path}:{number}: not a result record (nested too deeply)") from None
    return records


# -- the schema --------------------------------------------------------------------------------


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema of one line of a results file, generated from the models above."""
    schema = RECORD.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"bn-conformance result record, schema version {RECORD_SCHEMA_VERSION}",
        "description": "One line of a results file (JSON lines). Generated by `python -m datamodel.records --schema`; "
        "do not edit by hand.",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datamodel.records", description="The result-record schema.")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema of a record line")
    args = parser.parse_args(argv)
    if not args.schema:
        parser.error("nothing to do: give --schema")
    print(schema_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
