"""Importing the harness's own packages must not import any framework.

Frameworks cost seconds and hundreds of MB to import, and Keras fixes its backend at first
import; only adapters may import them, and only when used.  Checked in a fresh interpreter,
since this test process may already have imported frameworks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "flax")


@pytest.mark.parametrize(
    "statement",
    [
        "import reference",
        "import conformance",
        "import reports",
        "import adapters",
        "import conformance.orchestration.cli, datamodel.casefile, conformance.judging.check, conformance.judging.tolerance",
        "import conformance.plugin.hooks, conformance.plugin.session, conformance.orchestration.run, conformance.orchestration.replay",
        "import datamodel, datamodel.records",
        "import reports.render",
        "import adapters.registry; adapters.registry.registered()",
        "import adapters.torch, adapters.keras, adapters.flax, adapters.snippets",
    ],
)
def test_import_does_not_load_frameworks(statement):
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules)))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == [], f"{statement!r} imported frameworks"


def test_probe_detects_a_framework_import():
    """The probe itself can fail: importing an adapter's framework shows up in sys.modules."""
    pytest.importorskip("torch")
    probe = "import adapters.torch as t; t._torch()\nimport sys; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "True"
