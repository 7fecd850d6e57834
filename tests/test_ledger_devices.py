"""Device-scoped ledger entries, driven through the real suite on a CPU machine.

A ledger entry scoped to ``gpu`` replays where a gpu exists and is written "not replayed
here: needs gpu" elsewhere: never reproduced, never failed.  Where it replays, an entry whose
evidence stops reproducing fails the run exactly as a CPU entry does.  The engine is the fake
of ``tests/fake_devices.py`` (a NumPy batch norm with a second, pretend device), and the
ledger a folder of the test's own (``BNCONF_LEDGER_DIR``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datamodel.casefile import dump_case, load_case

HERE = Path(__file__).parent
ROOT = HERE.parent
SPECS = ("numpy-devices", "numpy-devices:fixed", "numpy-devices:no_gpu")


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory) -> Path:
    """A ledger with one gpu-scoped entry: the fake's inference output is off on the gpu."""
    folder = tmp_path_factory.mktemp("ledger")
    (folder / "cases").mkdir()
    dump_case(load_case(ROOT / "examples" / "ordinary.json").with_(device="gpu"), folder / "cases" / "gpu-eval.json")
    entry = {
        "id": "numpy-devices-gpu-eval-offset", "kind": "defect", "severity": "wrong_values",
        "upstream": "not yet reported", "device": "gpu", "backend": {"fake_kernel": "on"},
        "reason": "the fake gpu kernel adds one to the inference output",
        "match": {"framework": list(SPECS), "verdict": ["discrepancy"], "quantity": ["y_eval"]},
        "evidence": {"case_file": "cases/gpu-eval.json", "command": "bnconf replay ...", "observed": "y_eval off by 1"},
    }  # fmt: skip
    (folder / "fake.json").write_text(json.dumps({"entries": [entry]}), encoding="utf-8")
    return folder


def _suite(ledger_dir: Path, out: Path, device: str) -> tuple[int, list[dict]]:
    results = out / f"{device}.jsonl"
    env = {**os.environ, "BNCONF_ADAPTERS": "numpy-devices=fake_devices:DeviceScopedAdapter",
           "BNCONF_LEDGER_DIR": str(ledger_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "pytest", str(ROOT / "conformance" / "suite" / "test_ledger.py"), "-q",
               "-p", "no:cacheprovider", f"--bnconf-frameworks={','.join(SPECS)}", f"--bnconf-device={device}",
               f"--bnconf-results={results}", "--tb=line"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    records = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    return run.returncode, [r for r in records if r.get("kind") == "ledger"]


def _by_framework(records: list[dict]) -> dict[str, dict]:
    return {r["framework"]: r for r in records}


def test_a_gpu_entry_is_not_replayed_on_a_cpu_session(ledger_dir, tmp_path):
    """On the CPU the entry is listed as needing a gpu: unsupported, neither reproduced nor failed."""
    status, records = _suite(ledger_dir, tmp_path, "cpu")
    assert status == 0
    found = _by_framework(records)
    assert set(found) == set(SPECS)
    for record in found.values():
        assert (record["verdict"], record["reproduced"]) == ("unsupported", None)
        assert "not replayed here: needs gpu" in record["message"]
        assert (record["known_kind"], record["known_severity"]) == ("defect", "wrong_values")


def test_on_the_gpu_the_entry_replays_and_fails_once_it_stops_reproducing(ledger_dir, tmp_path):
    """With the device present the evidence replays: reproduced on the buggy engine, a failure on the fixed one,
    and an engine whose machine lacks the device is skipped, writing nothing it did not check."""
    status, records = _suite(ledger_dir, tmp_path, "gpu")
    found = _by_framework(records)
    assert status == 1  # the fixed engine's entry no longer reproduces
    assert (found["numpy-devices"]["verdict"], found["numpy-devices"]["reproduced"]) == ("pass", True)
    assert found["numpy-devices"]["explained_quantities"] == ["y_eval"]
    assert (found["numpy-devices:fixed"]["verdict"], found["numpy-devices:fixed"]["reproduced"]) == ("discrepancy", False)
    assert "no longer reproduces" in found["numpy-devices:fixed"]["message"]
    assert "numpy-devices:no_gpu" not in found
