"""A run cut short leaves readable records, and its report says the run is partial.

Each suite process writes ``environment`` first and ``run_end`` last.  Records without
``run_end`` (a killed process, a file cut mid-line), a process the supervisor saw crash or
hang, and an interrupted run each make every output of the report (HTML, ``summary.json``,
``summary.md`` and the text summary whose last line ``bnconf report`` prints) say "partial"
and name the frameworks concerned.  A finished run says nothing of the kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import write_run

from conformance.orchestration.cli import main
from datamodel.records import RecordWriter, read_records, run_end_record
from reports.render import render_report

HERE = Path(__file__).parent
FRAMEWORKS = ["hostile-fake", "numpy-fake", "numpy-fake:no_eps"]


def _outputs(out: Path) -> dict[str, str]:
    return {name: (out / name).read_text(encoding="utf-8") for name in ("report.html", "summary.json", "summary.md")}


def test_a_finished_run_is_complete(tmp_path):
    summary = render_report([write_run(tmp_path / "run")], tmp_path / "out")
    assert (summary["complete"], summary["partial"]) == (True, [])
    assert "PARTIAL" not in summary["text"]
    assert all("PARTIAL" not in text for text in _outputs(tmp_path / "out").values())


def test_records_without_the_completion_record_are_a_partial_run(tmp_path):
    summary = render_report([write_run(tmp_path / "run", finished=False)], tmp_path / "out")
    assert summary["complete"] is False
    (row,) = summary["partial"]
    assert row["frameworks"] == FRAMEWORKS
    assert "without the run's completion record" in row["reason"]
    closing = summary["text"].splitlines()[-1]
    assert closing.startswith("conformance: ")
    assert closing.endswith(f"PARTIAL RUN: the records of {', '.join(FRAMEWORKS)} end before the run finished")
    outputs = _outputs(tmp_path / "out")
    assert 'id="partial"' in outputs["report.html"]
    assert "PARTIAL RUN: the records of hostile-fake" in outputs["report.html"]
    assert json.loads(outputs["summary.json"])["complete"] is False
    assert "**PARTIAL RUN:" in outputs["summary.md"]


def test_a_records_file_cut_mid_line_reads_and_reports_partial(tmp_path):
    """A process killed while writing: every complete line reads back, the torn one is skipped."""
    run = write_run(tmp_path / "run")
    path = run / "records" / "fakes.jsonl"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])  # somewhere inside a line, long before run_end
    records = read_records(path)
    assert records
    assert records[0].kind == "environment"
    assert "run_end" not in {r.kind for r in records}
    summary = render_report([run], tmp_path / "out")
    assert summary["records_read"] == len(records)
    assert summary["complete"] is False
    assert "PARTIAL RUN" in summary["text"].splitlines()[-1]


def test_an_interrupted_run_is_partial(tmp_path):
    run = write_run(tmp_path / "run", finished=False)
    path = run / "records" / "fakes.jsonl"
    run_id = read_records(path)[0].run_id
    with RecordWriter(path) as writer:
        writer.write(run_end_record(run_id, exit_status=2, outcome="interrupted", interrupted=True, checks=3))
    (row,) = render_report([run], tmp_path / "out")["partial"]
    assert row["reason"] == "interrupted (pytest exit status 2)"


def test_one_partial_run_among_finished_ones_names_only_its_frameworks(tmp_path):
    finished = write_run(tmp_path / "a")
    cut = write_run(tmp_path / "b", finished=False)
    summary = render_report([finished, cut], tmp_path / "out")
    (row,) = summary["partial"]
    assert row["run_id"] == read_records(cut / "records" / "fakes.jsonl")[0].run_id


def test_a_process_that_ended_badly_is_partial_even_without_its_records(tmp_path):
    """``bnconf run`` passes how each process ended: one that crashed before writing is named too."""
    runs = [{"framework": "torch", "specs": ["torch"], "exit_code": -9, "outcome": "crashed with SIGKILL", "seconds": 1.0,
             "records": "records/torch.jsonl", "log": "logs/torch.log"}]
    summary = render_report([write_run(tmp_path / "run")], tmp_path / "out", runs=runs)
    assert summary["partial"] == [{"run_id": None, "frameworks": ["torch"], "reason": "its process crashed with SIGKILL"}]


def test_cli_report_says_partial_on_its_last_line(capsys, tmp_path):
    run = write_run(tmp_path / "run", finished=False)
    assert main(["report", str(run), "-o", str(tmp_path / "out")]) == 1
    assert "PARTIAL RUN" in capsys.readouterr().out.splitlines()[-1]


@pytest.fixture(scope="module")
def hung_run(tmp_path_factory):
    """``bnconf run`` on the hanging fake: its process is killed after the case timeout."""
    out = tmp_path_factory.mktemp("hung")
    env = {**os.environ, "BNCONF_ADAPTERS": "hanging-fake=fakes:HangingAdapter",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--frameworks", "hanging-fake",
               "--profile", "dev", "--out", str(out), "--case-timeout", "3"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=300)
    return result, out


def test_a_process_killed_mid_run_leaves_a_partial_report(hung_run):
    result, out = hung_run
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    records = read_records(out / "records" / "hanging-fake.jsonl")
    assert any(r.kind == "probe" for r in records), "the checks before the hang are kept"
    assert "run_end" not in {r.kind for r in records}
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["partial"]
    assert row["frameworks"] == ["hanging-fake"]
    assert "hung: one check ran past 3s and was killed" in row["reason"]
    assert "PARTIAL RUN: the records of hanging-fake end before the run finished" in result.stdout
    assert 'id="partial"' in (out / "report.html").read_text()
