"""Every ledger entry of the framework under test still reproduces from its evidence.

An entry whose evidence no longer shows the discrepancy fails here: the framework fixed
(or changed) something, and the ledger must say so.  Each check writes a ``ledger`` record
with the entry id and whether it reproduced.
"""

from __future__ import annotations

import pytest

from conformance.judging.check import check_case
from conformance.judging.compare import DISCREPANCY, PASS, Comparison
from conformance.judging.ledger import Entry, default_ledger
from conformance.plugin.session import conditioning, worst_channel_offset
from datamodel.case import Case, Generator
from datamodel.casefile import load_case
from datamodel.records import make_record

from .test_inventory import inventory_comparisons


def _entries():
    return [pytest.param(entry, id=entry.id) for entry in default_ledger().entries]


def _reproduced(adapter, entry: Entry) -> tuple[bool, object, dict]:
    """Replay the entry's evidence on ``adapter``; say whether the entry explains what it finds."""
    evidence = entry.evidence
    if "inventory" in evidence:
        spec = evidence["inventory"]
        case = Case(shape=tuple(spec["shape"]), channel_axis=spec["channel_axis"], dtype="float32", x=Generator())
        comparisons, extra = inventory_comparisons(adapter, case)
        prop = "inventory"
    else:
        case = load_case(entry.case_path)
        data = case.materialize()
        comparisons = check_case(adapter, case, data).comparisons
        extra = {"conditioning": conditioning(case, data)}
        prop = (entry.match.get("property") or ["ledger-evidence"])[0]
    records = []
    for comparison in comparisons:
        details = extra
        if "conditioning" in extra:
            at_worst = worst_channel_offset(case, data, comparison)
            details = {**extra, "conditioning": {**extra["conditioning"], "worst_channel_offset_ratio": at_worst}}
        records.append(make_record(prop=prop, framework=adapter.label, framework_version=adapter.version(), case=case,
                                   comparison=comparison, extra=details))  # fmt: skip
    explained = [r for r in records if r["verdict"] != PASS and entry.explains(r)]
    return bool(explained), case, {"explained_quantities": sorted({r["quantity"] for r in explained})}


@pytest.mark.parametrize("entry", _entries())
def test_ledger_entry_reproduces(conformance, adapter, bnconf_device, entry):
    if adapter.label not in entry.match.get("framework", [adapter.label]):
        pytest.skip(f"{entry.id} is about {', '.join(entry.match['framework'])}")
    reproduced, case, details = _reproduced(adapter, entry)
    comparison = Comparison(
        entry.id, PASS if reproduced else DISCREPANCY, total=1, mismatched=int(not reproduced),
        ratio=0.0 if reproduced else float("inf"),
        message="" if reproduced else (
            f"ledger entry {entry.id} no longer reproduces on {adapter.label} {adapter.version()}: "
            f"its evidence shows no discrepancy it explains; update or remove the entry ({entry.source})"
        ),
    )  # fmt: skip
    conformance.record(adapter, case, "ledger", [comparison], {"ledger_id": entry.id, "reproduced": reproduced, **details})
