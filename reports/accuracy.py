"""The accuracy grades of the result records, per engine and data class.

Each ``result`` record that measured an error carries an ``accuracy_grade``: its largest
error in units of what a numerically stable implementation in the case's dtype makes on the
same data (``conformance.judging.accuracy`` defines it).  About 1 is as accurate as a stable
implementation; 10 is ten times less accurate, which the tolerance bound may still allow on
ill-conditioned data.  This module groups the grades by engine (framework spec, and device
when the records hold more than one) and by the data's conditioning class, and lays them out
as the report's engine × class table.  Plain data, ready for ``summary.json``.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from datamodel.records import CheckRecord, ResultRecord
from datamodel.verdicts import DISCREPANCY, LESS_ACCURATE, PASS

#: The class of cases the strategies did not draw (the fixed grids: ordinary, degenerate, ledger evidence).
FIXED = "fixed cases"
ALL = "all"


def graded(results: list[CheckRecord]) -> list[ResultRecord]:
    """The result records with a grade (a pass or a discrepancy of a quantity against the reference)."""
    return [
        r for r in results
        if isinstance(r, ResultRecord) and r.accuracy_grade is not None and not math.isnan(r.accuracy_grade)
        and r.verdict in (PASS, DISCREPANCY)
    ]  # fmt: skip


def data_class(record: ResultRecord) -> str:
    return (record.conditioning.data_class if record.conditioning else None) or FIXED


def _grades(group: list[ResultRecord]) -> dict[str, Any]:
    grades = [r.accuracy_grade for r in group]
    passing = [r.accuracy_grade for r in group if r.verdict == PASS]
    worst = max(group, key=lambda r: r.accuracy_grade)
    return {
        "checks": len(group), "median": statistics.median(grades), "worst": worst.accuracy_grade,
        "worst_passing": max(passing) if passing else None,
        "less_accurate_checks": sum(g >= LESS_ACCURATE for g in grades),
        "worst_quantity": worst.quantity, "worst_property": worst.property, "worst_dtype": worst.dtype,
        "worst_verdict": worst.verdict,
    }  # fmt: skip


def accuracy_table(results: list[CheckRecord]) -> dict[str, Any]:
    """The grades per engine and data class (``rows``), and the same as an engine × class grid.

    ``rows``: one per engine, device and class, with the number of graded checks, the median
    and worst grade, the worst among the checks that passed the tolerance bound, how many
    graded 10 or more, and the quantity, property and dtype of the worst.  ``grid``: ``engines``
    (rows) × ``classes`` (columns, then ``all``), each cell the median and worst grade;
    ``less_accurate``: the cells whose median is 10 or more.
    """
    records = graded(results)
    several_devices = len({r.device for r in records}) > 1
    groups: dict[tuple[str, str, str], list[ResultRecord]] = defaultdict(list)
    for r in records:
        engine = f"{r.framework} ({r.device})" if several_devices else r.framework
        groups[(engine, r.device, data_class(r))].append(r)
        groups[(engine, r.device, ALL)].append(r)
    rows = [
        {"engine": engine, "device": device, "data_class": cls, **_grades(group)}
        for (engine, device, cls), group in sorted(groups.items())
    ]
    classes = sorted({row["data_class"] for row in rows} - {ALL, FIXED})
    classes += [FIXED] * any(row["data_class"] == FIXED for row in rows) + [ALL] * bool(rows)
    engines = sorted({row["engine"] for row in rows})
    cells = {engine: {} for engine in engines}
    for row in rows:
        cells[row["engine"]][row["data_class"]] = _cell(row)
    less_accurate = [
        {"engine": row["engine"], "data_class": row["data_class"], "median": row["median"], "worst": row["worst"],
         "checks": row["checks"]}
        for row in rows if row["data_class"] != ALL and row["median"] >= LESS_ACCURATE
    ]  # fmt: skip
    return {
        "threshold": LESS_ACCURATE,
        "rows": rows,
        "grid": {"engines": engines, "classes": classes, "cells": cells},
        "less_accurate": less_accurate,
    }


def grade_text(value: float | None) -> str:
    if value is None:
        return "-"
    if value == math.inf:
        return "∞"
    if value < 0.01:  # far more accurate than the floor: the digits say nothing more
        return "<0.01"
    return f"{value:.2g}" if value < 10 else f"{value:.3g}"


def _cell(row: dict[str, Any]) -> dict[str, Any]:
    """One grid cell: its text, its highlight, and what its tooltip says."""
    if row["median"] >= LESS_ACCURATE:
        level = "median"
    elif row["worst"] >= LESS_ACCURATE:
        level = "worst"
    else:
        level = ""
    passing = row["worst_passing"]
    title = (
        f"{row['checks']} check{'s' if row['checks'] != 1 else ''}; {row['less_accurate_checks']} graded ≥ {LESS_ACCURATE:g}; worst: {row['worst_quantity']} "
        f"({row['worst_property']}, {row['worst_dtype']}, {row['worst_verdict']}); worst that passed the bound: "
        f"{grade_text(passing)}"
    )
    return {"text": f"{grade_text(row['median'])} / {grade_text(row['worst'])}", "level": level, "title": title,
            "checks": row["checks"], "median": row["median"], "worst": row["worst"]}  # fmt: skip
