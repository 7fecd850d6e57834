"""A third-party engine, as its author would ship it: ``examples/third_party_adapter``.

The package is installed (into a temporary directory, no dependencies, no network) and found
through the ``bnconf.adapters`` entry point alone; then the same adapter runs from its source
tree with ``--adapter MODULE:CLASS``, installing nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "third_party_adapter"
BNCONF = [sys.executable, "-m", "conformance.orchestration.cli"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The environment of a process where the example package is installed."""
    pytest.importorskip("setuptools", reason="building the example needs setuptools (in the dev extra)")
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(EXAMPLE)], capture_output=True, text=True, timeout=300, cwd=build,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    env = {key: value for key, value in os.environ.items() if key != "BNCONF_ADAPTERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def test_the_installed_engine_is_found_by_its_entry_point(installed):
    listed = subprocess.run([sys.executable, "-c", "from adapters.registry import registered; print(registered()['numpy-bn'])"],
                            capture_output=True, text=True, env=installed, timeout=60)  # fmt: skip
    assert listed.stdout.strip() == "bnconf_numpy_bn.adapter:NumpyBatchNormAdapter", listed.stderr


def test_the_installed_engine_replays_and_conforms(installed):
    result = subprocess.run([*BNCONF, "replay", str(ROOT / "examples" / "offset.json"), "--frameworks", "numpy-bn", "--json"],
                            capture_output=True, text=True, env=installed, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout)["results"]
    assert len(rows) == 8
    assert all(row["verdict"] == "pass" for row in rows), rows


def test_the_installed_engine_runs_the_suite(installed, tmp_path):
    result = subprocess.run([*BNCONF, "run", "--frameworks", "numpy-bn", "--profile", "dev", "--out", str(tmp_path)],
                            capture_output=True, text=True, env=installed, timeout=600, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["totals"]["pass"] > 50, summary["totals"]
    assert summary["totals"]["unexpected"] == 0


def test_one_off_adapter_from_its_source_tree(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "BNCONF_ADAPTERS"}
    result = subprocess.run([*BNCONF, "replay", str(ROOT / "examples" / "ordinary.json"), "--adapter",
                             "bnconf_numpy_bn.adapter:NumpyBatchNormAdapter", "--json"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=EXAMPLE / "src")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout)["results"]
    assert {row["framework"] for row in rows} == {"numpy-bn"}
    assert all(row["verdict"] == "pass" for row in rows), rows


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "expects MODULE:CLASS"),
        ("no_such_module_here:Thing", "cannot import it (ModuleNotFoundError"),
        ("json:JSONDecoder", "expected a subclass of adapters.base.Adapter"),
    ],
)
def test_a_bad_one_off_adapter_is_a_usage_error(target, message):
    result = subprocess.run([*BNCONF, "replay", str(ROOT / "examples" / "ordinary.json"), "--adapter", target],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
