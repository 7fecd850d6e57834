"""The pytest plugin minds its own business in an unrelated project's test run.

bn-conformance registers its plugin through the ``pytest11`` entry point, so it is loaded
by every pytest run of an environment where it is installed.  Unless the conformance suite
is collected or a ``--bnconf-*`` option is given, it must leave hypothesis' settings alone,
import no adapter or framework, add no header line, and parametrize nothing, even a test
that happens to use a fixture called ``adapter``.  Each run is a fresh pytest process in a
temporary directory, as a user's project would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

UNRELATED_TEST = '''
import json, os, sys

import pytest
from hypothesis import given, settings, strategies as st


@pytest.fixture
def adapter():
    return "the project's own adapter"


def test_unrelated(adapter):
    assert adapter == "the project's own adapter"


@given(st.integers())
def test_property(n):
    pass


def test_report_state():
    current = settings.default
    watched = ("adapters", "conformance.plugin.session", "torch", "tensorflow", "keras", "jax", "flax")
    state = {
        "max_examples": current.max_examples,
        "derandomize": current.derandomize,
        "database_is_none": current.database is None,
        "profile": settings._current_profile,
        "ours_registered": "nightly" in settings._profiles,
        "imported": sorted(m for m in watched if m in sys.modules),
    }
    with open(os.environ["STATE_FILE"], "w") as f:
        json.dump(state, f)
'''


def _run(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_TEST)
    state_file = tmp_path / "state.json"
    command = [sys.executable, "-m", "pytest", "test_unrelated.py", "-p", "no:cacheprovider", "-v", *options]
    env = {**__import__("os").environ, "STATE_FILE": str(state_file)}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(state_file.read_text())


def test_plugin_is_loaded_in_an_unrelated_run(tmp_path):
    """The premise: the entry point does load the plugin (its options exist)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert "--bnconf-frameworks" in result.stdout


def test_unrelated_run_is_left_alone(tmp_path):
    """Hypothesis' settings equal those of the same run with our plugin disabled.

    The baseline is measured, not assumed: hypothesis itself picks its ``ci`` profile when a
    ``CI`` variable is set, so "default" would be the wrong expectation on a CI machine.
    """
    (tmp_path / "baseline").mkdir()
    (tmp_path / "ours").mkdir()
    _, baseline = _run(tmp_path / "baseline", "-p", "no:bnconf")
    result, state = _run(tmp_path / "ours")
    assert not baseline["ours_registered"]  # the premise: disabling the entry point works
    hypothesis_settings = ("profile", "ours_registered", "max_examples", "derandomize", "database_is_none")
    assert {k: state[k] for k in hypothesis_settings} == {k: baseline[k] for k in hypothesis_settings}
    assert state["imported"] == []
    assert "bnconf" not in result.stdout
    assert "test_unrelated.py::test_unrelated PASSED" in result.stdout  # not parametrized by framework
    assert "3 passed" in result.stdout


def test_the_baseline_run_does_not_load_the_plugin(tmp_path):
    """The comparison above can fail: ``-p no:bnconf`` removes the options our plugin adds."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:bnconf", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--bnconf-frameworks" not in result.stdout


def test_a_bnconf_option_activates_the_plugin(tmp_path):
    """The check above can fail: with ``--bnconf-profile dev`` the profile is loaded and the header printed."""
    result, state = _run(tmp_path, "--bnconf-profile", "dev", "--bnconf-frameworks", "no-such-engine")
    assert state["profile"] == "dev"
    assert state["max_examples"] == 10
    assert "bnconf: profile dev" in result.stdout
    assert "test_unrelated.py::test_unrelated PASSED" in result.stdout  # still not a suite test
