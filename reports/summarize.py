"""Summaries of result records: the verdict matrix, the worst findings, the totals.

Pure functions of the records (JSON is the source of truth); both the HTML report and the
JSON/Markdown summaries are rendered from what these return.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

VERDICT_ORDER = ("pass", "discrepancy", "error", "unsupported")


def _number(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if value == "inf":
        return float("inf")
    return float("nan") if value == "nan" else 0.0


def verdict_matrix(records: list[dict]) -> dict[str, dict[str, dict[str, int]]]:
    """framework → property → verdict → count."""
    matrix: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for record in records:
        matrix[record["framework"]][record["property"]][record["verdict"]] += 1
    return {fw: {prop: dict(counts) for prop, counts in sorted(props.items())} for fw, props in sorted(matrix.items())}


def worst_by_quantity(records: list[dict]) -> list[dict]:
    """Per framework and quantity, the record with the largest error ratio, and the counts."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        if record["verdict"] in ("pass", "discrepancy"):
            groups[(record["framework"], record["quantity"])].append(record)
    rows = []
    for (framework, quantity), group in sorted(groups.items()):
        worst = max(group, key=lambda r: _number(r.get("ratio")))
        rows.append({
            "framework": framework,
            "quantity": quantity,
            "checks": len(group),
            "discrepancies": sum(r["verdict"] == "discrepancy" for r in group),
            "worst_ratio": _number(worst.get("ratio")),
            "worst_abs_error": _number(worst.get("max_abs_error")),
            "allowed": _number(worst.get("allowed")),
            "dtype": worst.get("dtype"),
            "rank": worst.get("rank"),
            "layout": worst.get("layout"),
            "offset_ratio": worst.get("conditioning", {}).get("offset_ratio"),
            "verdict": worst["verdict"],
        })  # fmt: skip
    return rows


def findings(records: list[dict]) -> list[dict]:
    """Every discrepancy and error record, worst first."""
    found = [r for r in records if r["verdict"] in ("discrepancy", "error")]
    return sorted(found, key=lambda r: (r["framework"], -_number(r.get("ratio"))))


def totals(records: list[dict]) -> dict[str, int]:
    """Records per verdict, and findings split into ``known`` (ledger) and ``unexpected``."""
    counts = Counter(r["verdict"] for r in records)
    result = {verdict: counts.get(verdict, 0) for verdict in VERDICT_ORDER}
    found = [r for r in records if r["verdict"] in ("discrepancy", "error")]
    result["known"] = sum(r.get("known") is not None for r in found)
    result["unexpected"] = len(found) - result["known"]
    return result


def ledger_status(records: list[dict]) -> dict[str, list[dict]]:
    """Ledger entries whose evidence reproduced, those that did not, and new findings."""
    checks = [r for r in records if r["property"] == "ledger"]
    known_hits = Counter(r["known"] for r in records if r.get("known"))
    new = [r for r in findings(records) if r.get("known") is None and r["property"] != "ledger"]
    return {
        "reproduced": [{"id": r["ledger_id"], "framework": r["framework"], "hits": known_hits.get(r["ledger_id"], 0)}
                       for r in checks if r.get("reproduced")],
        "not_reproduced": [{"id": r["ledger_id"], "framework": r["framework"], "message": r["message"]}
                           for r in checks if not r.get("reproduced")],
        "new_findings": new,
    }  # fmt: skip


def conventions_table(records: list[dict]) -> dict[str, dict[str, dict]]:
    """framework → convention → {declared, probed, verdict}, from the conventions probes."""
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for record in records:
        probe = record.get("probe")
        if record["property"] == "conventions" and probe:
            table[record["framework"]][probe["convention"]] = {
                "declared": probe["declared"], "probed": probe["probed"], "verdict": record["verdict"],
            }  # fmt: skip
    return {fw: dict(sorted(c.items())) for fw, c in sorted(table.items())}


def inventory_table(records: list[dict]) -> list[dict]:
    """One row per framework and input shape: variables, counts, and the canonical counts."""
    rows: dict[tuple, dict] = {}
    for record in records:
        inventory = record.get("inventory")
        if record["property"] != "inventory" or not inventory:
            continue
        key = (record["framework"], tuple(record["case"]["shape"]), record["channel_axis"])
        row = rows.setdefault(key, {
            "framework": record["framework"], "shape": list(key[1]), "channel_axis": key[2], "layout": record["layout"],
            "variables": inventory["variables"], "trainable": inventory["trainable_count"],
            "non_trainable": inventory["non_trainable_count"], "total": inventory["total_count"],
            "reported": inventory["reported"], "canonical": inventory["canonical"], "differences": [],
        })  # fmt: skip
        if record["verdict"] != "pass":
            row["differences"].append(record["message"])
    return sorted(rows.values(), key=lambda r: (r["framework"], len(r["shape"]), r["channel_axis"]))
