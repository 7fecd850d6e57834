"""Hostile records files: reading one returns records or fails with one line, never anything else.

``datamodel.records.read_records`` is fed arbitrary lines (valid records, records with a
field changed to any JSON value, JSON values of every kind, text, bytes that are not UTF-8,
deep nesting, huge integers) joined and cut at any point.  It returns record models or
raises ``RecordFileError`` with a one-line message naming the file; any other exception is
a bug.  ``bnconf report`` on such a file exits 2 with one ``bnconf: error: ...`` line.
The fuzz tests draw a bounded number of inputs with fixed settings, independent of the
suite's hypothesis profiles.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.orchestration.cli import main
from conformance.orchestration.exitcodes import EXIT_USAGE
from datamodel import jsoncodec
from datamodel.records import (
    RecordFileError,
    environment_record,
    error_record,
    framework_record,
    read_records,
    run_end_record,
)

FUZZ = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip

VALID = [
    jsoncodec.dumps(record.model_dump())
    for record in (
        environment_record("r1", hypothesis_profile="ci", device="cpu"),
        framework_record("r1", "torch", "2.3.0", {}),
        error_record(run_id="r1", prop="process", framework="torch", message="crashed with SIGSEGV", cause="crash"),
        run_end_record("r1", exit_status=0, outcome="ok", interrupted=False, checks=1),
    )
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def edited_records(draw) -> str:
    """A valid record with one field replaced by any JSON value (or a new field added)."""
    document = json.loads(draw(st.sampled_from(VALID)))
    key = draw(st.sampled_from([*document, "schema_version", "kind", "extra"]))
    document[key] = draw(JSON)
    return json.dumps(document)


LINES = st.one_of(
    st.sampled_from(VALID).map(str.encode),
    edited_records().map(str.encode),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.just(b"9" * 5000),  # more digits than Python converts to an int by default
    st.just(b'{"schema_version": 2, "kind": "run_end", "run_id": "r", "exit_status": 1e400, "outcome": "x"}'),
)


def _assert_one_line_failure(error: RecordFileError, path) -> None:
    message = str(error)
    assert message.startswith(str(path))
    assert "\n" not in message
    assert "\r" not in message


@FUZZ
@given(lines=st.lists(LINES, max_size=6), cut=st.none() | st.integers(min_value=0), trailing_newline=st.booleans())
def test_fuzzed_records_files_read_or_fail_with_one_line(tmp_path_factory, lines, cut, trailing_newline):
    content = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    if cut is not None:
        content = content[: cut % (len(content) + 1)]
    path = tmp_path_factory.mktemp("fuzz") / "records.jsonl"
    path.write_bytes(content)
    try:
        records = read_records(path)
    except RecordFileError as error:
        _assert_one_line_failure(error, path)
    else:
        assert all(record.kind in {"environment", "framework", "error", "run_end"} for record in records)


@FUZZ
@given(cut=st.integers(min_value=0))
def test_valid_records_cut_anywhere_keep_every_complete_line(tmp_path_factory, cut):
    """A killed writer: the file ends anywhere; every complete line reads back, a torn one is skipped."""
    whole = "".join(line + "\n" for line in VALID).encode()
    content = whole[: cut % (len(whole) + 1)]
    path = tmp_path_factory.mktemp("cut") / "records.jsonl"
    path.write_bytes(content)
    complete = sum(whole.index(line.encode()) + len(line) <= len(content) for line in VALID)
    assert len(read_records(path)) == complete


MALFORMED = {
    "bad-json-line": VALID[0] + "\n{not json\n" + VALID[1] + "\n",
    "not-utf8": VALID[0] + "\n\xff\xfe\n",
    "deeply-nested": "[" * 100_000 + "]" * 100_000 + "\n",
    "huge-integer": "9" * 5000 + "\n",
    "unknown-kind": '{"schema_version": 2, "kind": "guess", "run_id": "r"}\n',
    "not-an-object": "[1, 2, 3]\n",
}


@pytest.mark.parametrize("content", list(MALFORMED.values()), ids=list(MALFORMED))
def test_bnconf_report_on_a_malformed_records_file_exits_2_with_one_line(capsys, tmp_path, content):
    path = tmp_path / "records.jsonl"
    path.write_bytes(content.encode("latin-1"))  # "\xff\xfe" as those bytes: not UTF-8
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(path), "-o", str(tmp_path / "out")])
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"bnconf: error: {path}:")
    assert err.count("\n") == 1
    assert "Traceback" not in err


@settings(FUZZ, max_examples=50)
@given(lines=st.lists(LINES, min_size=1, max_size=4))
def test_bnconf_report_never_shows_a_traceback(capsys, tmp_path_factory, lines):
    out = tmp_path_factory.mktemp("report")
    path = out / "records.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        code = main(["report", str(path), "-o", str(out / "html")])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code in (0, 1, EXIT_USAGE)
    if code == EXIT_USAGE:
        assert err.startswith("bnconf: error: ")
        assert err.count("\n") == 1
    assert "Traceback" not in err
