"""What the report leads with: the findings in one sentence each, and three compact tables.

A person should get the answer in a minute: which engine differs, in what, by how much, on
what data, and how to see it again; then the conventions side by side, the parameter counts
one engine per row, and verdicts as an engine × property grid.  Everything is derived from
the records (and the tables ``summarize`` already builds); nothing names a framework.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from datamodel.records import CheckRecord, ResultRecord
from datamodel.verdicts import PASS, UNSUPPORTED

from .summarize import findings

#: Declared conventions shown side by side, in this order: the labels a probe record's
#: ``declared_conventions`` uses (see the suite's conventions probes), as the reader sees them.
CONVENTION_ROWS = (
    ("momentum", "momentum (own form)"),
    ("canonical decay", "decay d (canonical)"),
    ("ε default", "ε default"),
    ("ε placement", "ε placement"),
    ("running-variance estimator", "running variance is fed"),
    ("normalization variance", "variance that normalizes"),
    ("variance algorithm", "batch variance computed"),
    ("running average", "running average"),
    ("default channel axis", "default channel axis"),
)


def number_text(value: float | None) -> str:
    """A number for a sentence or a table cell: three digits, ∞, or a dash for none or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "∞" if value == math.inf else f"{value:.3g}"


def _data(record: CheckRecord) -> str:
    """The case of a finding in a few words: dtype, shape, and what makes its data hard."""
    if record.case is None:
        return "no case (the process crashed between checks)"
    shape = "×".join(map(str, record.case["shape"]))
    words = [f"{record.dtype} {shape}"]
    conditioning = getattr(record, "conditioning", None)
    if conditioning is not None:
        if conditioning.data_class:
            words.append(f"{conditioning.data_class} data")
        if conditioning.offset_ratio and conditioning.offset_ratio >= 10:
            words.append(f"|mean|/std up to {number_text(conditioning.offset_ratio)}")
    return ", ".join(words)


def dtype_order(dtype: str) -> tuple:
    """Sort key: half precision first, then float32 and float64, then anything else."""
    order = ("float16", "bfloat16", "float32", "float64")
    return (order.index(dtype) if dtype in order else len(order), dtype)


def finding_sentences(results: list[CheckRecord]) -> list[dict[str, Any]]:
    """One plain sentence per kind of finding: unexpected ones first, then the ledger's.

    A kind is an engine and either its ledger entry or, for an unexpected finding, the
    property it broke; the sentence names the quantities, the worst ratio, the data of the
    worst case and the command that replays it.  Each also carries the entry's ``kind`` and
    ``severity`` (as the records say), and the data classes (most frequent first) and dtypes
    its findings appeared on.
    """
    groups: dict[tuple, list[CheckRecord]] = defaultdict(list)
    for record in findings(results):
        groups[(record.known is None, record.framework, record.known or record.property)].append(record)
    sentences = []
    for (unexpected, framework, what), records in sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1], item[0][2])):
        numeric = [r for r in records if isinstance(r, ResultRecord) and r.ratio is not None]
        worst = max(numeric, key=lambda r: r.ratio) if numeric else records[0]
        quantities = sorted({r.quantity for r in records})
        errors = [r for r in records if r.verdict == "error"]
        if errors and not numeric:
            change = f"raises on {', '.join(quantities[:4])}{' …' if len(quantities) > 4 else ''} ({errors[0].message.splitlines()[0][:120]})"
        else:
            how_far = f"worst {number_text(worst.ratio)}× the allowed error" if numeric else "an exact mismatch"
            change = f"differs on {', '.join(quantities[:4])}{' …' if len(quantities) > 4 else ''} ({how_far})"
        where = "unexpected: not in the ledger" if unexpected else f"known: ledger entry {what}"
        classes = Counter(r.conditioning.data_class for r in records if getattr(r, "conditioning", None) and r.conditioning.data_class)
        sentences.append({
            "framework": framework, "unexpected": unexpected, "ledger": None if unexpected else what,
            "property": worst.property, "checks": len(records),
            "kind": next((r.known_kind for r in records if r.known_kind), None),
            "severity": next((r.known_severity for r in records if r.known_severity), None),
            "data_classes": [name for name, _ in classes.most_common()],
            "dtypes": sorted({r.dtype for r in records if r.dtype}, key=dtype_order),
            "sentence": f"{framework} {change} in {len(records)} check(s), worst on {_data(worst)}; {where}.",
            "replay": worst.replay,
        })  # fmt: skip
    return sentences


def conventions_side_by_side(conventions: list[dict[str, Any]]) -> dict[str, Any]:
    """The declared conventions with one column per engine (from ``summarize.conventions_table``).

    A cell whose probe disagreed with the declaration is marked, so the table says both what
    an engine claims and whether the measurement agreed.
    """
    engines = [row["framework"] for row in conventions]
    rows = []
    for key, label in CONVENTION_ROWS:
        rows.append({"label": label, "cells": [str(row["declared"].get(key, "-")) for row in conventions]})
    probed = []
    for row in conventions:
        bad = [name for name, probe in row["probes"].items() if probe["verdict"] != PASS]
        probed.append("all confirmed" if not bad else "not confirmed: " + ", ".join(bad))
    rows.append({"label": "probes", "cells": probed})
    return {"engines": engines, "rows": rows}


def parameter_counts(inventories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per engine: its own counts for a dense layer's output (rank 2) and a feature map
    (rank 4, an image, where measured; else the nearest rank), against the canonical 2·C + 2·C."""
    rows: dict[str, dict[str, Any]] = {}
    preference = {4: 0, 3: 1, 5: 2}
    for inventory in sorted(inventories, key=lambda i: preference.get(len(i["shape"]), -1)):
        rank = len(inventory["shape"])
        column = "dense" if rank == 2 else "image"
        row = rows.setdefault(inventory["framework"], {"framework": inventory["framework"]})
        if column in row:
            continue
        channels = inventory["shape"][inventory["channel_axis"]]
        row[column] = {"shape": inventory["shape"], "channels": channels, "trainable": inventory["trainable"],
                       "non_trainable": inventory["non_trainable"], "total": inventory["total"],
                       "canonical": 4 * channels, "differs": bool(inventory["differences"]), "known": inventory["known"]}  # fmt: skip
    return [rows[name] for name in sorted(rows)]


def engine_property_grid(results: list[CheckRecord]) -> dict[str, Any]:
    """Counts per engine and property: passed, known findings, unexpected findings, unsupported."""
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"pass": 0, "known": 0, "unexpected": 0, "unsupported": 0})
    for record in results:
        cell = cells[(record.framework, record.property)]
        if record.verdict == PASS:
            cell["pass"] += 1
        elif record.verdict == UNSUPPORTED:
            cell["unsupported"] += 1
        elif record.known:
            cell["known"] += 1
        else:
            cell["unexpected"] += 1
    engines = sorted({engine for engine, _ in cells})
    properties = sorted({prop for _, prop in cells})
    return {"engines": engines, "properties": properties,
            "cells": {engine: {prop: cells.get((engine, prop)) for prop in properties} for engine in engines}}  # fmt: skip
