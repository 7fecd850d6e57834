"""The engine table every output leads with (``reports.overview``), from records built by hand."""

from __future__ import annotations

import re

import pytest
from overview_records import LEDGER, NEEDS_GPU, UPSTREAM, overview_records, write_overview_run

from conformance.judging.ledger import Ledger
from reports.headline import finding_sentences
from reports.overview import engine_overview, finding_name, findings_by_engine, ledger_details
from reports.render import render_report
from reports.summarize import counted


def _overview(records=None, ledger=LEDGER):
    results = counted(records if records is not None else overview_records())
    grouped = findings_by_engine(finding_sentences(results), results, ledger_details(ledger))
    return engine_overview(results, grouped), grouped


@pytest.fixture(scope="module")
def rows():
    overview, _ = _overview()
    return {row["engine"]: row for row in overview["rows"]}


def _texts(cell):
    return [item["text"] for item in cell]


def test_a_row_per_engine_spec_variants_included(rows):
    assert list(rows) == ["eng-a", "eng-b", "eng-c", "eng-c:compiled"]


def test_ordinary_data_is_judged_per_dtype(rows):
    assert _texts(rows["eng-a"]["ordinary"]) == ["yes: float16, float32, float64"]
    assert _texts(rows["eng-b"]["ordinary"]) == ["float32 yes", "float64 no (1 known)"]
    assert rows["eng-b"]["ordinary"][1]["href"] == "#f-eng-b--eng-b-float64-in-float32"
    assert _texts(rows["eng-c"]["ordinary"]) == ["float32 no (1 unexpected)"]
    assert rows["eng-c"]["ordinary"][0]["level"] == "unexpected"
    assert _texts(rows["eng-c:compiled"]["ordinary"]) == ["not run"]


def test_conventions_are_listed_where_they_differ_from_the_majority(rows):
    assert _texts(rows["eng-a"]["conventions"]) == [
        "momentum weights the new batch (0.1)",
        "running-average decay 0.9 (most: 0.99; momentum = 0.01 matches)",
        "unbiased running variance (most: biased)",
    ]
    assert _texts(rows["eng-b"]["conventions"]) == ["as most engines"]
    assert _texts(rows["eng-c:compiled"]["conventions"]) == ["as eng-c"]
    assert rows["eng-c:compiled"]["conventions"][0]["href"] == "#" + rows["eng-c"]["row_anchor"]
    # A documented convention the reference does not model sits with the conventions.
    assert _texts(rows["eng-c"]["conventions"]) == ["debiased average: cosmetic"]


def test_an_even_split_names_both_sides_and_no_engine_cell_lists_it():
    records = overview_records()
    records = [r.model_copy(update={"declared_conventions": {**r.declared_conventions, "ε default": "0.001"}})
               if r.kind == "probe" and r.framework == "eng-c" else r for r in records]  # fmt: skip
    records.append(records[0].model_copy(update={"framework": "eng-d"}))  # a fourth vote, like eng-a's
    overview, _ = _overview(records)
    assert "ε default: 1e-05" in overview["majority"]
    assert "decay d (canonical): split (0.9: eng-a, eng-d; 0.99: eng-b, eng-c)" in overview["majority"]
    row = next(r for r in overview["rows"] if r["engine"] == "eng-c")
    assert _texts(row["conventions"])[0] == "ε default 0.001 (most: 1e-05)"
    assert not any("decay" in text for r in overview["rows"] for text in _texts(r["conventions"]))


def test_numerical_weaknesses_name_the_data_they_appeared_on(rows):
    (weakness,) = rows["eng-b"]["numerical"]
    assert weakness["text"] == "fast variance cancellation on offset, tiny_spread data (float32): wrong values"
    assert weakness["href"] == "#f-eng-b--eng-b-fast-variance-cancellation"
    assert _texts(rows["eng-a"]["numerical"]) == ["none known"]


def test_a_ledger_entry_for_a_device_the_run_lacks_is_not_replayed_here(rows):
    gpu, outside = _texts(rows["eng-c"]["numerical"])
    assert gpu == f"cudnn variance ({NEEDS_GPU}): wrong running statistics"
    assert outside == "outside the domain: momentum one on near_overflow data (float32): NaN/inf"


def test_defects_carry_their_upstream_state_most_severe_first(rows):
    nan, accuracy = rows["eng-b"]["defects"]
    assert (nan["text"], nan["upstream"]) == ("decay nan on heavy_tails data (float32): NaN/inf", UPSTREAM)
    assert accuracy["upstream"] == "not yet reported"
    assert accuracy["text"].endswith("less accurate")


def test_defects_without_the_ledger_say_their_upstream_is_not_known():
    overview, _ = _overview(ledger=Ledger([]))
    row = next(r for r in overview["rows"] if r["engine"] == "eng-b")
    assert [item["upstream"] for item in row["defects"]] == ["upstream not known"] * 2
    assert _texts(row["numerical"])[0].startswith("fast variance cancellation")  # the kind came from the records


def test_a_known_finding_whose_kind_no_one_recorded_is_listed_with_the_defects():
    records = [r.model_copy(update={"known_kind": None}) if r.known == "eng-b-decay-nan" else r for r in overview_records()]
    overview, grouped = _overview(records, ledger=Ledger([]))
    row = next(r for r in overview["rows"] if r["engine"] == "eng-b")
    assert any(text.startswith("decay nan") for text in _texts(row["defects"]))
    labels = [group["label"] for group in grouped[0]["groups"]]
    assert "known, kind not recorded" in labels


def test_unexpected_findings_are_counted_and_linked(rows):
    (cell,) = rows["eng-c"]["unexpected"]
    assert (cell["text"], cell["href"], rows["eng-c"]["unexpected_count"]) == ("1 (ordinary)", "#f-eng-c--unexpected", 1)
    assert _texts(rows["eng-a"]["unexpected"]) == ["none"]


def test_findings_are_grouped_by_engine_then_kind_most_severe_first():
    _, grouped = _overview()
    assert [engine["engine"] for engine in grouped] == ["eng-b", "eng-c"]
    eng_b, eng_c = grouped
    assert [group["kind"] for group in eng_b["groups"]] == ["defect", "numerical"]
    assert [item["ledger"] for item in eng_b["groups"][0]["items"]] == ["eng-b-decay-nan", "eng-b-float64-in-float32"]
    assert [group["kind"] for group in eng_c["groups"]] == ["unexpected", "numerical", "convention", "out_of_domain"]


def test_a_ledger_id_loses_the_engine_name_it_starts_with():
    assert finding_name("flax-fast-variance-cancellation", "flax") == "fast variance cancellation"
    assert finding_name("torch-compile-inf-mean-is-nan", "torch:compile") == "inf mean is nan"
    assert finding_name("torch-compile-inf-mean-is-nan", "torch") == "compile inf mean is nan"
    assert finding_name("shared-entry", "other") == "shared entry"


# -- the three renderings ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    directory = tmp_path_factory.mktemp("overview")
    summary = render_report([write_overview_run(directory / "run")], directory / "out", ledger=LEDGER)
    return summary, {name: (directory / "out" / name).read_text(encoding="utf-8") for name in ("report.html", "summary.md")}


def test_summary_md_leads_with_the_table(rendered):
    _, outputs = rendered
    lines = outputs["summary.md"].splitlines()
    assert lines[0] == "# Batch-norm conformance"
    assert lines[2] == ("| engine | conforms on ordinary data | conventions that differ from most engines | "
                        "numerical weaknesses | defects | unexpected findings |")  # fmt: skip
    rows = [line for line in lines[4:8]]
    assert [re.sub("<[^>]+>", "", row.split(" | ")[0]) for row in rows] == ["| eng-a", "| eng-b", "| eng-c", "| eng-c:compiled"]
    assert f"([upstream]({UPSTREAM}))" in rows[1]
    assert "(not yet reported)" in rows[1]


def test_every_link_of_the_table_has_its_target(rendered):
    _, outputs = rendered
    markdown = outputs["summary.md"]
    targets = set(re.findall(r'<a id="([^"]+)"></a>', markdown))
    links = re.findall(r"\]\(#([^)]+)\)", markdown)
    assert links
    assert set(links) <= targets
    html = outputs["report.html"]
    table = html[html.index('<table id="overview">') : html.index("</table>", html.index('<table id="overview">'))]
    html_links = re.findall(r'href="#([^"]+)"', table)
    assert set(html_links) == set(links)
    assert all(f'id="{target}"' in html for target in html_links)


def test_bnconf_run_prints_the_table_first(rendered):
    summary, _ = rendered
    lines = summary["text"].splitlines()
    assert lines[0] == "eng-a 1.0"
    assert lines[1].split() == ["conforms", "on", "ordinary", "data:", "yes:", "float16,", "float32,", "float64"]
    assert any(line.strip().startswith("defects:") and "decay nan" in line for line in lines[:20])
    assert lines[-1] == "conformance: 11 passed, 1 failed, 1 skipped"


def test_the_not_replayed_entry_is_neither_reproduced_nor_failed(rendered):
    summary, outputs = rendered
    status = summary["ledger"]
    assert [row["id"] for row in status["not_replayed"]] == ["eng-c-cudnn-variance"]
    assert status["reproduced"] == []
    assert status["not_reproduced"] == []
    assert f"1 entries {NEEDS_GPU}" in summary["text"]
    assert f"- eng-c-cudnn-variance on eng-c 1.0: {NEEDS_GPU}" in outputs["summary.md"]
    html = outputs["report.html"]
    assert f"<td>{NEEDS_GPU}</td>" in html
    assert "no longer reproduces</td>" not in html
