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
    raw = {"id": entry_id, "kind": "defect", "severity": "nan_inf", "reason": "why", "upstream": "not yet reported",
           "match": {"framework": ["torch"]}, "evidence": {"command": "bnconf ..."}}  # fmt: skip
    raw.update(overrides)
    return {key: value for key, value in raw.items() if value is not None}


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
    convention = {"kind": "convention", "unmodelled": "why", "upstream": None}
    _write(tmp_path, "a.json", {"framework": "torch", "entries": [_raw("a1", **convention), _raw("a2")]})
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
        pytest.param({"entries": [_raw(kind=None)]}, r"entry 0 \(e1\): missing field 'kind' \(one of: convention, ",
                     id="missing-kind"),
        pytest.param({"entries": [_raw(severity=None)]}, r"entry 0 \(e1\): missing field 'severity' \(one of: nan_inf, ",
                     id="missing-severity"),
        pytest.param({"entries": [_raw(kind="bug")]}, r"\(e1\): kind must be one of convention, numerical, defect, "
                     r"out_of_domain; got 'bug'", id="unknown-kind"),
        pytest.param({"entries": [_raw(severity="bad")]}, r"\(e1\): severity must be one of .*; got 'bad'",
                     id="unknown-severity"),
        pytest.param({"entries": [_raw(upstream=None)]}, r"\(e1\): a defect entry needs 'upstream'", id="defect-no-upstream"),
        pytest.param({"entries": [_raw(upstream="issue 12")]}, r"\(e1\): upstream must be a URL or 'not yet reported'",
                     id="defect-upstream-not-a-link"),
        pytest.param({"entries": [_raw(kind="numerical")]}, r"\(e1\): a numerical entry needs 'data'", id="numerical-no-data"),
        pytest.param({"entries": [_raw(kind="convention", unmodelled=" ")]}, r"\(e1\): a convention entry needs 'unmodelled'",
                     id="convention-blank-reason"),
        pytest.param({"entries": [_raw(kind="out_of_domain")]}, r"\(e1\): an? out_of_domain entry needs 'bound'",
                     id="out-of-domain-no-bound"),
        pytest.param({"entries": [_raw(kind="numerical", data="offset", bound="x")]},
                     r"\(e1\): 'bound' belongs to out_of_domain entries, not to a numerical entry", id="field-of-another-kind"),
        pytest.param({"entries": [_raw(device="tpu")]}, r"\(e1\): device must be one of cpu, gpu; got 'tpu'", id="unknown-device"),
        pytest.param({"entries": [_raw(backend={"cudnn": True})]}, r"\(e1\): backend must map device_info keys to text",
                     id="backend-not-text"),
    ],
)  # fmt: skip
def test_bad_ledger_files_name_the_file_and_the_problem(tmp_path, document, message):
    """A broken ledger is a LedgerError that points at the file (and the entry), never a KeyError or a silent skip."""
    path = _write(tmp_path, "torch.json", document)
    with pytest.raises(LedgerError, match=message) as raised:
        load_ledger(tmp_path)
    assert str(path) in str(raised.value)


def test_a_bad_entry_is_one_line_naming_file_and_entry(tmp_path):
    """What a user sees of a ledger without a kind: one line with the file and the entry, no traceback text."""
    path = _write(tmp_path, "torch.json", {"entries": [_raw(), _raw("e2", kind=None)]})
    with pytest.raises(LedgerError) as raised:
        load_ledger(tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: entry 1 (e2): missing field 'kind'")


def test_each_kind_loads_with_its_own_field(tmp_path):
    """The four kinds each load with the field they owe; the entry keeps kind, severity and that field."""
    raws = [_raw("c", kind="convention", unmodelled="why not modelled", upstream=None),
            _raw("n", kind="numerical", data="offset data", upstream="https://example.org/1"),
            _raw("d", upstream="https://github.com/o/r/issues/1"),
            _raw("o", kind="out_of_domain", bound="momentum in (0, 1)", upstream=None, severity="cosmetic")]  # fmt: skip
    _write(tmp_path, "x.json", {"entries": raws})
    entries = {e.id: e for e in load_ledger(tmp_path).entries}
    assert (entries["c"].kind, entries["c"].unmodelled) == ("convention", "why not modelled")
    assert (entries["n"].kind, entries["n"].data, entries["n"].reported_upstream) == ("numerical", "offset data", True)
    assert entries["d"].reported_upstream
    assert not load_ledger_entry(tmp_path, _raw("d2")).reported_upstream
    assert (entries["o"].bound, entries["o"].severity) == ("momentum in (0, 1)", "cosmetic")


def load_ledger_entry(directory: Path, raw: dict) -> Entry:
    folder = directory / raw["id"]
    folder.mkdir()
    _write(folder, "one.json", {"entries": [raw]})
    return load_ledger(folder).entries[0]


# -- device scope ---------------------------------------------------------------------------


def test_a_device_scoped_entry_explains_findings_on_its_device_only():
    """A GPU finding is not a CPU one: the same symptom on the CPU stays unexpected."""
    gpu = Entry(id="g", reason="r", match={"framework": ["flax"]}, evidence={}, device="gpu")
    assert gpu.explains({**RECORD, "device": "gpu"})
    assert not gpu.explains({**RECORD, "device": "cpu"})
    assert not gpu.explains(RECORD)  # a record that names no device
    assert _entry(framework=["flax"]).explains({**RECORD, "device": "gpu"})  # unscoped: any device


@pytest.mark.parametrize(
    ("device", "backend", "session", "info", "reason"),
    [
        pytest.param(None, {}, "cpu", {}, None, id="unscoped"),
        pytest.param("gpu", {}, "cpu", {}, "not replayed here: needs gpu", id="gpu-entry-on-cpu"),
        pytest.param("gpu", {}, "gpu", {}, None, id="gpu-entry-on-gpu"),
        pytest.param("gpu", {"cudnn": "on"}, "gpu", {"cudnn": "off"}, "not replayed here: needs cudnn=on", id="backend-off"),
        pytest.param("gpu", {"cudnn": "on"}, "gpu", {"cudnn": "on"}, None, id="backend-on"),
        pytest.param(None, {"cudnn": "on"}, "cpu", {}, "not replayed here: needs cudnn=on", id="backend-missing"),
    ],
)  # fmt: skip
def test_scope_reason_says_what_a_replay_needs(device, backend, session, info, reason):
    entry = Entry(id="e", reason="r", match={}, evidence={}, device=device, backend=backend)
    assert entry.scope_reason(session, info) == reason


def test_the_ledger_folder_can_be_replaced_by_an_environment_variable(tmp_path, monkeypatch):
    from conformance.judging import ledger as module

    _write(tmp_path, "own.json", {"entries": [_raw("own-entry", evidence={"command": "c", "case_file": "cases/x.json"})]})
    monkeypatch.setenv(module.LEDGER_DIR_VARIABLE, str(tmp_path))
    module.default_ledger.cache_clear()
    try:
        entries = module.default_ledger().entries
        assert [e.id for e in entries] == ["own-entry"]
        assert entries[0].case_path == tmp_path / "cases" / "x.json"  # evidence beside its own ledger file
        monkeypatch.setenv(module.LEDGER_DIR_VARIABLE, str(tmp_path / "absent"))
        module.default_ledger.cache_clear()
        with pytest.raises(LedgerError, match="expected a folder of ledger files"):
            module.default_ledger()
    finally:
        monkeypatch.delenv(module.LEDGER_DIR_VARIABLE)
        module.default_ledger.cache_clear()


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


def test_project_ledger_files_follow_the_published_schema():
    """Every shipped ledger file validates against the model behind docs/ledger-schema.json, and
    the committed schema is the one the model generates (regenerate with
    ``python -m conformance.judging.ledger --schema > docs/ledger-schema.json``)."""
    from conformance.judging.ledger import LEDGER_DIR, LedgerDocument, ledger_json_schema

    for path in sorted(LEDGER_DIR.glob("*.json")):
        LedgerDocument.model_validate_json(path.read_text(encoding="utf-8"))
    committed = json.loads((Path(__file__).parent.parent / "docs" / "ledger-schema.json").read_text(encoding="utf-8"))
    assert committed == ledger_json_schema()


@pytest.mark.parametrize("entry", _project_entries())
def test_project_ledger_entry_is_classified(entry):
    """Kind and severity from the closed sets, with the kind's own field filled in."""
    from conformance.judging.ledger import KIND_FIELDS
    from datamodel.findings import FINDING_KINDS, SEVERITIES

    assert entry.kind in FINDING_KINDS
    assert entry.severity in SEVERITIES
    assert getattr(entry, KIND_FIELDS[entry.kind][0]).strip()


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
