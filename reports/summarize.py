"""Summaries of result records: verdict matrix, worst errors, ledger, conventions, inventories.

Pure functions of the validated record models (``datamodel.records``; JSON is the source of
truth): the HTML report and the JSON and Markdown summaries are rendered from what these
return.  Each table reads the kind of record it is about: the tolerance tables and plots
``result`` records, the parameter counts ``count`` records, the conventions ``probe``
records, the ledger status ``ledger`` records, and whether each run finished its
``environment``, ``run_end`` and crash ``error`` records.  What they return is plain data (dicts,
lists, numbers) ready for ``summary.json``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from datamodel.records import (
    CheckRecord,
    CountRecord,
    EnvironmentRecord,
    ErrorRecord,
    FrameworkRecord,
    LedgerRecord,
    ProbeRecord,
    ResultRecord,
    RunEndRecord,
)
from datamodel.verdicts import DISCREPANCY, PASS, VERDICTS

VERDICT_ORDER = VERDICTS


def split(records: list) -> tuple[list[CheckRecord], list[EnvironmentRecord], list[FrameworkRecord]]:
    """(check records, environment records, framework records)."""
    environments = [r for r in records if isinstance(r, EnvironmentRecord)]
    frameworks = [r for r in records if isinstance(r, FrameworkRecord)]
    checks = [r for r in records if not isinstance(r, (EnvironmentRecord, FrameworkRecord, RunEndRecord))]
    return checks, environments, frameworks


def counted(results: list[CheckRecord]) -> list[CheckRecord]:
    """The results to count: a minimal counterexample re-writes a finding already recorded."""
    return [r for r in results if not r.minimal]


def toleranced(results: list[CheckRecord]) -> list[ResultRecord]:
    """The ``result`` records that measured an error against a tolerance (a pass or a discrepancy)."""
    return [r for r in results if isinstance(r, ResultRecord) and r.ratio is not None and r.verdict in (PASS, DISCREPANCY)]


def offset_ratio(record: ResultRecord) -> float:
    """The largest |mean|/std of the record's data (0 when it was not measured)."""
    return record.conditioning.offset_ratio if record.conditioning else 0.0


def verdict_matrix(results: list[CheckRecord]) -> list[dict]:
    """One row per framework, version, device and property, with a count per verdict."""
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for r in results:
        counts[(r.framework, r.framework_version, r.device, r.property)][r.verdict] += 1
    return [
        {"framework": fw, "version": version, "device": device, "property": prop,
         "counts": {v: c.get(v, 0) for v in VERDICT_ORDER}}
        for (fw, version, device, prop), c in sorted(counts.items())
    ]  # fmt: skip


def framework_totals(results: list[CheckRecord]) -> dict[str, dict[str, int]]:
    totals: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        totals[r.framework][r.verdict] += 1
    return {fw: {v: c.get(v, 0) for v in VERDICT_ORDER} for fw, c in sorted(totals.items())}


def worst_by_quantity(results: list[CheckRecord]) -> list[dict]:
    """Per framework, device and quantity: the result with the largest error ratio, and counts."""
    groups: dict[tuple, list[ResultRecord]] = defaultdict(list)
    for r in toleranced(results):
        groups[(r.framework, r.device, r.quantity)].append(r)
    rows = []
    for (framework, device, quantity), group in sorted(groups.items()):
        worst = max(group, key=lambda r: r.ratio)
        rows.append({
            "framework": framework, "device": device, "quantity": quantity, "property": worst.property,
            "checks": len(group), "discrepancies": sum(r.verdict == DISCREPANCY for r in group),
            "uninformative": sum(r.uninformative for r in group) / max(1, sum(r.total for r in group)),
            "worst_ratio": worst.ratio, "worst_abs_error": worst.error_at_worst, "allowed": worst.allowed,
            "dtype": worst.dtype, "rank": worst.rank, "layout": worst.layout, "offset_ratio": offset_ratio(worst),
            "conditioning": (worst.conditioning.data_class if worst.conditioning else None) or "",
            "verdict": worst.verdict, "known": worst.known,
        })  # fmt: skip
    return rows


def _severity(record: CheckRecord) -> float:
    """How far a finding is from passing: a result's ratio; an exact mismatch (count, probe,
    ledger) is infinitely far; an error has no measure."""
    if isinstance(record, ResultRecord):
        return record.ratio if record.ratio is not None else 0.0
    return math.inf if record.verdict == DISCREPANCY else 0.0


def findings(results: list[CheckRecord]) -> list[CheckRecord]:
    """Every discrepancy and error, unexpected first, then the worst first."""
    found = [r for r in results if r.is_finding]
    return sorted(found, key=lambda r: (r.known is not None, r.framework, -_severity(r)))


def counterexamples(results: list[CheckRecord]) -> list[CheckRecord]:
    """The findings worth reading: every minimal counterexample, and for each kind of finding
    (framework, property, quantity, ledger entry) without one, its smallest case."""
    minimal = [r for r in results if r.minimal]
    covered = {(r.framework, r.property, r.quantity) for r in minimal}
    smallest: dict[tuple, tuple[float, CheckRecord]] = {}
    for r in findings(results):
        kind = (r.framework, r.property, r.quantity, r.known)
        if kind[:3] in covered:
            continue
        size = math.prod(r.case["shape"]) if r.case else math.inf  # a crash between checks has no case
        if kind not in smallest or size < smallest[kind][0]:
            smallest[kind] = (size, r)
    chosen = sorted((r for _, r in smallest.values()), key=lambda r: (r.framework, r.property, r.quantity))
    return minimal + chosen


def totals(results: list[CheckRecord]) -> dict[str, int]:
    """Records per verdict, and findings split into ``known`` (ledger) and ``unexpected``."""
    counts = Counter(r.verdict for r in results)
    result = {verdict: counts.get(verdict, 0) for verdict in VERDICT_ORDER}
    found = [r for r in results if r.is_finding]
    result["known"] = sum(r.known is not None for r in found)
    result["unexpected"] = len(found) - result["known"]
    return result


def ledger_status(results: list[CheckRecord]) -> dict[str, list[dict]]:
    """Ledger entries whose evidence reproduced, those that did not, those not replayed here
    (``reproduced`` ``None``: scoped to a device or backend the run lacks; neither reproduced
    nor failed, and their message says what they need), and new findings."""
    checks = [r for r in results if isinstance(r, LedgerRecord)]
    hits = Counter((r.framework, r.known) for r in results if r.known)
    new = [r for r in findings(results) if r.known is None and not isinstance(r, LedgerRecord)]
    return {
        "reproduced": [{"id": r.entry_id, "framework": r.framework, "version": r.framework_version,
                        "hits": hits.get((r.framework, r.entry_id), 0)} for r in checks if r.reproduced],
        "not_reproduced": [{"id": r.entry_id, "framework": r.framework, "version": r.framework_version,
                            "message": r.message} for r in checks if r.reproduced is False],
        "not_replayed": [{"id": r.entry_id, "framework": r.framework, "version": r.framework_version,
                          "message": r.message or "not replayed here"} for r in checks if r.reproduced is None],
        "new_findings": [{"framework": r.framework, "property": r.property, "quantity": r.quantity,
                          "message": r.message, "replay": r.replay} for r in new],
    }  # fmt: skip


def conventions_table(results: list[CheckRecord]) -> list[dict]:
    """One row per framework: every declared convention, and the probed value where probed."""
    rows: dict[str, dict] = {}
    for r in results:
        if not isinstance(r, ProbeRecord):
            continue
        row = rows.setdefault(r.framework, {"framework": r.framework, "declared": r.declared_conventions, "probes": {}})
        row["probes"][r.convention] = {"declared": r.declared, "probed": r.probed, "verdict": r.verdict}
    return [rows[k] for k in sorted(rows)]


def inventory_table(results: list[CheckRecord]) -> list[dict]:
    """One row per framework and input shape: variables, counts, and the canonical counts."""
    rows: dict[tuple, dict] = {}
    for r in results:
        if not isinstance(r, CountRecord) or r.case is None:
            continue
        key = (r.framework, tuple(r.case["shape"]), r.channel_axis)
        inventory = r.inventory.model_dump()
        row = rows.setdefault(key, {
            "framework": r.framework, "shape": list(key[1]), "channel_axis": key[2], "layout": r.layout,
            "variables": inventory["variables"], "trainable": inventory["trainable_count"],
            "non_trainable": inventory["non_trainable_count"], "total": inventory["total_count"],
            "reported": inventory["reported"], "canonical": inventory["canonical"], "differences": [], "known": set(),
        })  # fmt: skip
        if r.verdict != PASS:
            row["differences"].append(r.message)
            if r.known:
                row["known"].add(r.known)
    out = sorted(rows.values(), key=lambda r: (r["framework"], len(r["shape"]), r["channel_axis"]))
    return [{**row, "known": sorted(row["known"])} for row in out]


def cross_device(results: list[CheckRecord]) -> list[dict]:
    """Per framework and quantity, the worst ratio on each device (for the CPU/GPU comparison)."""
    worst: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in toleranced(results):
        key = (r.framework, r.quantity)
        worst[key][r.device] = max(worst[key].get(r.device, 0.0), r.ratio)
    return [{"framework": fw, "quantity": q, "devices": d} for (fw, q), d in sorted(worst.items()) if len(d) > 1]


#: Outcomes of a framework's process (``bnconf run``'s ``runs``) that cut its run short.
_CUT_SHORT = ("crashed", "hung", "interrupted")


def partial_runs(records: list, runs: list[dict] | None = None) -> list[dict]:
    """The runs that did not finish, each with the frameworks it covered and why.

    A suite process writes ``environment`` first and ``run_end`` last; a run is partial when
    its process crashed or hung (the supervisor's ``error`` record), was interrupted (its
    ``run_end`` says so), or its records end without ``run_end`` (killed, or cut short).
    ``runs`` (from ``bnconf run``) adds processes whose outcome says they were cut short.
    """
    started = {r.run_id: r for r in records if isinstance(r, EnvironmentRecord)}
    ended = {r.run_id: r for r in records if isinstance(r, RunEndRecord)}
    frameworks: dict[str | None, set[str]] = defaultdict(set)
    died: dict[str | None, list[str]] = defaultdict(list)
    for r in records:
        if not isinstance(r, (EnvironmentRecord, RunEndRecord)):  # a framework or check record
            frameworks[r.run_id].add(r.framework)
        if isinstance(r, ErrorRecord) and r.cause in ("crash", "hang"):
            died[r.run_id].append(r.message)
    partial: dict[str | None, dict] = {}
    for run_id in sorted({*started, *died}, key=str):
        end = ended.get(run_id)
        if died[run_id]:
            reason = "; ".join(died[run_id])
        elif end is None:
            reason = "its records end without the run's completion record (the process was killed, or the file was cut short)"
        elif end.interrupted:
            reason = f"interrupted (pytest exit status {end.exit_status})"
        else:
            continue
        names = frameworks[run_id] or _named_in(started.get(run_id))
        partial[run_id] = {"run_id": run_id, "frameworks": sorted(names) or ["unknown"], "reason": reason}
    covered = {name for row in partial.values() for name in row["frameworks"]}
    for run in runs or []:
        outcome = str(run.get("outcome", ""))
        cut_short = outcome.startswith(_CUT_SHORT) or run.get("exit_code") == 2 or run.get("interrupted", False)
        specs = set(run.get("specs") or [run.get("framework", "unknown")])
        if cut_short and not specs & covered:
            partial[f"process {run.get('framework')}"] = {"run_id": None, "frameworks": sorted(specs),
                                                          "reason": f"its process {outcome or 'did not finish'}"}  # fmt: skip
    return list(partial.values())


def _named_in(environment: EnvironmentRecord | None) -> set[str]:
    """The framework specs a run was asked for (its ``--bnconf-frameworks``), when it wrote no checks."""
    if environment is None or not environment.frameworks:
        return set()
    return {spec.strip() for spec in environment.frameworks.split(",") if spec.strip()}
