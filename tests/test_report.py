"""Report rendering and merging: counts, attribution, refusal of other schemas, escaping."""

from __future__ import annotations

import json
import re

import pytest
from overview_records import LEDGER, UPSTREAM, write_overview_run
from report_fixtures import HOSTILE_MESSAGE, rewrite_schema, write_run

from conformance.orchestration.cli import main
from reports.render import ReportInputError, render_report


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run")


def test_summary_counts_every_record(run_dir, tmp_path):
    summary = render_report([run_dir], tmp_path / "out")
    records = (run_dir / "records" / "fakes.jsonl").read_text().splitlines()
    assert summary["records_read"] == len(records)
    results = [json.loads(line) for line in records if json.loads(line)["kind"] not in ("environment", "framework", "run_end")]
    assert summary["records_rendered"] == len(results)
    t = summary["totals"]
    assert t["pass"] + t["discrepancy"] + t["error"] + t["unsupported"] == len(results)
    assert t["unexpected"] == t["discrepancy"] + t["error"] > 0
    assert summary["framework_totals"]["numpy-fake"]["discrepancy"] == 0
    assert summary["framework_totals"]["numpy-fake:no_eps"]["discrepancy"] > 0
    assert summary["framework_totals"]["hostile-fake"]["error"] > 0


def test_every_kind_of_record_reaches_its_table(run_dir, tmp_path):
    """Counts fill the parameter table, probes the conventions table, ledger replays the ledger
    status; only ``result`` records enter the tolerance table and the plots."""
    summary = render_report([run_dir], tmp_path / "out")
    (inventory,) = summary["inventories"]
    assert (inventory["framework"], inventory["shape"], inventory["differences"]) == ("numpy-fake", [6, 3, 4], [])
    canonical = inventory["canonical"]
    assert (canonical["trainable"], canonical["running_statistics"], canonical["total"]) == (6, 6, 12)
    (conventions,) = summary["conventions"]
    assert conventions["probes"] == {"eps_placement": {"declared": "inside", "probed": "inside", "verdict": "pass"}}
    assert conventions["declared"]["ε placement"] == "inside"
    assert [row["id"] for row in summary["ledger"]["reproduced"]] == ["fake-entry"]
    tolerance_quantities = {row["quantity"] for row in summary["worst"]}
    assert "y_train" in tolerance_quantities
    assert not tolerance_quantities & {"total_count", "eps_placement", "fake-entry", "*"}


def test_summary_json_is_strict_json(run_dir, tmp_path):
    """Infinite ratios (a NaN where the reference has a number) are written as "inf", not Infinity."""
    render_report([run_dir], tmp_path / "out")

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token!r} in summary.json")

    json.loads((tmp_path / "out" / "summary.json").read_text(), parse_constant=refuse)


def test_an_error_without_a_case_renders(run_dir, tmp_path):
    render_report([run_dir], tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "No case file: the check that was running is not known." in html


def test_an_invalid_record_is_refused_with_file_and_line(tmp_path):
    run = write_run(tmp_path / "run")
    path = run / "records" / "fakes.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[2])
    broken["verdict"] = "maybe"
    lines[2] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReportInputError, match=r"fakes.jsonl:3: invalid \w+ record: field 'verdict'"):
        render_report([run], tmp_path / "out")


def test_outputs_are_written_and_versioned(run_dir, tmp_path):
    summary = render_report([run_dir], tmp_path / "out")
    document = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert document["schema_version"] == 1
    assert document["records_read"] == summary["records_read"]
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "| numpy-fake:no_eps |" in markdown
    assert "Unexpected findings" in markdown
    assert summary["text"].splitlines()[-1].startswith("conformance: ")
    # The same rows lead every output: summary.json holds them for anyone else.
    assert [row["engine"] for row in document["overview"]["rows"]] == ["hostile-fake", "numpy-fake", "numpy-fake:no_eps"]
    assert markdown.splitlines()[2].startswith("| engine | conforms on ordinary data |")
    assert summary["text"].splitlines()[0].startswith("hostile-fake ")


def test_the_findings_are_listed_by_engine_below_the_table(run_dir, tmp_path):
    summary = render_report([run_dir], tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.index('<table id="overview">') < html.index('id="findings-by-engine"') < html.index('id="counterexamples-section"')
    engines = {engine["engine"]: [group["kind"] for group in engine["groups"]] for engine in summary["findings_by_engine"]}
    # The honest fake's ledger entry hit nothing but its own evidence; no record says its kind.
    assert engines == {"hostile-fake": ["unexpected"], "numpy-fake": ["unclassified"], "numpy-fake:no_eps": ["unexpected"]}
    assert 'id="f-numpy-fake-no_eps--unexpected"' in html


def test_merging_keeps_every_record_attributed(tmp_path):
    first = write_run(tmp_path / "a", version_suffix="1.0")
    second = write_run(tmp_path / "b", version_suffix="2.0")
    summary = render_report([first, second], tmp_path / "out")
    lines = sum(len((d / "records" / "fakes.jsonl").read_text().splitlines()) for d in (first, second))
    assert summary["records_read"] == lines
    versions = {(row["framework"], row["version"]) for row in summary["matrix"]}
    assert ("numpy-fake", "numpy-fake 1.0") in versions
    assert ("numpy-fake", "numpy-fake 2.0") in versions
    assert len(summary["environments"]) == 2
    assert len(summary["inputs"]) == 2


def test_records_of_another_schema_are_refused(tmp_path):
    run = write_run(tmp_path / "run")
    rewrite_schema(run / "records" / "fakes.jsonl", 99)
    with pytest.raises(ReportInputError, match=r"fakes.jsonl:1: record schema version 99 is not supported"):
        render_report([run], tmp_path / "out")


def test_missing_input_is_refused(tmp_path):
    with pytest.raises(ReportInputError, match="no such results file or directory"):
        render_report([tmp_path / "nowhere"], tmp_path / "out")


def test_html_in_messages_is_text(run_dir, tmp_path):
    render_report([run_dir], tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "&lt;script&gt;window.__bnconf_xss = 1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; more" in html
    assert HOSTILE_MESSAGE not in html


def test_report_is_self_contained(run_dir, tmp_path):
    """Nothing is loaded from outside the file; the only remote addresses are links a reader may
    follow to a defect's upstream report."""
    render_report([run_dir, write_overview_run(tmp_path / "engines")], tmp_path / "out", ledger=LEDGER)
    html = (tmp_path / "out" / "report.html").read_text()
    assert f'<a class="upstream" href="{UPSTREAM}">' in html
    html = re.sub(r'<a class="upstream" href="https://[^"<>]+">[^<]*</a>', "", html)
    for remote in ("http://", "https://", "<link ", "src="):
        assert remote not in html, f"report refers to something outside itself: {remote!r}"


def test_counterexamples_carry_replay_and_snippet(run_dir, tmp_path):
    render_report([run_dir], tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "bnconf replay" in html
    assert "standalone snippet (numpy-fake:no_eps)" in html


def test_cli_report_merges_and_prints_counts(capsys, tmp_path):
    first, second = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    # The fixtures hold unexpected findings (a broken and a crashing fake): exit code 1, like `bnconf run`.
    assert main(["report", str(first), str(second / "records" / "fakes.jsonl"), "-o", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "from 2 input(s)" in out
    assert out.splitlines()[-1].startswith("conformance: ")
    assert (tmp_path / "out" / "report.html").exists()


def test_cli_report_bad_input_exits_2(capsys, tmp_path):
    run = write_run(tmp_path / "run")
    rewrite_schema(run / "records" / "fakes.jsonl", 7)
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(run), "-o", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "schema version 7" in capsys.readouterr().err
