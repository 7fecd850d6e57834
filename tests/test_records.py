"""Result records: the typed JSON-lines file every report is built from.

The file must survive a killed run (each line flushed as written, a torn last line
skipped), stay strict JSON (no NaN/Infinity tokens, which many readers reject), refuse
records of another schema version or that do not match the schema (at file:line, in one
line), and carry enough to reproduce each check (the case as a case-file document).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conformance.judging.compare import DISCREPANCY, PASS, Comparison
from datamodel import jsoncodec
from datamodel.case import Case, Generator
from datamodel.casefile import case_to_json, parse_case
from datamodel.records import (
    RECORD_SCHEMA_VERSION,
    CanonicalCounts,
    Conditioning,
    CountRecord,
    ErrorRecord,
    Inventory,
    LedgerRecord,
    ProbeRecord,
    RecordFileError,
    RecordWriter,
    ResultRecord,
    count_record,
    environment_record,
    error_record,
    framework_record,
    ledger_record,
    probe_record,
    read_records,
    result_record,
    run_end_record,
)


def _case(**overrides) -> Case:
    fields = {
        "shape": (2, 3, 4), "channel_axis": 1, "dtype": "float16", "x": Generator(seed=3, loc=(1.0, 2.0, 3.0)),
        "eps": 1e-3, "decay": 0.9, "running_var": np.array([1.0, 2.0, 3.0]), "device": "cpu",
        "extra": {"conditioning": "offset"},
    }  # fmt: skip
    fields.update(overrides)
    return Case(**fields)


def _result(quantity: str = "y_eval", **fields) -> ResultRecord:
    comparison = fields.pop("comparison", Comparison(quantity, PASS, ratio=0.5, total=24))
    return result_record(run_id="run1", prop="numerics", framework="torch", framework_version="2.3.0", case=_case(),
                         comparison=comparison, **fields)  # fmt: skip


def _strict(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-standard JSON token {token!r} in the results file")

    return json.loads(text, parse_constant=refuse)


# -- writing --------------------------------------------------------------------------------


def test_writer_appends_one_line_per_record_readable_before_close(tmp_path):
    """Each record is on disk as soon as ``write`` returns: a run killed later keeps it."""
    path = tmp_path / "results" / "run.jsonl"  # the parent is created
    writer = RecordWriter(path)
    try:
        writer.write(_result("y_eval"))
        assert [r.quantity for r in read_records(path)] == ["y_eval"]
        writer.write(_result("dx"))
        assert path.read_text(encoding="utf-8").count("\n") == 2
        assert [r.quantity for r in read_records(path)] == ["y_eval", "dx"]
    finally:
        writer.close()


def test_writer_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(_result("a"))
    with RecordWriter(path) as writer:
        writer.write(_result("b"))
    assert [r.quantity for r in read_records(path)] == ["a", "b"]


def test_non_finite_floats_are_written_as_strings_and_the_file_is_strict_json(tmp_path):
    """NaN and ±inf anywhere in a record (nested too) become "nan"/"inf"/"-inf" and read back as floats."""
    path = tmp_path / "run.jsonl"
    comparison = Comparison("dx", DISCREPANCY, ratio=math.inf, max_abs_error=-math.inf, allowed=math.nan,
                            worst_index=(1, 2), total=24)  # fmt: skip
    hard = Conditioning(offset_ratio=np.float64(np.inf), constant_channels=1, one_value_per_channel=False)
    with RecordWriter(path) as writer:
        writer.write(_result(comparison=comparison, conditioning=hard))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    written = _strict(line)
    assert (written["ratio"], written["max_abs_error"], written["allowed"]) == ("inf", "-inf", "nan")
    assert (written["conditioning"]["offset_ratio"], written["worst_index"]) == ("inf", [1, 2])
    (back,) = read_records(path)
    assert (back.ratio, back.max_abs_error, back.conditioning.offset_ratio) == (math.inf, -math.inf, math.inf)
    assert math.isnan(back.allowed)


def test_writer_refuses_what_is_not_a_record(tmp_path):
    with RecordWriter(tmp_path / "run.jsonl") as writer, pytest.raises(TypeError, match="expected a record model"):
        writer.write({"kind": "result"})  # type: ignore[arg-type]


def test_a_record_refuses_fields_the_schema_does_not_have():
    with pytest.raises(ValueError, match="surprise"):
        _result(surprise=1)


# -- reading --------------------------------------------------------------------------------


def _line(record) -> str:
    return jsoncodec.dumps(record.model_dump())


def _lines(tmp_path, *lines: str):
    path = tmp_path / "run.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_torn_last_line_of_a_killed_run_is_skipped(tmp_path):
    """A run killed mid-write leaves a partial last line; every complete record before it is kept."""
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(_result("a"))
        writer.write(_result("b"))
    with path.open("a", encoding="utf-8") as file:
        file.write(_line(_result("c"))[:17])  # no newline: the process died here
    assert [r.quantity for r in read_records(path)] == ["a", "b"]


def test_a_line_separator_inside_a_record_does_not_split_it(tmp_path):
    """Lines end at a newline only: JSON text written unescaped (``ensure_ascii=False``) may hold
    U+2028, U+0085 or a form feed's cousins, which ``str.splitlines`` would cut at."""
    document = _result("a").model_dump()
    document["test"] = "one\u2028two\x85three\x1cfour"
    path = _lines(tmp_path, json.dumps(jsoncodec.encode(document), ensure_ascii=False), _line(_result("b")))
    assert [r.test for r in read_records(path)] == ["one\u2028two\x85three\x1cfour", None]


def test_a_complete_bad_last_line_is_not_mistaken_for_a_torn_one(tmp_path):
    """A torn line has no newline (the writer ends each line with one): a bad line that does is refused."""
    path = _lines(tmp_path, _good(), "{not json")
    with pytest.raises(RecordFileError, match=r":2: not a JSON record"):
        read_records(path)


def test_blank_lines_are_ignored(tmp_path):
    path = _lines(tmp_path, _line(_result("a")), "", "   ", _line(_result("b")))
    assert [r.quantity for r in read_records(path)] == ["a", "b"]


def _good() -> str:
    return _line(_result())


def _edited(**changes) -> str:
    document = json.loads(_good())
    for key, value in changes.items():
        if value is _DROP:
            del document[key]
        else:
            document[key] = value
    return json.dumps(document)


_DROP = object()


@pytest.mark.parametrize(
    ("lines", "where", "message"),
    [
        pytest.param(["{not json", _good()], 1, "not a JSON record", id="bad-json-first-line"),
        pytest.param([_good(), '{"schema_version": 2, "ratio": ', _good()], 2, "not a JSON record",
                     id="torn-line-in-the-middle"),
        pytest.param([_good(), "[1, 2, 3]"], 2, r"not a result record \(no schema_version\)", id="array-line"),
        pytest.param([json.dumps({"framework": "torch"})], 1, r"not a result record \(no schema_version\)",
                     id="object-without-schema-version"),
        pytest.param(["42", _good()], 1, "not a result record", id="number-line"),
        pytest.param([_good(), _edited(kind="guess")], 2,
                     r"invalid record kind 'guess' \(expected one of: environment, framework, result, count, probe, "
                     r"ledger, error, run_end\)", id="unknown-kind"),
        pytest.param([_edited(kind=_DROP)], 1, "invalid record kind None", id="no-kind"),
        pytest.param([_edited(verdict="maybe")], 1, r"invalid result record: field 'verdict': Input should be "
                     r"'pass', 'discrepancy', 'error' or 'unsupported', saw 'maybe'", id="unknown-verdict"),
        pytest.param([_edited(framework=_DROP)], 1, r"invalid result record: field 'framework': Field required$",
                     id="missing-field"),
        pytest.param([_edited(ratio="big")], 1, r"invalid result record: field 'ratio': .*saw 'big'", id="bad-number"),
        pytest.param([_edited(colour="red")], 1, r"invalid result record: field 'colour': Extra inputs are not permitted",
                     id="unknown-field"),
        pytest.param([_edited(ratio="big", total="many")], 1, r"\(and 1 more problems\)$", id="two-problems"),
    ],
)  # fmt: skip
def test_bad_lines_name_the_file_and_line(tmp_path, lines, where, message):
    """Only the last line may be torn; anything else unreadable or invalid is one line at file:line."""
    path = _lines(tmp_path, *lines)
    with pytest.raises(RecordFileError, match=message) as raised:
        read_records(path)
    assert str(raised.value).startswith(f"{path}:{where}: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("version", [1, RECORD_SCHEMA_VERSION + 1, "2", True], ids=["older", "newer", "string", "bool"])
def test_records_of_another_schema_version_are_refused(tmp_path, version):
    """A reader of version 2 does not guess at other layouts; the message names both versions."""
    path = _lines(tmp_path, _good(), _edited(schema_version=version))
    with pytest.raises(RecordFileError, match=rf"schema version {version!r} is not supported") as raised:
        read_records(path)
    assert f"reads version {RECORD_SCHEMA_VERSION}" in str(raised.value)
    assert str(raised.value).startswith(f"{path}:2: ")


def test_missing_file_is_a_record_file_error(tmp_path):
    with pytest.raises(RecordFileError, match="cannot read results"):
        read_records(tmp_path / "absent.jsonl")


# -- record content -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "channel_axis", "layout"),
    [
        pytest.param((2, 3, 4), 1, "channels_first", id="rank3-axis1"),
        pytest.param((2, 4, 3), -1, "channels_last", id="rank3-axis-minus1"),
        pytest.param((2, 4, 3, 5), 2, "other", id="rank4-axis2"),
        pytest.param((4, 3), 1, "channels_first", id="rank2"),
    ],
)
def test_result_record_says_what_ran_and_what_was_found(shape, channel_axis, layout):
    """A record is self-contained: framework and version, device, dtype, rank, layout, verdict, ratio and the case."""
    channels = shape[channel_axis]
    case = _case(shape=shape, channel_axis=channel_axis, x=Generator(seed=1), running_var=np.ones(channels))
    comparison = Comparison("dx", DISCREPANCY, allowed=0.5, error_at_worst=1.0, ratio=2.0, mismatched=1, total=24)
    hard = Conditioning(offset_ratio=3.0, constant_channels=0, one_value_per_channel=False)
    record = result_record(run_id="r", prop="numerics", framework="torch:channels_last", framework_version="2.3.0",
                           case=case, comparison=comparison, conditioning=hard)  # fmt: skip
    assert (record.kind, record.schema_version) == ("result", RECORD_SCHEMA_VERSION)
    assert (record.property, record.framework, record.framework_version) == ("numerics", "torch:channels_last", "2.3.0")
    assert (record.device, record.dtype, record.rank) == ("cpu", "float16", len(shape))
    assert record.channel_axis == case.layout.axis >= 0
    assert record.layout == layout
    assert (record.quantity, record.verdict, record.ratio) == ("dx", DISCREPANCY, 2.0)
    assert record.conditioning.offset_ratio == 3.0
    assert record.case == case_to_json(case)
    back = parse_case(json.loads(json.dumps(record.case)))
    assert (back.shape, back.channel_axis, back.dtype, back.x) == (case.shape, case.channel_axis, case.dtype, case.x)


def test_made_records_round_trip_through_the_file(tmp_path):
    """A record with non-finite errors and array data in its case survives writing and reading."""
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    x[0, 1] = np.nan
    case = _case(shape=(2, 3), x=x, running_var=None)
    comparison = Comparison("y_eval", PASS, ratio=math.inf, worst_index=(0, 1), total=6)
    record = result_record(run_id="r", prop="numerics", framework="flax", framework_version="0.8", case=case,
                           comparison=comparison)  # fmt: skip
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(record)
    (back,) = read_records(path)
    assert back == record
    np.testing.assert_array_equal(parse_case(back.case).x, x)


def _inventory() -> Inventory:
    return Inventory(variables=[], trainable_count=6, non_trainable_count=7, total_count=13,
                     reported={"count_params()": 13},
                     canonical=CanonicalCounts(trainable=6, running_statistics=6, total=12))  # fmt: skip


def test_every_kind_round_trips_through_the_file(tmp_path):
    """Each kind reads back as its own model, equal to what was written."""
    common = {"run_id": "r", "framework": "torch", "framework_version": "2.3.0", "case": _case()}
    written = [
        environment_record("r", hypothesis_profile="ci", device="cpu"),
        framework_record("r", "torch", "2.3.0", {"cuda_available": "False"}),
        _result(),
        count_record(**common, quantity="total_count", observed=13, canonical=12, inventory=_inventory()),
        probe_record(**common, convention="eps_default", declared=1e-5, probed=1e-3, agrees=False,
                     evidence={"observed_y": math.inf}, declared_conventions={"ε default": "1e-05"}),
        ledger_record(**common, entry_id="torch-counter", reproduced=True, explained_quantities=["total_count"]),
        error_record(run_id=None, prop="process", framework="torch", message="crashed with SIGSEGV", cause="crash"),
        run_end_record("r", exit_status=2, outcome="interrupted", interrupted=True, checks=5),
    ]  # fmt: skip
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        for record in written:
            writer.write(record)
    back = read_records(path)
    assert [r.kind for r in back] == ["environment", "framework", "result", "count", "probe", "ledger", "error", "run_end"]
    assert back == written


def test_count_probe_and_ledger_records_decide_their_verdict():
    common = {"run_id": "r", "framework": "torch", "framework_version": "2.3.0", "case": _case()}
    count = count_record(**common, quantity="total_count", observed=13, canonical=12, inventory=_inventory())
    assert isinstance(count, CountRecord)
    assert (count.verdict, count.message) == (DISCREPANCY, "total_count: the framework reports 13, the canonical count is 12")
    probe = probe_record(**common, convention="eps_placement", declared="inside", probed="inside", agrees=True,
                         evidence={}, declared_conventions={})  # fmt: skip
    assert isinstance(probe, ProbeRecord)
    assert (probe.verdict, probe.convention, probe.property) == (PASS, "eps_placement", "conventions")
    neither = probe_record(**common, convention="eps_placement", declared="inside", probed="neither", agrees=False,
                           evidence={}, declared_conventions={}, message="eps_placement: observed 0.41, no candidate")  # fmt: skip
    assert (neither.verdict, neither.message) == (DISCREPANCY, "eps_placement: observed 0.41, no candidate")
    ledger = ledger_record(**common, entry_id="e1", reproduced=False, explained_quantities=[], message="gone")
    assert isinstance(ledger, LedgerRecord)
    assert (ledger.verdict, ledger.entry_id, ledger.message) == (DISCREPANCY, "e1", "gone")


def test_an_error_without_its_case_has_no_case():
    """A crash between checks names no case: ``case`` and what derives from it are null, not a placeholder."""
    record = error_record(run_id=None, prop="process", framework="torch", message="crashed", cause="crash")
    assert isinstance(record, ErrorRecord)
    assert (record.case, record.dtype, record.rank, record.layout) == (None, None, None, None)
    assert (record.verdict, record.quantity, record.device) == ("error", "*", "unknown")


# -- the codec ------------------------------------------------------------------------------


def test_codec_writes_non_finite_numbers_as_text_and_reads_them_back_where_numbers_are_expected():
    value = {"a": [math.inf, -math.inf, math.nan, np.float32(0.5), np.int64(3), (1, 2)], "b": np.array([1.0, np.inf])}
    text = jsoncodec.dumps(value)
    assert _strict(text) == {"a": ["inf", "-inf", "nan", 0.5, 3, [1, 2]], "b": [1.0, "inf"]}
    assert [jsoncodec.decode_float(v) for v in ("inf", "-inf", "+inf", "text", 2)] == [math.inf, -math.inf, math.inf,
                                                                                       "text", 2]  # fmt: skip
    assert jsoncodec.as_number("inf") == math.inf
    assert jsoncodec.as_number(True) is None
    assert jsoncodec.as_number("text") is None


def test_codec_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="cannot encode object as JSON"):
        jsoncodec.dumps({"thing": object()})


def test_the_accuracy_grade_is_carried_and_records_written_before_it_still_read(tmp_path):
    """The grade is an optional field of schema version 2: a record without it (written before
    the grade existed) still reads, with no grade, and an infinite grade is written as text."""
    graded = Comparison("y_train", DISCREPANCY, max_abs_error=1.0, ratio=2.0, stable_error=1e-6, accuracy_grade=math.inf)
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(_result("y_train", comparison=graded))
    older = _strict(path.read_text(encoding="utf-8"))
    assert (older["accuracy_grade"], older["stable_error"]) == ("inf", 1e-6)
    del older["accuracy_grade"], older["stable_error"]
    path.write_text(path.read_text(encoding="utf-8") + json.dumps(older) + "\n", encoding="utf-8")
    now, before = read_records(path)
    assert (now.accuracy_grade, now.stable_error) == (math.inf, 1e-6)
    assert (before.accuracy_grade, before.stable_error) == (None, None)
