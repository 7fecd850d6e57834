"""The suite catches broken batch norms: every deliberate mistake in ``tests/fakes.py`` is reported.

The real suite (``pytest conformance``, ``ci`` profile) runs in a subprocess on the honest
NumPy implementation and on each broken variant, registered through ``BNCONF_ADAPTERS``.
The honest one must pass everything; each broken one must produce an unexpected finding
in the property and quantities where its mistake shows.  This is the proof that the
tolerance model, wide enough to pass correct implementations on hard data, still fails
wrong ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from fakes import BUGS

HERE = Path(__file__).parent
SUITE = HERE.parent / "conformance" / "suite"
SUITE_MODULES = ["test_ordinary.py", "test_numerics.py", "test_conventions.py", "test_degenerate.py"]

#: bug → (property, quantities) where it must be reported (at least one of the quantities).
EXPECTED = {
    "eps_outside": ("inference", {"y_eval"}),
    "no_eps": ("inference", {"y_eval"}),
    "unbiased_normalization": ("training", {"y_train"}),
    "batch_axis_only": ("training", {"y_train"}),
    "momentum_flipped": ("training", {"running_mean", "running_var"}),
    "biased_running_var": ("training", {"running_var"}),
    "stale_running_stats": ("training", {"running_mean", "running_var"}),
    "eval_uses_batch_stats": ("inference", {"y_eval"}),
    "eval_skips_eps": ("inference", {"y_eval"}),
    "gamma_beta_swapped": ("inference", {"y_eval"}),
    "channels_reversed": ("inference", {"y_eval"}),
    "half_precision": ("training", {"y_train", "running_mean", "running_var", "y_eval_after"}),
    "fast_variance": ("training", {"y_train", "running_var", "y_eval_after"}),
    "dx_no_mean_term": ("gradients", {"dx"}),
    "dx_no_variance_term": ("gradients", {"dx"}),
    "dgamma_unnormalized": ("gradients", {"dgamma"}),
    "dbeta_mean": ("gradients", {"dbeta"}),
    "wrong_declared_defaults": ("conventions", {"eps_default", "default_decay"}),
}
#: conventions the probes must see through (bug → convention probe that reports it).
PROBED = {"eps_outside": "eps_placement", "momentum_flipped": "momentum_form", "biased_running_var": "running_variance",
          "wrong_declared_defaults": "eps_default"}


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> dict[str, dict[str, set[str]]]:
    """framework spec → property → quantities with unexpected findings, from one suite run."""
    out = tmp_path_factory.mktemp("detection")
    results = out / "records" / "fakes.jsonl"
    specs = ["numpy-fake", *(f"numpy-fake:{bug}" for bug in BUGS)]
    env = {**os.environ, "BNCONF_ADAPTERS": "numpy-fake=fakes:NumpyAdapter",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [
        sys.executable, "-m", "pytest", *(str(SUITE / m) for m in SUITE_MODULES), "-q", "-p", "no:cacheprovider",
        f"--bnconf-frameworks={','.join(specs)}", "--bnconf-profile=ci", f"--bnconf-results={results}", "--tb=no",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=900)
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-3000:]
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for line in results.read_text().splitlines():
        record = json.loads(line)
        if record.get("verdict") in ("discrepancy", "error") and record.get("known") is None:
            found[record["framework"]][record["property"]].add(record["quantity"])
        if record.get("verdict") == "pass":
            PASSED[record["framework"]].add(record["property"])
    return found


#: framework spec → properties with at least one passing check (filled by ``findings``).
PASSED: dict[str, set[str]] = defaultdict(set)


def test_honest_implementation_passes_everything(findings):
    assert dict(findings.get("numpy-fake", {})) == {}
    # ... and it really ran: every property has passing checks (a run that errored or was
    # skipped wholesale would also have no findings).
    assert PASSED["numpy-fake"] >= {"ordinary", "training", "inference", "gradients", "conventions", "degenerate"}


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_broken_implementation_is_reported(findings, bug):
    prop, quantities = EXPECTED[bug]
    reported = findings.get(f"numpy-fake:{bug}", {})
    assert reported, f"{bug} ({BUGS[bug]}) was not reported by any property"
    assert reported.get(prop, set()) & quantities, f"{bug}: expected {prop} {sorted(quantities)}, got {dict(reported)}"


@pytest.mark.parametrize("bug", sorted(PROBED))
def test_convention_probes_see_the_mistake(findings, bug):
    assert PROBED[bug] in findings.get(f"numpy-fake:{bug}", {}).get("conventions", set())


def test_every_bug_is_covered():
    assert set(EXPECTED) == set(BUGS)
