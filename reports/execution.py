"""Eager and compiled execution of each engine side by side.

The execution property (``conformance/suite/test_execution_modes.py``) runs an engine's
default variant and one of its other execution modes (``torch.compile``, XLA, a
``tf.function`` graph, or eager JAX where the default is jitted) on the same case; a mode's
records of that property name the engine as ``twin_of``.  From that relation alone (nothing
here names a framework) this builds one table per engine: a row per quantity, a column per
execution mode with the worst ratio to the allowed error over every check of that mode (any
property, so a mode that also ran its own suite shows all of it), and beside each mode the
worst difference between it and the engine on the same case (``<quantity>@twin``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from datamodel.records import CheckRecord, ResultRecord
from datamodel.verdicts import PASS, UNSUPPORTED

from .headline import number_text

#: The property whose records relate a mode to its engine.
EXECUTION = "execution"
TWIN_SUFFIX = "@twin"


def execution_modes(results: list[CheckRecord]) -> dict[str, list[str]]:
    """Engine → the execution modes compared with it in this run, from the records' ``twin_of``."""
    modes: dict[str, set[str]] = defaultdict(set)
    for record in results:
        if record.property == EXECUTION and isinstance(record, ResultRecord) and record.twin_of:
            modes[record.twin_of].add(record.framework)
    return {engine: sorted(found) for engine, found in sorted(modes.items())}


def _cell(records: list[ResultRecord]) -> dict[str, Any] | None:
    """The worst ratio of some checks, how many there were and what their findings were
    (``None`` when none was checked: unsupported checks do not count)."""
    records = [r for r in records if r.verdict != UNSUPPORTED]
    if not records:
        return None
    ratios = [r.ratio for r in records if r.ratio is not None]
    findings = [r for r in records if r.verdict != PASS]
    worst = max(ratios) if ratios else None
    known = sum(1 for r in findings if r.known)
    unexpected = len(findings) - known
    ledger = sorted({r.known for r in findings if r.known})
    words = [number_text(worst)] + [f"{known} known"] * bool(known) + [f"{unexpected} unexpected"] * bool(unexpected)
    return {
        "checks": len(records), "worst_ratio": worst, "known": known, "unexpected": unexpected, "ledger": ledger,
        "text": " · ".join(words),
        "level": "unexpected" if unexpected else ("known-cell" if known else "pass"),
        "title": f"{len(records)} checks" + (f"; ledger: {', '.join(ledger)}" if ledger else ""),
    }  # fmt: skip


def execution_side_by_side(results: list[CheckRecord]) -> list[dict[str, Any]]:
    """One table per engine that has other execution modes in the records.

    Each table: ``columns`` (the engine, then each mode), and ``rows``, one per quantity, with
    ``cells`` (column → the worst ratio, checks and findings of that framework's checks of the
    quantity over every property) and ``between`` (mode → the same for the mode-against-engine
    comparisons of the execution property).  Errors count as findings without a ratio.
    """
    by_framework_quantity: dict[tuple[str, str], list[ResultRecord]] = defaultdict(list)
    for record in results:
        if isinstance(record, ResultRecord):
            by_framework_quantity[(record.framework, record.quantity)].append(record)
    tables = []
    for engine, modes in execution_modes(results).items():
        columns = [engine, *modes]
        quantities = sorted({quantity for (framework, quantity) in by_framework_quantity
                             if framework in columns and not quantity.endswith(TWIN_SUFFIX)})  # fmt: skip
        rows = []
        for quantity in quantities:
            cells = {column: _cell(by_framework_quantity.get((column, quantity), [])) for column in columns}
            between = {
                mode: _cell([r for r in by_framework_quantity.get((mode, quantity + TWIN_SUFFIX), []) if r.property == EXECUTION])
                for mode in modes
            }
            rows.append({"quantity": quantity, "cells": cells, "between": between})
        tables.append({"engine": engine, "columns": columns, "modes": modes, "rows": rows})
    return tables
