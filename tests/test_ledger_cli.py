"""A broken ledger stops ``bnconf run`` and a pytest run before any engine starts, in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _broken_ledger(folder: Path) -> Path:
    path = folder / "torch.json"
    entry = {"id": "unclassified", "reason": "r", "match": {}, "evidence": {"command": "c"}}
    path.write_text(json.dumps({"entries": [entry]}), encoding="utf-8")
    return path


def test_bnconf_run_refuses_an_entry_without_a_kind(tmp_path):
    path = _broken_ledger(tmp_path)
    env = {**os.environ, "BNCONF_LEDGER_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "conformance.orchestration.cli", "run", "--frameworks", "torch",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"bnconf: error: {path}: entry 0 (unclassified): missing field 'kind' "
                                               "(one of: convention, numerical, defect, out_of_domain)"]  # fmt: skip
    assert not (tmp_path / "out" / "records").exists()  # no engine started


def test_a_pytest_run_of_the_suite_says_the_same_in_one_line(tmp_path):
    path = _broken_ledger(tmp_path)
    env = {**os.environ, "BNCONF_LEDGER_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "conformance" / "suite" / "test_ledger.py"),
                          "-p", "no:cacheprovider", "--bnconf-frameworks=torch", "-q"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert run.returncode == 4  # pytest's usage error
    assert "Traceback" not in run.stdout + run.stderr
    assert f"{path}: entry 0 (unclassified): missing field 'kind'" in run.stderr
