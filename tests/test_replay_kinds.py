"""``bnconf replay`` names each finding: the ledger entry that explains it and its kind, or unexpected."""

from __future__ import annotations

from pathlib import Path

from fakes import NumpyAdapter

from conformance.judging.check import check_case
from conformance.judging.ledger import Entry, Ledger
from conformance.orchestration.replay import classified_rows, render_table
from datamodel.casefile import load_case

ORDINARY = Path(__file__).parent.parent / "examples" / "ordinary.json"


def _rows(variant: str, ledger: Ledger):
    adapter, case = NumpyAdapter(variant), load_case(ORDINARY)
    return classified_rows(adapter, case, adapter.version(), check_case(adapter, case).comparisons, ledger)


def test_a_known_finding_names_its_entry_and_kind_and_an_unknown_one_is_unexpected():
    entry = Entry(id="fake-y-eval", reason="r", kind="numerical", data="any",
                  match={"framework": ["numpy-fake:eval_skips_eps"], "quantity": ["y_eval"]}, evidence={})  # fmt: skip
    rows = _rows("eval_skips_eps", Ledger([entry]))
    findings = {row.comparison.quantity: row.finding for row in rows if row.comparison.verdict != "pass"}
    assert findings.get("y_eval") == "numerical: fake-y-eval"
    assert all(text == "unexpected" for quantity, text in findings.items() if quantity != "y_eval")
    assert "numerical: fake-y-eval" in render_table(rows)


def test_passing_rows_name_no_finding():
    rows = _rows("", Ledger([]))
    assert rows
    assert all(row.comparison.verdict == "pass" and row.finding == "" for row in rows)
