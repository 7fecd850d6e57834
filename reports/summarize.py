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
    counts = Counter(r["verdict"] for r in records)
    return {verdict: counts.get(verdict, 0) for verdict in VERDICT_ORDER}
