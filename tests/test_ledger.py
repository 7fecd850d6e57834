"""The known-discrepancy ledger: loading (with errors that name the file and entry) and matching.

A finding the ledger does not explain fails a run, and one it wrongly explains is silently
accepted, so both the loader's checks and ``Entry.explains`` are pinned here, along with
the shape of the project's own ledger (every entry carries a reason, reproducible evidence
and a command).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.judging.ledger import Entry, Ledger, LedgerError, default_ledger, load_ledger
from datamodel.casefile import load_case


def _raw(entry_id: str = "e1", **overrides) -> dict:
    raw = {"id": entry_id, "reason": "why", "match": {"framework": ["torch"]}, "evidence": {"command": "bnconf ..."}}
    raw.update(overrides)
    return raw


def _write(directory: Path, name: str, document) -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def _entry(**match) -> Entry:
    return Entry(id="e", reason="r", match=match, evidence={})


# -- loading --------------------------------------------------------------------------------


def test_load_valid_files_in_name_order(tmp_path):
    """Entries of every *.json file load, files in sorted order, each entry knowing its source file."""
    _write(tmp_path, "b.json", {"entries": [_raw("b1", upstream="https://example.org/1")]})
    _write(tmp_path, "a.json", {"framework": "torch", "entries": [_raw("a1"), _raw("a2")]})
    _write(tmp_path, "notes.txt", "not a ledger file")
    ledger = load_ledger(tmp_path)
    assert [e.id for e in ledger.entries] == ["a1", "a2", "b1"]
    assert ledger.entries[0].source == str(tmp_path / "a.json")
    assert ledger.entries[2].upstream == "https://example.org/1"
    assert ledger.entries[0].upstream is None


def test_empty_directory_gives_an_empty_ledger(tmp_path):
    assert load_ledger(tmp_path).entries == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param('{"entries": [', "not valid JSON", id="invalid-json"),
        pytest.param({"framework": "torch"}, "expected an object with a list 'entries'", id="missing-entries"),
        pytest.param({"entries": {"id": "x"}}, "expected an object with a list 'entries'", id="entries-not-a-list"),
        pytest.param([_raw()], "expected an object with a list 'entries'", id="root-is-a-list"),
        pytest.param({"entries": ["e1"]}, "entry 0: expected an object, got str", id="entry-not-an-object"),
        pytest.param({"entries": [_raw(), {k: v for k, v in _raw("e2").items() if k != "reason"}]},
                     "entry 1: missing field 'reason'", id="entry-missing-reason"),
        pytest.param({"entries": [_raw(match={"framework": ["torch"], "dtype": ["float16"]})]},
                     r"entry 0 \(e1\): unknown match keys \['dtype'\]", id="unknown-match-key"),
        pytest.param({"entries": [_raw(match={"verdict": "discrepancy"})]},
                     r"entry 0 \(e1\): match.verdict must be a list", id="match-value-not-a-list"),
        pytest.param({"entries": [_raw("same"), _raw("same")]}, "duplicate entry id 'same'", id="duplicate-id"),
    ],
)  # fmt: skip
def test_bad_ledger_files_name_the_file_and_the_problem(tmp_path, document, message):
    """A broken ledger is a LedgerError that points at the file (and the entry), never a KeyError or a silent skip."""
    path = _write(tmp_path, "torch.json", document)
    with pytest.raises(LedgerError, match=message) as raised:
        load_ledger(tmp_path)
    assert str(path) in str(raised.value)


def test_duplicate_ids_across_files_are_refused(tmp_path):
    """Ids are unique over the whole ledger: records refer to entries by id alone."""
    _write(tmp_path, "flax.json", {"entries": [_raw("shared")]})
    second = _write(tmp_path, "torch.json", {"entries": [_raw("shared")]})
    with pytest.raises(LedgerError, match="duplicate entry id 'shared'") as raised:
        load_ledger(tmp_path)
    assert str(second) in str(raised.value)


# -- matching -------------------------------------------------------------------------------

RECORD = {
    "framework": "flax",
    "property": "numerics",
    "quantity": "y_train",
    "verdict": "discrepancy",
    "dtype": "float32",
    "conditioning": {
        "offset_ratio": 25.0,
        "one_value_per_channel": False,
        "class": "offset",
        "min_var_over_eps": "inf",
    },
}


@pytest.mark.parametrize(
    ("match", "explained"),
    [
        pytest.param({}, True, id="empty-match-explains-everything"),
        pytest.param({"framework": ["torch", "flax"]}, True, id="framework-listed"),
        pytest.param({"framework": ["torch"]}, False, id="framework-not-listed"),
        pytest.param({"property": ["numerics"], "quantity": ["y_train", "dx"]}, True, id="property-and-quantity"),
        pytest.param({"quantity": ["dx"]}, False, id="quantity-not-listed"),
        pytest.param({"verdict": ["error"]}, False, id="verdict-not-listed"),
        pytest.param({"framework": ["flax"], "verdict": ["error"]}, False, id="every-key-must-match"),
        pytest.param({"where": {"conditioning.offset_ratio": {"min": 10}}}, True, id="min-met"),
        pytest.param({"where": {"conditioning.offset_ratio": {"min": 25.0}}}, True, id="min-inclusive"),
        pytest.param({"where": {"conditioning.offset_ratio": {"min": 30}}}, False, id="min-not-met"),
        pytest.param({"where": {"conditioning.offset_ratio": {"max": 25.0}}}, True, id="max-inclusive"),
        pytest.param({"where": {"conditioning.offset_ratio": {"max": 20}}}, False, id="max-exceeded"),
        pytest.param({"where": {"conditioning.offset_ratio": {"min": 10, "max": 20}}}, False, id="range-above"),
        pytest.param({"where": {"dtype": "float32"}}, True, id="exact-value"),
        pytest.param({"where": {"dtype": "float16"}}, False, id="exact-value-differs"),
        pytest.param({"where": {"dtype": ["float16", "float32"]}}, True, id="one-of-values"),
        pytest.param({"where": {"conditioning.one_value_per_channel": True}}, False, id="exact-boolean-differs"),
        pytest.param({"where": {"conditioning.class": "offset"}}, True, id="dotted-exact"),
        pytest.param({"where": {"conditioning.missing": {"min": 0}}}, False, id="missing-path-range"),
        pytest.param({"where": {"conditioning.missing": "x"}}, False, id="missing-path-exact"),
        pytest.param({"where": {"dtype.sub": "x"}}, False, id="path-through-a-non-object"),
        pytest.param({"where": {"conditioning.min_var_over_eps": {"min": 1e300}}}, True, id="inf-string-above-min"),
        pytest.param({"where": {"conditioning.min_var_over_eps": {"max": 1e300}}}, False, id="inf-string-above-max"),
        pytest.param({"where": {"conditioning.offset_ratio": {"min": 10}, "dtype": "float16"}}, False, id="all-conditions"),
    ],
)  # fmt: skip
def test_entry_explains(match, explained):
    """Lists mean "one of"; ``where`` paths are dotted into nested objects; a missing path never matches.

    "inf" is how result records write an infinite float, so a ``min`` condition accepts it.
    """
    assert _entry(**match).explains(RECORD) is explained


def test_explain_returns_the_first_matching_entry():
    """Order decides between overlapping entries, so a record is credited to one entry only."""
    narrow = Entry(id="narrow", reason="r", match={"quantity": ["dx"]}, evidence={})
    broad = Entry(id="broad", reason="r", match={"framework": ["flax"]}, evidence={})
    broader = Entry(id="broader", reason="r", match={}, evidence={})
    ledger = Ledger([narrow, broad, broader])
    assert ledger.explain(RECORD) is broad
    assert ledger.explain({**RECORD, "quantity": "dx"}) is narrow
    assert ledger.explain({**RECORD, "framework": "keras"}) is broader
    assert Ledger([narrow]).explain(RECORD) is None


def test_for_framework_includes_entries_without_a_framework_list():
    """An entry that names no framework applies to every framework spec."""
    torch = Entry(id="torch", reason="r", match={"framework": ["torch", "torch:channels_last"]}, evidence={})
    anyone = Entry(id="any", reason="r", match={"verdict": ["error"]}, evidence={})
    ledger = Ledger([torch, anyone])
    assert [e.id for e in ledger.for_framework("torch:channels_last")] == ["torch", "any"]
    assert [e.id for e in ledger.for_framework("flax")] == ["any"]


# -- the project's ledger -------------------------------------------------------------------


def _project_entries():
    return [pytest.param(entry, id=entry.id) for entry in default_ledger().entries]


def test_project_ledger_loads_and_has_entries():
    assert len(default_ledger().entries) > 0


@pytest.mark.parametrize("entry", _project_entries())
def test_project_ledger_entry_is_documented_and_reproducible(entry):
    """Every shipped entry says why, how to reproduce (a loadable case file or an inventory spec) and the command."""
    assert entry.reason.strip()
    assert entry.evidence.get("command", "").strip()
    assert entry.case_path is not None or "inventory" in entry.evidence
    if entry.case_path is not None:
        assert entry.case_path.is_file(), entry.case_path
        case = load_case(entry.case_path)
        assert case.rank >= 2
    else:
        spec = entry.evidence["inventory"]
        assert len(spec["shape"]) >= 2
        assert -len(spec["shape"]) <= spec["channel_axis"] < len(spec["shape"])


def test_entry_explains_a_record_model_by_its_fields():
    """Ledger conditions name fields of the typed records (``datamodel.records``), nested ones dotted."""
    from conformance.judging.compare import Comparison
    from datamodel.case import Case, Generator
    from datamodel.records import Conditioning, result_record

    case = Case(shape=(4, 3), channel_axis=1, dtype="float32", x=Generator())
    record = result_record(
        run_id="r", prop="numerics", framework="flax", framework_version="0.8", case=case,
        comparison=Comparison("y_train", "discrepancy", ratio=float("inf")),
        conditioning=Conditioning(offset_ratio=25.0, constant_channels=0, one_value_per_channel=False,
                                  worst_channel_offset_ratio=float("inf")),
    )  # fmt: skip
    assert _entry(framework=["flax"], where={"conditioning.worst_channel_offset_ratio": {"min": 10}}).explains(record)
    assert not _entry(where={"conditioning.offset_ratio": {"max": 20}}).explains(record)
    assert _entry(where={"ratio": {"min": 1e300}, "layout": "channels_first"}).explains(record)
    assert Ledger([_entry(quantity=["y_train"])]).explain(record) is not None
