"""Convention probes do not pass a third behaviour by proximity.

The conventions probes (``conformance/suite/test_conventions.py``) run in a subprocess on the
honest NumPy fake and on fakes that follow neither the declared convention nor its obvious
alternative (``third_behaviour_fakes``).  The honest one's probes pass with their residuals
inside the allowed error; each third behaviour is a discrepancy saying that no candidate
predicts the observation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PROBES = HERE.parent / "conformance" / "suite" / "test_conventions.py"
FAKES = {
    "numpy-fake": "fakes:NumpyAdapter",
    "eps-twice-fake": "third_behaviour_fakes:EpsTwiceAdapter",
    "debiased-fake": "third_behaviour_fakes:DebiasedAverageAdapter",
}


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """(framework, convention) → the probe record (the first; a minimal re-write repeats it)."""
    results = tmp_path_factory.mktemp("probes") / "records.jsonl"
    env = {**os.environ, "BNCONF_ADAPTERS": ",".join(f"{k}={v}" for k, v in FAKES.items()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "pytest", str(PROBES), "-q", "-p", "no:cacheprovider", "--tb=no",
               f"--bnconf-frameworks={','.join(FAKES)}", f"--bnconf-results={results}"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=300)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # the third behaviours fail
    found: dict[tuple[str, str], dict] = {}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "probe" and not record["minimal"]:
            found.setdefault((record["framework"], record["quantity"]), record)
    return found


CONVENTIONS = ("momentum_form", "running_variance", "eps_placement", "eps_default", "default_decay")


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_honest_fake_passes_every_probe_within_the_allowed_error(probes, convention):
    record = probes[("numpy-fake", convention)]
    assert record["verdict"] == "pass", record["message"]
    assert record["probed"] == record["declared"]
    assert 0 <= record["evidence"]["residual"] <= record["evidence"]["allowed"] < 1e-12


@pytest.mark.parametrize(
    ("framework", "convention", "nearest"),
    [("eps-twice-fake", "eps_placement", "outside"), ("debiased-fake", "momentum_form", "old_weight")],
)
def test_a_third_behaviour_matches_neither_candidate(probes, framework, convention, nearest):
    """ε added inside and outside the root is nearer "outside"; a debiased average is nearer the
    inverted momentum: a nearest-candidate probe would name the wrong convention."""
    record = probes[(framework, convention)]
    assert (record["verdict"], record["probed"]) == ("discrepancy", "neither")
    evidence = record["evidence"]
    assert evidence["residual"] > evidence["allowed"]
    observed = next(value for key, value in evidence.items() if key.startswith("observed_"))
    assert f"observed {'y_train' if convention == 'eps_placement' else 'running_mean'}" in record["message"]
    assert f"{observed:.16g}" in record["message"]
    assert "which no candidate predicts" in record["message"]
    for name, value in evidence.items():
        if name.startswith("predicted["):
            assert f"{name[len('predicted[') : -1]} → {value:.16g}" in record["message"]
    assert f"allowed error {evidence['allowed']:.3g}" in record["message"]
    assert f"the nearest, {nearest}," in record["message"]


def test_a_default_off_by_less_than_rounding_is_still_a_discrepancy(probes):
    """ε added twice implies ε ≈ 1.0066e-5: 1e-05 at two significant digits, but not within the
    tolerance of the declared default's prediction."""
    record = probes[("eps-twice-fake", "eps_default")]
    assert record["verdict"] == "discrepancy"
    assert record["declared"] == 1e-5
    assert record["probed"] != record["declared"]
    assert "declared 1e-05, but observed y_train[0, 1, 0]" in record["message"]
    assert record["evidence"]["residual"] <= record["evidence"]["allowed"], "the implied ε predicts the observation"


def test_third_behaviours_pass_the_probes_they_do_not_touch(probes):
    assert probes[("eps-twice-fake", "running_variance")]["verdict"] == "pass"
    assert probes[("debiased-fake", "eps_placement")]["verdict"] == "pass"
