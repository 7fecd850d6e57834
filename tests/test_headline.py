"""The report's lead: findings in one sentence each, and the compact tables, from records."""

from __future__ import annotations

from conformance.judging.compare import Comparison
from datamodel.case import Case, Generator
from datamodel.records import result_record
from reports.headline import engine_property_grid, finding_sentences, parameter_counts

CASE = Case(shape=(4, 2), channel_axis=1, dtype="float32", x=Generator(seed=0))


def _result(framework, quantity, verdict, ratio, known=None, prop="training"):
    record = result_record(run_id=None, prop=prop, framework=framework, framework_version="1", case=CASE,
                           comparison=Comparison(quantity, verdict, max_abs_error=ratio, allowed=1.0, ratio=ratio))  # fmt: skip
    return record.model_copy(update={"known": known, "replay": f"bnconf replay c.json --frameworks {framework}"})


def test_one_sentence_per_kind_unexpected_first_with_the_worst_case():
    records = [
        _result("engine-a", "running_var", "discrepancy", 300.0, known="a-fast-variance"),
        _result("engine-a", "dx", "discrepancy", 40.0, known="a-fast-variance"),
        _result("engine-b", "y_train", "discrepancy", 2.5),
        _result("engine-b", "y_train", "pass", 0.1),
    ]
    sentences = finding_sentences(records)
    assert [s["unexpected"] for s in sentences] == [True, False]
    first, second = sentences
    assert first["sentence"].startswith("engine-b differs on y_train (worst 2.5× the allowed error) in 1 check(s)")
    assert first["sentence"].endswith("unexpected: not in the ledger.")
    assert "float32 4×2" in first["sentence"]
    assert second["sentence"].startswith("engine-a differs on dx, running_var (worst 300× the allowed error) in 2 check(s)")
    assert second["ledger"] == "a-fast-variance"
    assert second["replay"] == "bnconf replay c.json --frameworks engine-a"


def test_nothing_found_is_no_sentence():
    assert finding_sentences([_result("engine-a", "dx", "pass", 0.1)]) == []


def test_the_grid_counts_pass_known_and_unexpected_per_engine_and_property():
    records = [_result("e", "dx", "pass", 0.1), _result("e", "dx", "discrepancy", 3, known="k"),
               _result("e", "dx", "discrepancy", 3, prop="gradients")]  # fmt: skip
    grid = engine_property_grid(records)
    assert grid["cells"]["e"]["training"] == {"pass": 1, "known": 1, "unexpected": 0, "unsupported": 0}
    assert grid["cells"]["e"]["gradients"]["unexpected"] == 1


def test_parameter_counts_pick_the_dense_and_the_image_shapes():
    inventories = [
        {"framework": "e", "shape": [5, 3], "channel_axis": 1, "trainable": 6, "non_trainable": 7, "total": 13, "differences": ["x"], "known": ["k"]},
        {"framework": "e", "shape": [5, 3, 4], "channel_axis": 1, "trainable": 6, "non_trainable": 6, "total": 12, "differences": [], "known": []},
        {"framework": "e", "shape": [5, 3, 4, 4], "channel_axis": 1, "trainable": 6, "non_trainable": 6, "total": 12, "differences": [], "known": []},
    ]  # fmt: skip
    (row,) = parameter_counts(inventories)
    assert row["dense"]["total"] == 13
    assert row["dense"]["canonical"] == 12
    assert row["dense"]["differs"]
    assert row["image"]["shape"] == [5, 3, 4, 4]


def test_conventions_side_by_side_reads_the_probe_records_labels():
    from reports.headline import conventions_side_by_side

    declared = {"momentum": "momentum = 0.1 (weights the new batch)", "canonical decay": "0.9", "ε default": "1e-05",
                "ε placement": "inside", "running-variance estimator": "unbiased"}  # fmt: skip
    table = conventions_side_by_side([{"framework": "e", "declared": declared, "probes": {"x": {"verdict": "pass"}}}])
    cells = {row["label"]: row["cells"][0] for row in table["rows"]}
    assert cells["momentum (own form)"] == "momentum = 0.1 (weights the new batch)"
    assert cells["running variance is fed"] == "unbiased"
    assert cells["probes"] == "all confirmed"
    assert sum(cell == "-" for cell in cells.values()) == 4  # only the labels this record lacks


def test_a_sentence_carries_its_kind_severity_and_data():
    from datamodel.records import Conditioning

    offset = Conditioning(offset_ratio=40.0, constant_channels=0, one_value_per_channel=False, data_class="offset")
    records = [
        _result("e", "dx", "discrepancy", 40.0, known="e-cancellation").model_copy(update={"conditioning": offset}),
        _result("e", "y_train", "discrepancy", 9.0, known="e-cancellation").model_copy(
            update={"conditioning": offset, "known_kind": "numerical", "known_severity": "wrong_values"}),
        _result("e", "y_train", "discrepancy", 3.0),
    ]  # fmt: skip
    unexpected, known = finding_sentences(records)
    assert (known["kind"], known["severity"], known["data_classes"], known["dtypes"]) == (
        "numerical", "wrong_values", ["offset"], ["float32"])  # fmt: skip
    assert (unexpected["kind"], unexpected["severity"], unexpected["data_classes"]) == (None, None, [])
