"""Render result records into ``report.html``, ``summary.json`` and ``summary.md``.

Inputs are JSON-lines records files, or run directories holding ``records/*.jsonl``.  Runs
from several machines, devices or framework versions merge into one report; every record
read is kept (each names its run; the summary lists the input files), and the report
states how many were read and rendered.  A run that did not finish (a crashed, hung or
interrupted process, or records without the run's ``run_end`` record) makes the report say
it is partial, in every output, and name the frameworks it covered.  Every record is validated against the record schema on reading; an invalid one,
or one of another schema version, is refused with a message naming the file and line.

Every output leads with the same table, a row per engine (``reports.overview``): whether it
conforms on ordinary data, its conventions that differ from most engines, its numerical
weaknesses, its defects, and its unexpected findings, each linked to the finding below.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from datamodel.jsoncodec import dumps
from datamodel.records import RECORD_SCHEMA_VERSION, RecordFileError, read_records
from datamodel.runinfo import environment

from . import plots
from .accuracy import accuracy_table, grade_text
from .execution import execution_side_by_side
from .headline import conventions_side_by_side, engine_property_grid, finding_sentences, parameter_counts
from .overview import engine_overview, findings_by_engine, ledger_details, overview_markdown, overview_text
from .summarize import (
    conventions_table,
    counted,
    counterexamples,
    cross_device,
    findings,
    framework_totals,
    inventory_table,
    ledger_status,
    partial_runs,
    split,
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


def load(inputs: list[str | Path]) -> list:
    """Every record of ``inputs``, validated against the record schema (``datamodel.records``)."""
    records = []
    for path in record_files(inputs):
        try:
            records.extend(read_records(path))
        except RecordFileError as error:
            raise ReportInputError(str(error)) from None
    return records


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["num"] = lambda v: "-" if v is None else f"{v:.3g}"
    return env


def partial_line(summary: dict[str, Any]) -> str:
    """One sentence naming the frameworks whose runs did not finish ("" for a complete run)."""
    if not summary["partial"]:
        return ""
    names = sorted({name for row in summary["partial"] for name in row["frameworks"]})
    return f"PARTIAL RUN: the records of {', '.join(names)} end before the run finished"


def ledger_line(summary: dict[str, Any]) -> str:
    """The ledger's status in one sentence: entries reproduced, no longer reproducing, not replayed here."""
    t, status = summary["totals"], summary["ledger"]
    needs = sorted({row["message"] for row in status["not_replayed"]})
    not_replayed = f"; {len(status['not_replayed'])} entries {' / '.join(needs)}" if needs else ""
    return (f"ledger: {t['known']} findings explained by {len(status['reproduced'])} reproduced entries; "
            f"{len(status['not_reproduced'])} entries no longer reproduce{not_replayed}; {t['unexpected']} unexpected findings")  # fmt: skip


def text_summary(summary: dict[str, Any]) -> str:
    """What ``bnconf run`` prints after a run: the engine table first, the counts, and the closing line."""
    lines = [*overview_text(summary["overview"]), ""]
    lines.append(f"{'framework':<24} {'pass':>6} {'discrepancy':>11} {'error':>6} {'unsupported':>11}")
    for framework, counts in summary["framework_totals"].items():
        lines.append(f"{framework:<24} {counts['pass']:>6} {counts['discrepancy']:>11} {counts['error']:>6} {counts['unsupported']:>11}")
    lines.append(f"{summary['records_read']} records read, {summary['records_rendered']} results rendered")
    t = summary["totals"]
    lines.append(ledger_line(summary))
    for row in summary["partial"]:
        lines.append(f"partial: {', '.join(row['frameworks'])}: {row['reason']}")
    # The closing line CI systems read: checks that passed, findings no ledger entry explains,
    # unsupported; and whether the run is partial (so `bnconf report`, which prints it alone, says so).
    closing = f"conformance: {t['pass']} passed, {t['unexpected']} failed, {t['unsupported']} skipped"
    lines.append(closing + (f"; {partial_line(summary)}" if summary["partial"] else ""))
    return "\n".join(lines)


def _execution_markdown(tables: list[dict[str, Any]]) -> list[str]:
    """The eager-and-compiled tables (``reports.execution``) as Markdown, one per engine."""
    if not tables:
        return []
    lines = ["", "## Eager and compiled side by side", "",
             "Worst ratio of error to allowed error per quantity (below 1 passes); \"vs\": mode against engine on the same case."]  # fmt: skip
    for table in tables:
        engine, modes = table["engine"], table["modes"]
        header = [f"{engine}: quantity", engine] + [name for mode in modes for name in (mode, f"{mode} vs {engine}")]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in table["rows"]:
            cells = [row["cells"][engine]] + [cell for mode in modes for cell in (row["cells"][mode], row["between"][mode])]
            lines.append(f"| {row['quantity']} | " + " | ".join(cell["text"] if cell else "-" for cell in cells) + " |")
    return lines


def _findings_markdown(grouped: list[dict[str, Any]]) -> list[str]:
    """The findings by engine, then kind, each after the anchor the engine table links to."""
    if not grouped:
        return []
    lines = ["", "## Findings by engine"]
    for engine in grouped:
        lines += ["", f'### <a id="{engine["anchor"]}"></a>{engine["engine"]}']
        for group in engine["groups"]:
            lines += ["", f'<a id="{group["anchor"]}"></a>**{group["label"]}**', ""]
            for item in group["items"]:
                severity = f"**{item['severity_words']}**: " if item["severity_words"] else ""
                replay = f" `{item['replay']}`" if item["replay"] else ""
                lines.append(f'- <a id="{item["anchor"]}"></a>{severity}{item["sentence"]}{replay}')
    return lines


def markdown_summary(summary: dict[str, Any]) -> str:
    """``summary.md``: the engine table first (after a partial run's warning), then the counts."""
    t = summary["totals"]
    lines = ["# Batch-norm conformance", ""]
    if summary["partial"]:
        lines += [f"**{partial_line(summary)}.**", ""]
    lines += [*overview_markdown(summary["overview"]), ""]
    if summary["partial"]:
        lines += [f"- {', '.join(row['frameworks'])}: {row['reason']}" for row in summary["partial"]] + [""]
    lines += [
        f"{t['pass']} checks passed, {t['unexpected']} unexpected findings, {t['known']} known (ledger), "
        f"{t['unsupported']} unsupported; {summary['records_read']} records read.", "",
        "| framework | pass | discrepancy | error | unsupported |", "|---|---|---|---|---|",
    ]  # fmt: skip
    for framework, counts in summary["framework_totals"].items():
        lines.append(f"| {framework} | " + " | ".join(str(counts[v]) for v in ("pass", "discrepancy", "error", "unsupported")) + " |")
    status = summary["ledger"]
    less_accurate = summary["accuracy"]["less_accurate"]
    if less_accurate:
        lines += ["", "## Less accurate than a stable implementation", "",
                  f"Median accuracy grade {summary['accuracy']['threshold']:g} or more (error / a stable implementation's "
                  "error in the same dtype, on the same data):", ""]  # fmt: skip
        lines += [f"- {c['engine']} on {c['data_class']} data: median {grade_text(c['median'])}, worst "
                  f"{grade_text(c['worst'])} ({c['checks']} checks)" for c in less_accurate]  # fmt: skip
    lines += _execution_markdown(summary["execution_side_by_side"])
    if status["new_findings"]:
        lines += ["", "## Unexpected findings", ""]
        lines += [f"- {f['framework']} {f['property']} {f['quantity']}: {f['message'][:300]} (`{f['replay']}`)" for f in status["new_findings"][:50]]
    if status["not_reproduced"]:
        lines += ["", "## Ledger entries that no longer reproduce", ""]
        lines += [f"- {e['id']} on {e['framework']} {e['version']}" for e in status["not_reproduced"]]
    if status["not_replayed"]:
        lines += ["", "## Ledger entries not replayed here", ""]
        lines += [f"- {e['id']} on {e['framework']} {e['version']}: {e['message']}" for e in status["not_replayed"]]
    lines += _findings_markdown(summary["findings_by_engine"])
    lines += ["", "Known: " + (", ".join(f"{e['id']} ({e['framework']}, {e['hits']} findings)" for e in status["reproduced"]) or "none")]
    return "\n".join(lines) + "\n"


def render_report(
    inputs: list[str | Path], out: str | Path, *, runs: list[dict] | None = None, profile: str | None = None,
    ledger: Any = None,
) -> dict[str, Any]:
    """Render every record of ``inputs`` into ``out``; return the summary (with file paths).

    ``ledger`` (default: the project's) gives defects their upstream links and findings their
    reasons; every other figure comes from the records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = load(inputs) if inputs else []
    all_results, environments, frameworks = split(records)
    results = counted(all_results)
    summary: dict[str, Any] = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "record_schema_version": RECORD_SCHEMA_VERSION,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "inputs": [str(p) for p in record_files(inputs)] if inputs else [],
        "records_read": len(records),
        "records_rendered": len(results),
        "complete": not (partial := partial_runs(records, runs)),
        "partial": partial,
        "totals": totals(results),
        "framework_totals": framework_totals(results),
        "matrix": verdict_matrix(results),
        "worst": worst_by_quantity(results),
        "ledger": ledger_status(results),
        "conventions": conventions_table(results),
        "inventories": inventory_table(results),
        "cross_device": cross_device(results),
        "accuracy": accuracy_table(results),
        "findings_in_brief": finding_sentences(results),
        "engine_property_grid": engine_property_grid(results),
        "execution_side_by_side": execution_side_by_side(results),
        "runs": runs or [],
        "environments": [e.model_dump() for e in environments],
        "framework_versions": [f.model_dump() for f in frameworks],
        "renderer_environment": environment(),
    }
    summary["findings_by_engine"] = findings_by_engine(summary["findings_in_brief"], results, ledger_details(ledger))
    summary["overview"] = engine_overview(results, summary["findings_by_engine"])
    summary["conventions_side_by_side"] = conventions_side_by_side(summary["conventions"])
    summary["parameter_counts"] = parameter_counts(summary["inventories"])
    html = _environment().get_template("report.html.j2").render(
        summary=summary,
        partial_line=partial_line(summary),
        counterexamples=counterexamples(all_results),
        findings=findings(results)[:500],
        scatter=plots.error_vs_conditioning(results),  # counted: no minimal re-writes
        headroom=plots.headroom_histogram(results),
    )
    paths = {"html": out / "report.html", "json": out / "summary.json", "markdown": out / "summary.md"}
    paths["html"].write_text(html, encoding="utf-8")
    paths["json"].write_text(dumps(summary, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_summary(summary), encoding="utf-8")
    summary["text"] = text_summary(summary)
    summary.update({name: str(path) for name, path in paths.items()})
    return summary
