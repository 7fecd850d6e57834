"""Process isolation: a framework that crashes or hangs loses only its own in-flight check.

``bnconf run`` runs each framework in a supervised process.  Deliberately crashing
(SIGSEGV, SIGABRT) and hanging fakes run beside the honest NumPy fake: the honest one's
results must be complete, each broken one must have an ``error`` record naming what
happened and the check it was running, and the records written before the crash stay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FAKES = {
    "numpy-fake": "fakes:NumpyAdapter",
    "segfault-fake": "fakes:SegfaultAdapter",
    "abort-fake": "fakes:AbortAdapter",
    "hanging-fake": "fakes:HangingAdapter",
    "broken-settings-fake": "fakes:BrokenSettingsAdapter",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("isolation")
    env = {**os.environ, "BNCONF_ADAPTERS": ",".join(f"{k}={v}" for k, v in FAKES.items()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "conformance.orchestration.cli", "run", "--frameworks", ",".join(FAKES), "--profile", "dev",
               "--out", str(out), "--case-timeout", "5"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=600)
    records = {}
    for name in FAKES:
        path = out / "records" / f"{name}.jsonl"
        records[name] = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return result, records, out


def _crash_records(records):
    return [r for r in records if r["kind"] == "error" and r["cause"] in ("crash", "hang")]


def test_exit_code_says_something_was_found(run):
    result, _, _ = run
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]


def test_honest_framework_results_are_complete(run):
    result, records, _ = run
    honest = [r for r in records["numpy-fake"] if r["kind"] not in ("environment", "framework", "run_end")]
    assert honest, "no records from the honest framework"
    assert not _crash_records(records["numpy-fake"])
    assert all(r["verdict"] in ("pass", "unsupported") for r in honest)
    assert "[numpy-fake] passed" in result.stdout


@pytest.mark.parametrize(("name", "signal_name"), [("segfault-fake", "SIGSEGV"), ("abort-fake", "SIGABRT")])
def test_crash_is_an_error_record_for_the_running_check(run, name, signal_name):
    result, records, _ = run
    crashes = _crash_records(records[name])
    assert len(crashes) == 1
    crash = crashes[0]
    assert (crash["verdict"], crash["cause"]) == ("error", "crash")
    assert f"crashed with {signal_name}" in crash["message"]
    assert "while running conformance/suite/" in crash["message"]
    assert crash["case"]["shape"], "the case being run is kept"
    assert crash["run_id"] == records[name][0]["run_id"], "the crash record belongs to the run that died"
    assert f"[{name}] crashed with {signal_name}" in result.stdout


def test_records_before_a_crash_are_kept(run):
    _, records, _ = run
    before = [r for r in records["abort-fake"] if r["kind"] in ("result", "count", "probe", "ledger")]
    assert before, "the checks that finished before the abort were lost"


def test_hang_is_killed_after_the_case_timeout(run):
    result, records, _ = run
    crashes = _crash_records(records["hanging-fake"])
    assert len(crashes) == 1
    assert crashes[0]["cause"] == "hang"
    assert "hung: one check ran past 5s and was killed" in crashes[0]["message"]
    assert "[hanging-fake] hung" in result.stdout


def test_harness_failure_is_an_error_record(run):
    """A suite test that fails without a finding (the adapter's own code raised) still leaves a record."""
    _, records, _ = run
    failures = [r for r in records["broken-settings-fake"] if r["kind"] == "error" and r["cause"] == "harness"]
    assert failures, "a failed suite test left no record"
    assert all(r["verdict"] == "error" for r in failures)
    assert any("no such convention" in r["message"] for r in failures)


def test_report_covers_every_framework(run):
    _, _, out = run
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["framework_totals"]) >= {"numpy-fake", "segfault-fake", "abort-fake", "hanging-fake"}
    assert summary["totals"]["unexpected"] >= 3
