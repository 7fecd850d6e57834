"""The report's eager-and-compiled table: built from the execution property's twin relation."""

from __future__ import annotations

from conformance.judging.compare import Comparison
from datamodel.case import Case, Generator
from datamodel.records import RecordWriter, result_record
from reports.execution import execution_modes, execution_side_by_side
from reports.render import markdown_summary, render_report

CASE = Case(shape=(4, 2), channel_axis=1, dtype="float32", x=Generator(seed=0))


def _result(framework, quantity, verdict, ratio, *, prop="training", known=None, twin_of=None, twin=None):
    record = result_record(run_id=None, prop=prop, framework=framework, framework_version="1", case=CASE,
                           comparison=Comparison(quantity, verdict, max_abs_error=ratio, allowed=1.0, ratio=ratio))  # fmt: skip
    return record.model_copy(update={"known": known, "twin_of": twin_of, "twin": twin})


def _records():
    return [
        # the engine's own suite and its side of the execution property
        _result("eng", "y_train", "pass", 0.2),
        _result("eng", "y_train", "pass", 0.3, prop="execution", twin="eng:compiled"),
        _result("eng", "dx", "pass", 0.1),
        # the compiled mode: its side of the execution property, with the between-twin comparison
        _result("eng:compiled", "y_train", "pass", 0.25, prop="execution", twin_of="eng"),
        _result("eng:compiled", "y_train@twin", "pass", 0.05, prop="execution", twin_of="eng"),
        _result("eng:compiled", "dx", "discrepancy", 7.0, prop="execution", twin_of="eng", known="entry-a"),
        _result("eng:compiled", "dx@twin", "discrepancy", 3.0, prop="execution", twin_of="eng"),
        # its own suite (a non-quick run): counts in its column too
        _result("eng:compiled", "y_train", "pass", 0.6, prop="training"),
        _result("eng:compiled", "y_train", "unsupported", None, prop="training"),
        # a layout twin names twin_of too, but under another property: not an execution mode
        _result("eng:channels_last", "dx", "pass", 0.1, prop="layout", twin_of="eng"),
        _result("other", "dx", "pass", 0.1),
    ]


def test_modes_come_from_the_execution_property_only():
    assert execution_modes(_records()) == {"eng": ["eng:compiled"]}


def test_each_quantity_shows_the_engine_the_mode_and_their_difference():
    (table,) = execution_side_by_side(_records())
    assert table["columns"] == ["eng", "eng:compiled"]
    rows = {row["quantity"]: row for row in table["rows"]}
    assert set(rows) == {"dx", "y_train"}  # no @twin rows: they are the "vs" cells

    y_train = rows["y_train"]
    assert y_train["cells"]["eng"]["worst_ratio"] == 0.3
    assert y_train["cells"]["eng:compiled"]["worst_ratio"] == 0.6  # every property, unsupported not counted
    assert y_train["cells"]["eng:compiled"]["checks"] == 2
    assert y_train["between"]["eng:compiled"]["worst_ratio"] == 0.05
    assert y_train["cells"]["eng"]["level"] == "pass"

    dx = rows["dx"]
    compiled, between = dx["cells"]["eng:compiled"], dx["between"]["eng:compiled"]
    assert (compiled["known"], compiled["unexpected"], compiled["ledger"], compiled["level"]) == (1, 0, ["entry-a"], "known-cell")
    assert compiled["text"] == "7 · 1 known"
    assert (between["unexpected"], between["level"], between["text"]) == (1, "unexpected", "3 · 1 unexpected")


def test_a_mode_without_checks_of_a_quantity_is_an_empty_cell():
    records = [_result("eng", "dgamma", "pass", 0.1), _result("eng:compiled", "y_train", "pass", 0.2, prop="execution", twin_of="eng")]
    (table,) = execution_side_by_side(records)
    rows = {row["quantity"]: row for row in table["rows"]}
    assert rows["dgamma"]["cells"]["eng:compiled"] is None
    assert rows["dgamma"]["between"]["eng:compiled"] is None


def test_no_execution_records_no_table():
    assert execution_side_by_side([_result("eng", "dx", "pass", 0.1)]) == []


def test_the_report_and_the_markdown_show_the_table(tmp_path):
    records = tmp_path / "records.jsonl"
    with RecordWriter(records) as writer:
        for record in _records():
            writer.write(record)
    summary = render_report([records], tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="execution-eng"' in html
    assert "eng:compiled vs eng" in html
    markdown = markdown_summary(summary)
    assert "| eng: quantity | eng | eng:compiled | eng:compiled vs eng |" in markdown
    assert "| dx | 0.1 | 7 · 1 known | 3 · 1 unexpected |" in markdown
