"""The report's first screen: one row per engine that says whether it can be trusted, and how.

``engine_overview`` builds the table that the HTML report, ``summary.md`` and ``bnconf run``
all lead with (the same rows, rendered three ways: the template, ``overview_markdown`` and
``overview_text``).  A row per engine spec, a column per question a reader asks:

1. does it conform on ordinary data: the ``ordinary`` property's fixed grid, and every check
   on well-conditioned data, per dtype;
2. which conventions differ from the majority: each declared convention (the probe records'
   ``declared_conventions``) against the value most engines of the run declare, the probes
   that contradicted a declaration, and the ledger's findings of kind ``convention``;
3. its numerical weaknesses: the known findings of kind ``numerical``, with the data they
   appeared on (and the ``out_of_domain`` ones, as a note);
4. its defects: the known findings of kind ``defect``, with their upstream report;
5. how many findings no ledger entry explains (those fail the run).

Every item links to its entry in ``findings_by_engine``, the findings grouped by engine, then
by kind (most severe first).  The records carry each finding's kind and severity; the ledger
is read only for a defect's upstream link and a finding's reason, and an id it does not hold
is shown without them.  Nothing here names a framework.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from datamodel.findings import NOT_YET_REPORTED, SEVERITIES, severity_rank
from datamodel.records import CheckRecord, LedgerRecord, ProbeRecord, ResultRecord
from datamodel.verdicts import UNSUPPORTED

from .headline import CONVENTION_ROWS, dtype_order

ORDINARY = "ordinary"  # the property of the fixed grid on ordinary data
WELL = "well"  # the data class of well-conditioned drawn data
UNEXPECTED = "unexpected"
UNCLASSIFIED = "unclassified"
#: The groups of an engine's findings, in the order the report lists them, and their headings.
GROUPS = {
    UNEXPECTED: "unexpected: not in the ledger (these fail the run)",
    "defect": "defects",
    "numerical": "numerical weaknesses",
    "convention": "conventions the reference does not model",
    "out_of_domain": "outside the domain",
    UNCLASSIFIED: "known, kind not recorded",
}
#: Each severity (``datamodel.findings.SEVERITIES``) in a word or two, for a table cell.
SEVERITY_WORDS = {"nan_inf": "NaN/inf", "wrong_values": "wrong values", "wrong_statistics": "wrong running statistics",
                  "raises": "raises", "accuracy_loss": "less accurate", "cosmetic": "cosmetic"}  # fmt: skip
assert set(SEVERITY_WORDS) == set(SEVERITIES)
COLUMNS = {
    "ordinary": "conforms on ordinary data",
    "conventions": "conventions that differ from most engines",
    "numerical": "numerical weaknesses",
    "defects": "defects",
    "unexpected": "unexpected findings",
}


def anchor(engine: str, what: str | None = None) -> str:
    """The id of an engine's findings (``what``: a ledger entry id, or ``unexpected``) in every output."""
    slug = lambda text: re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")  # noqa: E731
    return f"f-{slug(engine)}" + (f"--{slug(what)}" if what else "")


def row_anchor(engine: str) -> str:
    """The id of an engine's row in the table itself."""
    return "row-" + anchor(engine)


def finding_name(entry_id: str, engine: str) -> str:
    """A ledger entry's id in words, without the engine name it starts with
    (``flax-fast-variance-cancellation`` → "fast variance cancellation")."""
    for prefix in sorted({engine.replace(":", "-"), engine.partition(":")[0]}, key=len, reverse=True):
        if entry_id.startswith(prefix + "-"):
            return entry_id[len(prefix) + 1 :].replace("-", " ")
    return entry_id.replace("-", " ")


def _item(text: str, href: str | None = None, level: str = "", title: str = "", upstream: str | None = None) -> dict:
    """One entry of a cell: its words, where it links, its highlight, its tooltip, and (for a
    defect) its upstream report: a URL or "not yet reported"."""
    return {"text": text, "href": href, "level": level, "title": title, "upstream": upstream}


# -- what the ledger adds ------------------------------------------------------------------------


def ledger_details(ledger: Any = None) -> dict[str, dict[str, Any]]:
    """Entry id → kind, severity, upstream and reason, from ``ledger`` (default: the project's).

    A ledger that cannot be read gives nothing: the report then shows what the records carry."""
    if ledger is None:
        from conformance.judging.ledger import LedgerError, default_ledger

        try:
            ledger = default_ledger()
        except (LedgerError, OSError):
            return {}
    return {e.id: {"kind": e.kind, "severity": e.severity, "upstream": e.upstream, "reason": e.reason}
            for e in ledger.entries}  # fmt: skip


# -- findings by engine, then kind ----------------------------------------------------------------


def findings_by_engine(sentences: list[dict], results: list[CheckRecord], details: dict[str, dict]) -> list[dict]:
    """The findings (``headline.finding_sentences``) grouped by engine, then by kind (``GROUPS``),
    each group most severe first.  Ledger entries that no check of the run hit are listed too:
    the evidence reproduced, or it was not replayed here (an entry for a device the run lacks)."""
    items: dict[str, list[dict]] = defaultdict(list)
    for sentence in sentences:
        entry = sentence["ledger"]
        info = details.get(entry or "", {})
        kind = UNEXPECTED if sentence["unexpected"] else (sentence["kind"] or info.get("kind") or UNCLASSIFIED)
        severity = sentence["severity"] or info.get("severity")
        items[sentence["framework"]].append({
            **sentence, "kind": kind, "severity": severity, "severity_words": SEVERITY_WORDS.get(severity or "", ""),
            "anchor": anchor(sentence["framework"], entry or f"{UNEXPECTED}-{sentence['property']}"),
            "upstream": info.get("upstream"), "reason": info.get("reason", ""), "evidence_only": False,
        })  # fmt: skip
    hit = {(s["framework"], s["ledger"]) for s in sentences}
    for record in results:
        if not isinstance(record, LedgerRecord) or record.reproduced is False or (record.framework, record.entry_id) in hit:
            continue
        hit.add((record.framework, record.entry_id))
        info = details.get(record.entry_id, {})
        replayed = record.reproduced is not None
        severity = record.known_severity or info.get("severity")
        items[record.framework].append({
            "framework": record.framework, "unexpected": False, "ledger": record.entry_id, "property": "ledger",
            "checks": 0, "kind": record.known_kind or info.get("kind") or UNCLASSIFIED, "severity": severity,
            "severity_words": SEVERITY_WORDS.get(severity or "", ""), "data_classes": [], "dtypes": [record.dtype] * bool(record.dtype),
            "sentence": (f"{record.framework}: the evidence of ledger entry {record.entry_id} reproduced "
                         f"({record.dtype} case); no other check of this run hit it.") if replayed else
                        f"{record.framework}: ledger entry {record.entry_id}: {record.message or 'not replayed here'}.",
            "replay": record.replay, "anchor": anchor(record.framework, record.entry_id), "upstream": info.get("upstream"),
            "reason": info.get("reason", ""), "evidence_only": replayed, "not_replayed": None if replayed else record.message,
        })  # fmt: skip
    order = list(GROUPS)
    engines = []
    for engine in sorted(items):
        groups: dict[str, list[dict]] = defaultdict(list)
        for item in items[engine]:
            groups[item["kind"]].append(item)
        engines.append({"engine": engine, "anchor": anchor(engine), "groups": [
            {"kind": kind, "label": GROUPS.get(kind, kind), "anchor": anchor(engine, kind),
             "items": sorted(groups[kind], key=lambda i: (severity_rank(i["severity"]), i["ledger"] or i["property"]))}
            for kind in sorted(groups, key=lambda k: order.index(k) if k in order else len(order))
        ]})  # fmt: skip
    return engines


# -- the columns ----------------------------------------------------------------------------------


def _ordinary_cell(engine: str, records: list[CheckRecord], kinds: dict[str, str]) -> list[dict]:
    """Per dtype: yes, no (with how many known entries and unexpected findings), or unsupported."""
    by_dtype: dict[str, list[CheckRecord]] = defaultdict(list)
    for record in records:
        by_dtype[record.dtype or "unknown dtype"].append(record)
    if not by_dtype:
        return [_item("not run", title="no check of the ordinary property or on well-conditioned data")]
    states: dict[tuple, dict] = {}  # dtypes that read the same and link to the same finding share an item
    for dtype in sorted(by_dtype, key=dtype_order):
        group = by_dtype[dtype]
        checked = [r for r in group if r.verdict != UNSUPPORTED]
        found = [r for r in checked if r.is_finding]
        unexpected = [r for r in found if r.known is None]
        entries = sorted({r.known for r in found if r.known})
        title = f"{len(checked)} checks, {len(found)} findings" + (f"; ledger: {', '.join(entries)}" if entries else "")
        if not checked:
            state = ("unsupported", "unsupported", None)
        elif not found:
            state = ("yes", "pass", None)
        elif not unexpected and all(kinds.get(e) == "convention" for e in entries):
            state = (f"yes, by its conventions ({len(entries)} known)", "known", anchor(engine, entries[0]))
        else:
            counts = [f"{len(unexpected)} unexpected"] * bool(unexpected) + [f"{len(entries)} known"] * bool(entries)
            href = anchor(engine, UNEXPECTED) if unexpected else anchor(engine, entries[0])
            state = (f"no ({', '.join(counts)})", UNEXPECTED if unexpected else "known", href)
        text, level, href = state
        shown = states.setdefault((text, href), {"text": text, "dtypes": [], "level": level, "href": href, "titles": []})
        shown["dtypes"].append(dtype)
        shown["titles"].append(f"{dtype}: {title}")
    every_yes = list(states) == [("yes", None)]  # then "yes: float16, float32", else "float16 yes; float32 no (…)"
    return [_item(f"yes: {', '.join(s['dtypes'])}" if every_yes else f"{', '.join(s['dtypes'])} {s['text']}",
                  s["href"] and "#" + s["href"], s["level"], "; ".join(s["titles"])) for s in states.values()]  # fmt: skip


_NOTE = re.compile(r"^(?P<head>.*?)\s*\((?P<note>[^()]*)\)$")


def _compared(key: str, value: str) -> str:
    """The part of a declared convention that engines are compared on (the momentum's form,
    the decay's number); the whole value for the others."""
    match = _NOTE.match(value)
    if match and key == "momentum":
        return match["note"]
    if match and key == "canonical decay":
        return match["head"]
    return value


def _difference(key: str, value: str, majority: str, declared: dict[str, str]) -> str:
    """How this engine's ``value`` of a convention reads beside the majority's."""
    most = f"most: {majority.replace('_', '-')}"
    words = _compared(key, value).replace("_", "-")
    if key == "momentum":
        match = _NOTE.match(value)
        name, _, default = (match["head"] if match else value).partition(" = ")
        return f"{name} {words} ({default})" if match else value
    if key == "canonical decay":
        hint = ""
        momentum = _NOTE.match(declared.get("momentum", ""))
        if momentum:
            name = momentum["head"].partition(" = ")[0]
            setting = 1 - float(majority) if "new batch" in momentum["note"] else float(majority)
            hint = f"; {name} = {setting:.6g} matches"
        return f"running-average decay {words} ({most}{hint})"
    phrases = {"ε default": "ε default {}", "ε placement": "ε {} the square root", "running-variance estimator": "{} running variance",
               "normalization variance": "normalizes with the {} variance", "variance algorithm": "{} batch variance",
               "running average": "running average: {}", "default channel axis": "channel axis {} by default"}  # fmt: skip
    return f"{phrases.get(key, key + ': {}').format(words)} ({most})"


def majority_conventions(declared: dict[str, dict[str, str]]) -> tuple[dict[str, str], dict[str, dict[str, list[str]]]]:
    """(convention → the value most engines declare, compared as ``_compared``;
    convention → value → its engines, for the conventions on which the engines split evenly)."""
    majority: dict[str, str] = {}
    split: dict[str, dict[str, list[str]]] = {}
    keys = [key for key, _ in CONVENTION_ROWS] + sorted({k for d in declared.values() for k in d} - dict(CONVENTION_ROWS).keys())
    for key in keys:
        engines: dict[str, list[str]] = defaultdict(list)
        for engine, conventions in sorted(declared.items()):
            if key in conventions:
                engines[_compared(key, conventions[key])].append(engine)
        votes = Counter({value: len(names) for value, names in engines.items()}).most_common(2)
        if len(votes) == 1 or (votes and votes[0][1] > votes[1][1]):
            majority[key] = votes[0][0]
        elif votes:
            split[key] = dict(sorted(engines.items(), key=lambda item: -len(item[1])))
    return majority, split


def _conventions_cell(engine: str, declared: dict[str, dict[str, str]], majority: dict[str, str],
                      probes: list[ProbeRecord], known: list[dict]) -> list[dict]:  # fmt: skip
    """The declared conventions that differ from the majority, contradicted probes, and the
    ledger's convention findings; a variant without probes of its own reads "as <its engine>"."""
    items = []
    own = declared.get(engine)
    base = engine.partition(":")[0]  # an engine spec is "<engine>[:<variant>]"
    if own is None and base in declared and base != engine:
        items.append(_item(f"as {base}", "#" + row_anchor(base), title=f"{engine} is a variant of {base}: the same adapter's conventions"))
    elif own is None:
        items.append(_item("not probed"))
    elif len(declared) < 2:
        items.append(_item("no other engine probed to compare with"))
    else:
        for key, value in own.items():
            if key in majority and _compared(key, value) != majority[key]:
                items.append(_item(_difference(key, value, majority[key], own), title=f"declared {key}: {value}"))
    for probe in probes:
        if probe.is_finding:
            href = anchor(engine, probe.known) if probe.known else anchor(engine, UNEXPECTED)
            items.append(_item(f"probe {probe.convention}: declared {probe.declared}, behaves as {probe.probed}", "#" + href,
                               "known" if probe.known else UNEXPECTED, probe.message))  # fmt: skip
    items += [_known_item(engine, finding) for finding in known]
    return items or [_item("as most engines", level="pass")]


def _data_text(finding: dict, *, shown: int = 3) -> str:
    """Where a finding appeared: its data classes (the ``shown`` most frequent), and its dtypes
    when there are one or two; for ledger evidence alone, or an entry not replayed, which."""
    if finding.get("not_replayed"):
        return f" ({finding['not_replayed']})"
    dtypes = finding["dtypes"]
    if finding["evidence_only"]:
        return f" (ledger evidence{', ' + ', '.join(dtypes) if dtypes else ''})"
    if finding["data_classes"]:
        classes = finding["data_classes"]
        more = f" +{len(classes) - shown} more" if len(classes) > shown else ""
        return f" on {', '.join(classes[:shown])}{more} data" + (f" ({', '.join(dtypes)})" if 0 < len(dtypes) <= 2 else "")
    return f" on {', '.join(dtypes)} cases" if dtypes else ""


def _known_item(engine: str, finding: dict, with_upstream: bool = False) -> dict:
    severity = finding["severity_words"]
    where = "" if finding["kind"] == "convention" else _data_text(finding)  # a convention holds on any data
    text = finding_name(finding["ledger"], engine) + where + (f": {severity}" if severity else "")
    upstream = None
    if with_upstream:
        upstream = finding["upstream"] or ("upstream not known" if not finding["reason"] else NOT_YET_REPORTED)
    title = f"ledger entry {finding['ledger']}; {finding['checks']} finding(s)" + (f". {finding['reason']}" if finding["reason"] else "")
    return _item(text, "#" + finding["anchor"], "known", title[:600], upstream)


def _where(prop: str) -> str:
    """Where an unexpected finding was made: its property; a ledger record's is a stale entry."""
    return "ledger: no longer reproduces" if prop == "ledger" else prop


def _of_kind(findings: list[dict], *kinds: str) -> list[dict]:
    return [finding for finding in findings if finding["kind"] in kinds]


def engine_overview(results: list[CheckRecord], grouped: list[dict]) -> dict[str, Any]:
    """The first-screen table: ``rows`` (one per engine, a list of items per column of
    ``COLUMNS``), the ``columns``' headings, and ``majority``: what most engines declare for
    each convention, as sentences (a convention on which they split evenly names both sides,
    and no engine's cell lists it).

    ``grouped``: ``findings_by_engine`` of the same records (each item links into it)."""
    engines = sorted({r.framework for r in results} | {e["engine"] for e in grouped})
    declared: dict[str, dict[str, str]] = {}
    probes: dict[str, list[ProbeRecord]] = defaultdict(list)
    ordinary: dict[str, list[CheckRecord]] = defaultdict(list)
    for r in results:
        if isinstance(r, ProbeRecord):
            probes[r.framework].append(r)
            if r.declared_conventions:
                declared.setdefault(r.framework, r.declared_conventions)
        data_class = r.conditioning.data_class if isinstance(r, ResultRecord) and r.conditioning else None
        if r.dtype and (r.property == ORDINARY or data_class == WELL):
            ordinary[r.framework].append(r)
    majority, split = majority_conventions(declared)
    findings = {e["engine"]: [i for g in e["groups"] for i in g["items"]] for e in grouped}
    kinds = {i["ledger"]: i["kind"] for items in findings.values() for i in items if i["ledger"]}
    rows = []
    for engine in engines:
        known = [i for i in findings.get(engine, []) if i["kind"] != UNEXPECTED]
        unexpected = [i for i in findings.get(engine, []) if i["kind"] == UNEXPECTED]
        count = sum(i["checks"] for i in unexpected)
        outside = [{**_known_item(engine, i), "text": "outside the domain: " + _known_item(engine, i)["text"]} for i in _of_kind(known, "out_of_domain")]
        rows.append({
            "engine": engine, "anchor": anchor(engine), "row_anchor": row_anchor(engine),
            "versions": sorted({r.framework_version for r in results if r.framework == engine}),
            "ordinary": _ordinary_cell(engine, ordinary.get(engine, []), kinds),
            "conventions": _conventions_cell(engine, declared, majority, probes.get(engine, []), _of_kind(known, "convention")),
            "numerical": [_known_item(engine, i) for i in _of_kind(known, "numerical")] + outside or [_item("none known", level="pass")],
            "defects": [_known_item(engine, i, with_upstream=True) for i in _of_kind(known, "defect", UNCLASSIFIED)]
                       or [_item("none known", level="pass")],
            "unexpected": [_item(f"{count} ({', '.join(sorted({_where(i['property']) for i in unexpected}))})",
                                 "#" + anchor(engine, UNEXPECTED), UNEXPECTED)] if count else [_item("none", level="pass")],
            "unexpected_count": count,
        })  # fmt: skip
    labels = dict(CONVENTION_ROWS)
    shown = [f"{labels.get(key, key)}: {value.replace('_', '-')}" for key, value in majority.items()]
    shown += [f"{labels.get(key, key)}: split ({'; '.join(f'{value}: ' + ', '.join(names) for value, names in values.items())})"
              for key, values in split.items()]  # fmt: skip
    return {"columns": COLUMNS, "rows": rows, "majority": shown}


# -- the two text renderings (the HTML one is the template's) -------------------------------------


def _cell_text(items: list[dict], *, markdown: bool) -> str:
    parts = []
    for item in items:
        text = item["text"]
        if markdown:
            text = text.replace("|", "\\|")
            text = f"[{text}]({item['href']})" if item["href"] else text
        upstream = item["upstream"]
        if upstream:
            text += f" ([upstream]({upstream}))" if markdown and upstream.startswith(("https://", "http://")) else f" ({upstream})"
        parts.append(text)
    return "; ".join(parts)


def overview_markdown(overview: dict[str, Any]) -> list[str]:
    """The table as Markdown lines; each item links to its finding's anchor in ``summary.md``."""
    columns = overview["columns"]
    lines = ["| engine | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in overview["rows"]:
        cells = " | ".join(_cell_text(row[c], markdown=True) for c in columns)
        lines.append(f'| <a id="{row["row_anchor"]}"></a>{row["engine"]} | {cells} |')
    if overview["majority"]:
        lines += ["", "Most engines here: " + "; ".join(overview["majority"]) + "."]
    return lines


def overview_text(overview: dict[str, Any], width: int = 110) -> list[str]:
    """The table for a terminal: a block per engine, a line per column."""
    import textwrap

    lines = []
    for row in overview["rows"]:
        lines.append(f"{row['engine']} {', '.join(row['versions'])}".rstrip())
        for column, heading in overview["columns"].items():
            lines += textwrap.wrap(_cell_text(row[column], markdown=False), width, initial_indent=f"  {heading + ':':<44}",
                                   subsequent_indent=" " * 46, break_on_hyphens=False)  # fmt: skip
    if overview["majority"]:
        lines += textwrap.wrap("most engines here: " + "; ".join(overview["majority"]), width, break_on_hyphens=False)
    return lines
