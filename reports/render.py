"""Render result records into ``report.html``, ``summary.json`` and ``summary.md``.

Inputs are JSON-lines records files, or run directories holding ``records/*.jsonl``.  Every
record read is kept and attributed; the report states how many were read and rendered.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from conformance.records import RecordFileError, environment, read_records

from .summarize import (
    conventions_table,
    findings,
    inventory_table,
    ledger_status,
    totals,
    verdict_matrix,
    worst_by_quantity,
)

SUMMARY_SCHEMA_VERSION = 1
TEMPLATES = Path(__file__).parent / "templates"


class ReportInputError(ValueError):
    """An input that cannot be rendered (missing, unreadable, or of another schema)."""


def record_files(inputs: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(item.glob("records/*.jsonl")) or sorted(item.glob("*.jsonl"))
            if not found:
                raise ReportInputError(f"{item}: a directory with no records (*.jsonl or records/*.jsonl)")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise ReportInputError(f"{item}: no such results file or directory")
    return files


def load(inputs: list[str | Path]) -> list[dict[str, Any]]:
    records = []
    for path in record_files(inputs):
        try:
            for record in read_records(path):
                record.setdefault("source", str(path))
                records.append(record)
        except RecordFileError as error:
            raise ReportInputError(str(error)) from None
    return records


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip


def text_summary(summary: dict[str, Any]) -> str:
    lines = ["framework            pass  discrepancy  error  unsupported"]
    for framework, props in summary["matrix"].items():
        counts = {v: sum(p.get(v, 0) for p in props.values()) for v in ("pass", "discrepancy", "error", "unsupported")}
        lines.append(f"{framework:<20} {counts['pass']:>4}  {counts['discrepancy']:>11}  {counts['error']:>5}  {counts['unsupported']:>11}")
    lines.append(f"{summary['records_read']} records read, {summary['records_rendered']} rendered")
    t = summary["totals"]
    status = summary["ledger"]
    lines.append(
        f"ledger: {t['known']} findings explained by {len(status['reproduced'])} reproduced entries; "
        f"{len(status['not_reproduced'])} entries no longer reproduce; {t['unexpected']} unexpected findings"
    )
    # The closing line CI systems read: checks that passed, findings no ledger entry explains, unsupported.
    lines.append(f"conformance: {t['pass']} passed, {t['unexpected']} failed, {t['unsupported']} skipped")
    return "\n".join(lines)


def markdown_summary(summary: dict[str, Any]) -> str:
    lines = ["# Batch-norm conformance", "", "| framework | pass | discrepancy | error | unsupported |", "|---|---|---|---|---|"]
    for framework, props in summary["matrix"].items():
        counts = [sum(p.get(v, 0) for p in props.values()) for v in ("pass", "discrepancy", "error", "unsupported")]
        lines.append(f"| {framework} | " + " | ".join(map(str, counts)) + " |")
    lines += ["", f"{summary['records_read']} records read, {summary['records_rendered']} rendered."]
    return "\n".join(lines) + "\n"


def render_report(
    inputs: list[str | Path], out: str | Path, *, runs: list[dict] | None = None, profile: str | None = None
) -> dict[str, Any]:
    """Render every record of ``inputs`` into ``out``; return the summary (with file paths)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = load(inputs) if inputs else []
    summary: dict[str, Any] = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": profile,
        "records_read": len(records),
        "records_rendered": len(records),
        "totals": totals(records),
        "matrix": verdict_matrix(records),
        "worst": worst_by_quantity(records),
        "ledger": ledger_status(records),
        "conventions": conventions_table(records),
        "inventories": inventory_table(records),
        "runs": runs or [],
        "environment": environment(),
        "frameworks": sorted({f"{r['framework']} {r.get('framework_version', '')}".strip() for r in records}),
    }
    html = _environment().get_template("report.html.j2").render(summary=summary, findings=findings(records))
    paths = {"html": out / "report.html", "json": out / "summary.json", "markdown": out / "summary.md"}
    paths["html"].write_text(html, encoding="utf-8")
    paths["json"].write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_summary(summary), encoding="utf-8")
    summary["text"] = text_summary(summary)
    summary.update({name: str(path) for name, path in paths.items()})
    return summary
