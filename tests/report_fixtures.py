"""Result records for report tests, produced by the real session on the NumPy fakes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
from fakes import CrashingAdapter, NumpyAdapter

from conformance.judging.ledger import Ledger
from conformance.plugin.session import ConformanceFailure, ConformanceSession
from conformance.suite.test_conventions import declared_conventions
from conformance.suite.test_inventory import inventory_counts
from datamodel.case import Case, Generator

HOSTILE_MESSAGE = "<script>window.__bnconf_xss = 1</script><b>bold</b> & more"


class HostileAdapter(CrashingAdapter):
    """Raises an error whose message is HTML, to prove the report shows it as text."""

    name = "hostile-fake"

    def train(self, case, data, settings):
        raise RuntimeError(HOSTILE_MESSAGE)


def write_run(directory: Path, *, version_suffix: str = "", device: str = "cpu", finished: bool = True) -> Path:
    """A run directory with records of an honest, a broken and a crashing implementation.

    Every kind of record is there: results of each, the honest one's parameter counts, a
    convention probe and a ledger replay, a harness failure (an error with no case), and
    (unless ``finished`` is false: a run cut short) the run's completion record.
    """
    results = directory / "records" / "fakes.jsonl"
    session = ConformanceSession(results, ledger=Ledger([]), run_details={"hypothesis_profile": "ci", "device": device})
    case = Case(shape=(6, 3, 4), channel_axis=1, dtype="float32", x=Generator(seed=1, loc=(1.0, -2.0, 3.0)),
                eps=1e-3, decay=0.9, training_steps=2, gamma=np.array([1.0, 2.0, 0.5]), beta=np.array([0.0, 1.0, -1.0]))  # fmt: skip
    for adapter in (NumpyAdapter(""), NumpyAdapter("no_eps"), HostileAdapter("")):
        if version_suffix:
            adapter.version = lambda suffix=version_suffix: f"numpy-fake {suffix}"  # type: ignore[method-assign]
        for prop, phases in (("training", ("training",)), ("inference", ("inference",))):
            with contextlib.suppress(ConformanceFailure):
                session.check(adapter, case, prop, phases)
    honest = NumpyAdapter("")
    if version_suffix:
        honest.version = lambda suffix=version_suffix: f"numpy-fake {suffix}"  # type: ignore[method-assign]
    session.record_counts(honest, case, *inventory_counts(honest, case))
    session.record_probe(honest, case, convention="eps_placement", declared="inside", probed="inside", agrees=True,
                         evidence={"observed_y": 0.7071}, declared_conventions=declared_conventions(honest))  # fmt: skip
    session.record_ledger(honest, case, entry_id="fake-entry", reproduced=True, explained_quantities=["dx"])
    session.record_harness_failure("tests/fake.py::test_x", "hostile-fake", "the suite test failed without a finding")
    if finished:
        session.finish(1, "tests_failed", interrupted=False)
    session.close()
    return directory


def rewrite_schema(path: Path, version) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        line["schema_version"] = version
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
