"""Summaries of result records: verdict matrix, worst errors, ledger, conventions, inventories.

Pure functions of the records (JSON is the source of truth): the HTML report and the JSON
and Markdown summaries are rendered from what these return.  ``split`` separates result
records from the records that describe runs (environment) and frameworks (versions, devices).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

VERDICT_ORDER = ("pass", "discrepancy", "error", "unsupported")
FINDING_VERDICTS = ("discrepancy", "error")
#: Properties whose records are counts or probes, not toleranced numbers.
NON_NUMERIC_PROPERTIES = ("inventory", "conventions", "ledger")


def number(value: Any) -> float:
    """A record's numeric field as a float (non-finite values are stored as strings)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}.get(value, 0.0)


def split(records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(results, environment records, framework records)."""
    kinds: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        kinds[record.get("record_type", "result")].append(record)
    return kinds["result"], kinds["environment"], kinds["framework"]


def counted(results: list[dict]) -> list[dict]:
    """The results to count: a minimal counterexample re-writes a finding already recorded."""
    return [r for r in results if not r.get("minimal")]


def verdict_matrix(results: list[dict]) -> list[dict]:
    """One row per framework, version, device and property, with a count per verdict."""
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for r in results:
        counts[(r["framework"], r.get("framework_version", ""), r.get("device", "cpu"), r["property"])][r["verdict"]] += 1
    return [
        {"framework": fw, "version": version, "device": device, "property": prop,
         "counts": {v: c.get(v, 0) for v in VERDICT_ORDER}}
        for (fw, version, device, prop), c in sorted(counts.items())
    ]  # fmt: skip


def framework_totals(results: list[dict]) -> dict[str, dict[str, int]]:
    totals: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        totals[r["framework"]][r["verdict"]] += 1
    return {fw: {v: c.get(v, 0) for v in VERDICT_ORDER} for fw, c in sorted(totals.items())}


def worst_by_quantity(results: list[dict]) -> list[dict]:
    """Per framework, device and quantity: the record with the largest error ratio, and counts."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        numeric = r["property"] not in NON_NUMERIC_PROPERTIES
        if numeric and r["verdict"] in ("pass", "discrepancy") and r.get("ratio") is not None:
            groups[(r["framework"], r.get("device", "cpu"), r["quantity"])].append(r)
    rows = []
    for (framework, device, quantity), group in sorted(groups.items()):
        worst = max(group, key=lambda r: number(r.get("ratio")))
        conditioning = worst.get("conditioning") or {}
        rows.append({
            "framework": framework, "device": device, "quantity": quantity, "property": worst["property"],
            "checks": len(group), "discrepancies": sum(r["verdict"] == "discrepancy" for r in group),
            "uninformative": sum(r.get("uninformative", 0) for r in group) / max(1, sum(r.get("total", 0) for r in group)),
            "worst_ratio": number(worst.get("ratio")), "worst_abs_error": number(worst.get("error_at_worst")),
            "allowed": number(worst.get("allowed")), "dtype": worst.get("dtype"), "rank": worst.get("rank"),
            "layout": worst.get("layout"), "offset_ratio": number(conditioning.get("offset_ratio")),
            "conditioning": conditioning.get("class") or "", "verdict": worst["verdict"], "known": worst.get("known"),
        })  # fmt: skip
    return rows


def findings(results: list[dict]) -> list[dict]:
    """Every discrepancy and error, unexpected first, then the worst ratio first."""
    found = [r for r in results if r["verdict"] in FINDING_VERDICTS]
    return sorted(found, key=lambda r: (r.get("known") is not None, r["framework"], -number(r.get("ratio"))))


def counterexamples(results: list[dict]) -> list[dict]:
    """The findings worth reading: every minimal counterexample, and for each kind of finding
    (framework, property, quantity, ledger entry) without one, its smallest case."""
    minimal = [r for r in results if r.get("minimal")]
    covered = {(r["framework"], r["property"], r["quantity"]) for r in minimal}
    smallest: dict[tuple, dict] = {}
    for r in findings(results):
        kind = (r["framework"], r["property"], r["quantity"], r.get("known"))
        if kind[:3] in covered:
            continue
        size = 1
        for n in r["case"]["shape"]:
            size *= n
        if kind not in smallest or size < smallest[kind]["_size"]:
            smallest[kind] = {**r, "_size": size}
    chosen = minimal + sorted(smallest.values(), key=lambda r: (r["framework"], r["property"], r["quantity"]))
    return [{k: v for k, v in r.items() if k != "_size"} for r in chosen]


def totals(results: list[dict]) -> dict[str, int]:
    """Records per verdict, and findings split into ``known`` (ledger) and ``unexpected``."""
    counts = Counter(r["verdict"] for r in results)
    result = {verdict: counts.get(verdict, 0) for verdict in VERDICT_ORDER}
    found = [r for r in results if r["verdict"] in FINDING_VERDICTS]
    result["known"] = sum(r.get("known") is not None for r in found)
    result["unexpected"] = len(found) - result["known"]
    return result


def ledger_status(results: list[dict]) -> dict[str, list[dict]]:
    """Ledger entries whose evidence reproduced, those that did not, and new findings."""
    checks = [r for r in results if r["property"] == "ledger"]
    hits = Counter((r["framework"], r["known"]) for r in results if r.get("known"))
    new = [r for r in findings(results) if r.get("known") is None and r["property"] != "ledger"]
    return {
        "reproduced": [{"id": r["ledger_id"], "framework": r["framework"], "version": r.get("framework_version"),
                        "hits": hits.get((r["framework"], r["ledger_id"]), 0)} for r in checks if r.get("reproduced")],
        "not_reproduced": [{"id": r["ledger_id"], "framework": r["framework"], "version": r.get("framework_version"),
                            "message": r["message"]} for r in checks if not r.get("reproduced")],
        "new_findings": [{"framework": r["framework"], "property": r["property"], "quantity": r["quantity"],
                          "message": r["message"], "replay": r.get("replay")} for r in new],
    }  # fmt: skip


def conventions_table(results: list[dict]) -> list[dict]:
    """One row per framework: every declared convention, and the probed value where probed."""
    rows: dict[str, dict] = {}
    for r in results:
        probe = r.get("probe")
        if r["property"] != "conventions" or not probe:
            continue
        row = rows.setdefault(r["framework"], {"framework": r["framework"], "declared": r.get("declared_conventions") or {},
                                               "probes": {}})  # fmt: skip
        row["probes"][probe["convention"]] = {"declared": probe["declared"], "probed": probe["probed"], "verdict": r["verdict"]}
    return [rows[k] for k in sorted(rows)]


def inventory_table(results: list[dict]) -> list[dict]:
    """One row per framework and input shape: variables, counts, and the canonical counts."""
    rows: dict[tuple, dict] = {}
    for r in results:
        inventory = r.get("inventory")
        if r["property"] != "inventory" or not inventory:
            continue
        key = (r["framework"], tuple(r["case"]["shape"]), r["channel_axis"])
        row = rows.setdefault(key, {
            "framework": r["framework"], "shape": list(key[1]), "channel_axis": key[2], "layout": r["layout"],
            "variables": inventory["variables"], "trainable": inventory["trainable_count"],
            "non_trainable": inventory["non_trainable_count"], "total": inventory["total_count"],
            "reported": inventory["reported"], "canonical": inventory["canonical"], "differences": [], "known": set(),
        })  # fmt: skip
        if r["verdict"] != "pass":
            row["differences"].append(r["message"])
            if r.get("known"):
                row["known"].add(r["known"])
    out = sorted(rows.values(), key=lambda r: (r["framework"], len(r["shape"]), r["channel_axis"]))
    return [{**row, "known": sorted(row["known"])} for row in out]


def cross_device(results: list[dict]) -> list[dict]:
    """Per framework and quantity, the worst ratio on each device (for the CPU/GPU comparison)."""
    worst: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in results:
        if r.get("ratio") is None or r["verdict"] not in ("pass", "discrepancy"):
            continue
        key = (r["framework"], r["quantity"])
        device = r.get("device", "cpu")
        worst[key][device] = max(worst[key].get(device, 0.0), number(r["ratio"]))
    return [{"framework": fw, "quantity": q, "devices": d} for (fw, q), d in sorted(worst.items()) if len(d) > 1]
