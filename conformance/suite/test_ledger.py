"""Every ledger entry of the framework under test still reproduces from its evidence.

An entry whose evidence no longer shows the discrepancy fails here: the framework fixed
(or changed) something, and the ledger must say so.  Each check writes a ``ledger`` record
with the entry id, whether it reproduced and which quantities it explained.  An entry scoped
to a device (or backend) the session does not run on is written as not replayed here, with
what it needs (``Entry.scope_reason``): never reproduced, never failed.
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


def _evidence_case(entry: Entry) -> Case:
    """The case of the entry's evidence: its case file, or the inventory's shape and channel axis."""
    if "inventory" in entry.evidence:
        spec = entry.evidence["inventory"]
        return Case(shape=tuple(spec["shape"]), channel_axis=spec["channel_axis"], dtype="float32", x=Generator())
    return load_case(entry.case_path)


def _evidence_records(adapter, entry: Entry, device: str = "cpu") -> tuple[Case, list[CheckRecord]]:
    """Replay the entry's evidence on ``adapter``: the records a suite run would write for it."""
    label, version = adapter.label, adapter.version()
    case = _evidence_case(entry)
    if "inventory" in entry.evidence:
        counts, inventory = inventory_counts(adapter, case)
        return case, [
            count_record(run_id=None, framework=label, framework_version=version, case=case, quantity=c.quantity,
                         observed=c.observed, canonical=c.canonical, message=c.message, inventory=inventory)
            for c in counts
        ]  # fmt: skip
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
    scope = entry.scope_reason(bnconf_device, adapter.device_info())
    if scope is not None:
        conformance.record_ledger(adapter, _evidence_case(entry), entry_id=entry.id, reproduced=None, explained_quantities=[],
                                  message=f"{entry.id}: {scope}", entry=entry)  # fmt: skip
        return
    case, records = _evidence_records(adapter, entry, bnconf_device)
    explained = sorted({r.quantity for r in records if r.verdict != "pass" and entry.explains(r)})
    reproduced = bool(explained)
    message = "" if reproduced else (
        f"ledger entry {entry.id} no longer reproduces on {adapter.label} {adapter.version()}: "
        f"its evidence shows no discrepancy it explains; update or remove the entry ({entry.source})"
    )  # fmt: skip
    conformance.record_ledger(adapter, case, entry_id=entry.id, reproduced=reproduced, explained_quantities=explained,
                              message=message, entry=entry)  # fmt: skip
