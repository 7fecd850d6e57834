"""``bnconf matrix`` runs two versions of one framework side by side and merges them.

Keras is pure Python, so its oldest supported version installs beside the project's
environment for its cell alone (``.bnconf-cells/``); both cells run at once, each in its
own process, and one report holds both versions.  Cells that cannot run here are listed as
skipped with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")
ROOT = Path(__file__).parent.parent
CELLS = "keras-tensorflow-newest-cpu,keras-tensorflow-oldest-cpu,torch-newest-gpu"


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix")
    command = [sys.executable, "-m", "conformance.orchestration.cli", "matrix", "--cells", CELLS, "--jobs", "2", "--profile", "ci",
               "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    return result, out


def test_both_versions_in_one_report(matrix_run):
    result, out = matrix_run
    assert (out / "report.html").exists(), result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    versions = {row["version"].split()[0] for row in summary["matrix"] if row["framework"] == "keras"}
    assert len(versions) == 2, versions
    assert "3.6.0" in versions


def test_each_cell_ran_in_its_own_process(matrix_run):
    _, out = matrix_run
    assert (out / "records" / "keras-tensorflow-newest-cpu.jsonl").exists()
    assert (out / "records" / "keras-tensorflow-oldest-cpu.jsonl").exists()
    pids = set()
    for name in ("keras-tensorflow-newest-cpu", "keras-tensorflow-oldest-cpu"):
        text = (out / "logs" / f"{name}.log").read_text()
        assert "passed" in text or "failed" in text
        environment = json.loads((out / "records" / f"{name}.jsonl").read_text().splitlines()[0])
        pids.add(environment["run_id"])
    assert len(pids) == 2


def test_gpu_cell_is_skipped_with_the_reason(matrix_run):
    result, out = matrix_run
    if "torch-newest-gpu] skipped" not in result.stdout:
        pytest.skip("this machine has a GPU")
    assert "[torch-newest-gpu] skipped: needs a GPU" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    skipped = [r for r in summary["runs"] if r["outcome"].startswith("skipped")]
    assert [r["framework"] for r in skipped] == ["torch-newest-gpu"]
