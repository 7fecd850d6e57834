"""Every ledger entry of the framework under test still reproduces from its evidence.

An entry whose evidence no longer shows the discrepancy fails here: the framework fixed
(or changed) something, and the ledger must say so.  Each check writes a ``ledger`` record
with the entry id, whether it reproduced and which quantities it explained.
"""

from __future__ import annotations

import pytest

from conformance.judging.check import check_case
from conformance.judging.conditioning import at_worst, conditioning
from conformance.judging.ledger import Entry, default_ledger
from datamodel.case import Case, Generator
from datamodel.casefile import load_case
from datamodel.records import CheckRecord, count_record, result_record

from .test_inventory import inventory_counts


def _entries():
    return [pytest.param(entry, id=entry.id) for entry in default_ledger().entries]


def _evidence_records(adapter, entry: Entry, device: str = "cpu") -> tuple[Case, list[CheckRecord]]:
    """Replay the entry's evidence on ``adapter``: the records a suite run would write for it."""
    evidence, label, version = entry.evidence, adapter.label, adapter.version()
    if "inventory" in evidence:
        spec = evidence["inventory"]
        case = Case(shape=tuple(spec["shape"]), channel_axis=spec["channel_axis"], dtype="float32", x=Generator())
        counts, inventory = inventory_counts(adapter, case)
        return case, [
            count_record(run_id=None, framework=label, framework_version=version, case=case, quantity=c.quantity,
                         observed=c.observed, canonical=c.canonical, message=c.message, inventory=inventory)
            for c in counts
        ]  # fmt: skip
    case = load_case(entry.case_path)
    if adapter.unsupported_reason(case) is not None and device in ("cpu", "gpu"):
        # evidence recorded on one device replays on the session's, where the adapter runs only there
        case = case.with_(device=device)
    data = case.materialize()
    hard = conditioning(case, data)
    prop = (entry.match.get("property") or ["ledger-evidence"])[0]
    return case, [
        result_record(run_id=None, prop=prop, framework=label, framework_version=version, case=case, comparison=c,
                      conditioning=at_worst(hard, case, data, c.quantity, c.worst_index))
        for c in check_case(adapter, case, data).comparisons
    ]  # fmt: skip


@pytest.mark.parametrize("entry", _entries())
def test_ledger_entry_reproduces(conformance, adapter, bnconf_device, entry):
    if adapter.label not in entry.match.get("framework", [adapter.label]):
        pytest.skip(f"{entry.id} is about {', '.join(entry.match['framework'])}")
    case, records = _evidence_records(adapter, entry, bnconf_device)
    explained = sorted({r.quantity for r in records if r.verdict != "pass" and entry.explains(r)})
    reproduced = bool(explained)
    message = "" if reproduced else (
        f"ledger entry {entry.id} no longer reproduces on {adapter.label} {adapter.version()}: "
        f"its evidence shows no discrepancy it explains; update or remove the entry ({entry.source})"
    )  # fmt: skip
    conformance.record_ledger(adapter, case, entry_id=entry.id, reproduced=reproduced, explained_quantities=explained,
                              message=message)  # fmt: skip
