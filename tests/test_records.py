"""Result records: the JSON-lines file every report is built from.

The file must survive a killed run (each line flushed as written, a torn last line
skipped), stay strict JSON (no NaN/Infinity tokens, which many readers reject), refuse
records of another schema version, and carry enough to reproduce each check (the case as
a case-file document).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conformance.judging.compare import DISCREPANCY, PASS, Comparison
from datamodel.case import Case, Generator
from datamodel.casefile import case_to_json, parse_case
from datamodel.records import RECORD_SCHEMA_VERSION, RecordFileError, RecordWriter, make_record, read_records


def _record(**fields) -> dict:
    return {"schema_version": RECORD_SCHEMA_VERSION, "framework": "torch", **fields}


def _strict(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-standard JSON token {token!r} in the results file")

    return json.loads(text, parse_constant=refuse)


def _case(**overrides) -> Case:
    fields = {
        "shape": (2, 3, 4), "channel_axis": 1, "dtype": "float16", "x": Generator(seed=3, loc=(1.0, 2.0, 3.0)),
        "eps": 1e-3, "decay": 0.9, "running_var": np.array([1.0, 2.0, 3.0]), "device": "cpu",
        "extra": {"conditioning": "offset"},
    }  # fmt: skip
    fields.update(overrides)
    return Case(**fields)


# -- writing --------------------------------------------------------------------------------


def test_writer_appends_one_line_per_record_readable_before_close(tmp_path):
    """Each record is on disk as soon as ``write`` returns: a run killed later keeps it."""
    path = tmp_path / "results" / "run.jsonl"  # the parent is created
    writer = RecordWriter(path)
    try:
        writer.write(_record(quantity="y_eval"))
        assert read_records(path) == [_record(quantity="y_eval")]
        writer.write(_record(quantity="dx"))
        assert path.read_text(encoding="utf-8").count("\n") == 2
        assert [r["quantity"] for r in read_records(path)] == ["y_eval", "dx"]
    finally:
        writer.close()


def test_writer_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(_record(n=1))
    with RecordWriter(path) as writer:
        writer.write(_record(n=2))
    assert [r["n"] for r in read_records(path)] == [1, 2]


def test_non_finite_floats_are_written_as_strings_and_the_file_is_strict_json(tmp_path):
    """NaN and ±inf anywhere in a record (nested too) become "nan"/"inf"/"-inf"; tuples become lists."""
    path = tmp_path / "run.jsonl"
    record = _record(
        ratio=math.inf, max_abs_error=-math.inf, allowed=math.nan, finite=np.float64(0.5), count=np.int64(7),
        nested={"values": [1.0, math.nan, (math.inf, -math.inf)]}, worst_index=(1, 2),
    )  # fmt: skip
    with RecordWriter(path) as writer:
        writer.write(record)
    (line,) = path.read_text(encoding="utf-8").splitlines()
    written = _strict(line)
    assert (written["ratio"], written["max_abs_error"], written["allowed"]) == ("inf", "-inf", "nan")
    assert written["nested"] == {"values": [1.0, "nan", ["inf", "-inf"]]}
    assert (written["finite"], written["count"], written["worst_index"]) == (0.5, 7, [1, 2])


def test_writer_refuses_values_it_cannot_encode(tmp_path):
    with RecordWriter(tmp_path / "run.jsonl") as writer, pytest.raises(TypeError, match="cannot encode object"):
        writer.write(_record(thing=object()))


# -- reading --------------------------------------------------------------------------------


def _lines(tmp_path, *lines: str):
    path = tmp_path / "run.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_torn_last_line_of_a_killed_run_is_skipped(tmp_path):
    """A run killed mid-write leaves a partial last line; every complete record before it is kept."""
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(_record(n=1))
        writer.write(_record(n=2))
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(_record(n=3))[:17])  # no newline: the process died here
    assert [r["n"] for r in read_records(path)] == [1, 2]


def test_blank_lines_are_ignored(tmp_path):
    path = _lines(tmp_path, json.dumps(_record(n=1)), "", "   ", json.dumps(_record(n=2)))
    assert [r["n"] for r in read_records(path)] == [1, 2]


@pytest.mark.parametrize(
    ("lines", "where", "message"),
    [
        pytest.param(["{not json", json.dumps(_record())], 1, "not a JSON record", id="bad-json-first-line"),
        pytest.param([json.dumps(_record()), '{"schema_version": 1, "ratio": ', json.dumps(_record())], 2,
                     "not a JSON record", id="torn-line-in-the-middle"),
        pytest.param([json.dumps(_record()), "[1, 2, 3]"], 2, r"not a result record \(no schema_version\)",
                     id="array-line"),
        pytest.param([json.dumps({"framework": "torch"})], 1, r"not a result record \(no schema_version\)",
                     id="object-without-schema-version"),
        pytest.param(["42", json.dumps(_record())], 1, "not a result record", id="number-line"),
    ],
)  # fmt: skip
def test_bad_lines_name_the_file_and_line(tmp_path, lines, where, message):
    """Only the last line may be torn; anything else unreadable is an error at file:line."""
    path = _lines(tmp_path, *lines)
    with pytest.raises(RecordFileError, match=message) as raised:
        read_records(path)
    assert str(raised.value).startswith(f"{path}:{where}: ")


@pytest.mark.parametrize("version", [0, RECORD_SCHEMA_VERSION + 1, "1"], ids=["older", "newer", "string"])
def test_records_of_another_schema_version_are_refused(tmp_path, version):
    """A reader of version 1 does not guess at other layouts; the message names both versions."""
    path = _lines(tmp_path, json.dumps(_record()), json.dumps({**_record(), "schema_version": version}))
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
def test_make_record_says_what_ran_and_what_was_found(shape, channel_axis, layout):
    """A record is self-contained: framework and version, device, dtype, rank, layout, verdict, ratio and the case."""
    channels = shape[channel_axis]
    case = _case(shape=shape, channel_axis=channel_axis, x=Generator(seed=1), running_var=np.ones(channels))
    comparison = Comparison("dx", DISCREPANCY, allowed=0.5, error_at_worst=1.0, ratio=2.0, mismatched=1, total=24)
    record = make_record(prop="numerics", framework="torch:channels_last", framework_version="2.3.0", case=case,
                         comparison=comparison, extra={"conditioning": {"offset_ratio": 3.0}})  # fmt: skip
    assert record["schema_version"] == RECORD_SCHEMA_VERSION
    assert (record["property"], record["framework"], record["framework_version"]) == (
        "numerics",
        "torch:channels_last",
        "2.3.0",
    )
    assert (record["device"], record["dtype"], record["rank"]) == ("cpu", "float16", len(shape))
    assert record["channel_axis"] == case.layout.axis >= 0
    assert record["layout"] == layout
    assert (record["quantity"], record["verdict"], record["ratio"]) == ("dx", DISCREPANCY, 2.0)
    assert record["conditioning"] == {"offset_ratio": 3.0}
    assert record["case"] == case_to_json(case)
    back = parse_case(json.loads(json.dumps(record["case"])))
    assert (back.shape, back.channel_axis, back.dtype, back.x) == (case.shape, case.channel_axis, case.dtype, case.x)


def test_made_records_round_trip_through_the_file(tmp_path):
    """A record with non-finite errors and array data in its case survives writing and reading."""
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    x[0, 1] = np.nan
    case = _case(shape=(2, 3), x=x, running_var=None)
    comparison = Comparison("y_eval", PASS, ratio=math.inf, worst_index=(0, 1), total=6)
    record = make_record(prop="numerics", framework="flax", framework_version="0.8", case=case, comparison=comparison)
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        writer.write(record)
    (back,) = read_records(path)
    assert back["ratio"] == "inf"
    assert back["worst_index"] == [0, 1]
    case_back = parse_case(back["case"])
    np.testing.assert_array_equal(case_back.x, x)
