"""The report in a real browser: headless Chromium (Debian's package) driven by Playwright.

It must render with no console errors, lead with the engine table (a row per engine, each
entry a link to its finding), its tables must sort and filter, and an error message that
contains HTML must show as text (and never run).  A screenshot is saved.
Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); without it, or
without Playwright, these tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from overview_records import LEDGER, write_overview_run
from report_fixtures import HOSTILE_MESSAGE, write_run

from reports.render import render_report

CHROMIUM = os.environ.get("BNCONF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set BNCONF_CHROMIUM)", allow_module_level=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser")
    render_report([write_run(directory / "run"), write_overview_run(directory / "engines")], directory / "out", ledger=LEDGER)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        page.goto((directory / "out" / "report.html").as_uri())
        page.wait_for_load_state("load")
        page.screenshot_path = directory / "report.png"
        yield page
        browser.close()


def open_section(page, summary_id: str) -> None:
    """Open the collapsed section whose summary has ``summary_id``, by clicking it as a reader would."""
    details = page.locator(f"details:has(> summary#{summary_id})")
    if details.get_attribute("open") is None:
        page.locator(f"summary#{summary_id}").click()
    assert details.get_attribute("open") is not None


def test_renders_without_console_errors(page):
    assert page.title() == "Batch-norm conformance report"
    assert page.locator("#matrix tbody tr").count() > 0
    assert page.console_errors == []


def test_screenshot(page):
    page.screenshot(path=str(page.screenshot_path), full_page=True)
    assert page.screenshot_path.stat().st_size > 10_000


def _column(page, table: str, index: int) -> list[str]:
    return [cell.strip() for cell in page.locator(f"#{table} tbody tr td:nth-child({index})").all_inner_texts()]


ENGINES = ["eng-a", "eng-b", "eng-c", "eng-c:compiled", "hostile-fake", "numpy-fake", "numpy-fake:no_eps"]


def test_the_engine_table_is_the_first_thing_on_the_page(page):
    assert page.evaluate("document.querySelector('h1').nextElementSibling.id") == "overview"
    table = page.locator("#overview")
    box = table.bounding_box()
    assert table.is_visible()
    assert box["y"] < 150  # on the first screen, right under the title
    headings = [text.strip() for text in table.locator("thead th").all_inner_texts()]
    assert headings == ["engine", "conforms on ordinary data", "conventions that differ from most engines",
                        "numerical weaknesses", "defects", "unexpected findings"]  # fmt: skip


def test_the_engine_table_has_a_row_per_engine(page):
    names = [text.split("\n")[0].strip() for text in page.locator("#overview tbody th.engine").all_inner_texts()]
    assert names == ENGINES
    eng_c = page.locator("#overview tbody tr", has=page.locator("th", has_text="eng-c")).first
    assert eng_c.locator("td.col-conventions").inner_text().strip() == "debiased average: cosmetic"
    # Two engines against two: the line under the table names both sides, no engine's cell does.
    assert "decay d (canonical): split (0.9: eng-a, numpy-fake; 0.99: eng-b, eng-c)" in page.locator("#majority").inner_text()


def test_a_cells_link_goes_to_its_finding(page):
    page.goto(page.url.split("#")[0])
    eng_b = page.locator("#overview tbody tr", has=page.locator("th", has_text="eng-b"))
    eng_b.locator("td.col-numerical a").first.click()
    assert page.url.endswith("#f-eng-b--eng-b-fast-variance-cancellation")
    target = page.locator("#f-eng-b--eng-b-fast-variance-cancellation")
    assert "ledger entry eng-b-fast-variance-cancellation" in target.inner_text()
    assert target.evaluate("e => e.tagName") == "LI"
    assert target.evaluate("e => { const r = e.getBoundingClientRect(); return r.top > -2 && r.top < innerHeight; }")  # scrolled to
    eng_c = page.locator("#overview tbody tr", has=page.locator("th", has_text="eng-c"))
    eng_c.first.locator("td.col-unexpected a").click()
    assert page.url.endswith("#f-eng-c--unexpected")
    assert "not in the ledger" in page.locator("#f-eng-c--unexpected").inner_text()


def test_the_findings_follow_the_table_by_engine_then_kind(page):
    """Below the table: one sentence per kind of finding, grouped by engine, unexpected ones first."""
    heading = page.locator("h2").first
    assert heading.inner_text() == "What this run found, by engine"
    engines = page.locator("#findings-by-engine h3").all_inner_texts()
    assert engines == sorted(engines)
    items = page.locator("#findings-by-engine li")
    texts = items.all_inner_texts()
    assert any(text.startswith("numpy-fake:no_eps differs on") and "unexpected" in text for text in texts), texts
    eng_b = page.locator("#f-eng-b--defect + ul li").all_inner_texts()
    assert [text.split(":")[0] for text in eng_b] == ["NaN/inf", "less accurate"]  # most severe first
    assert all("bnconf replay" in text for text in texts if "crashed" not in text and "ledger entry" not in text[:60])


def test_conventions_counts_and_grid_are_compact_and_visible(page):
    side = page.locator("#conventions-side")
    assert side.is_visible()
    assert side.locator("thead th").count() >= 2  # a column per engine
    assert "weights the new batch" in side.inner_text()  # the declared values, not placeholders
    assert page.locator("#parameter-counts tbody tr").count() >= 1
    grid = page.locator("#grid")
    assert grid.is_visible()
    assert grid.locator("td.unexpected").count() > 0  # red: unexpected
    assert grid.locator("td.known-cell").count() + grid.locator("td.unexpected").count() > 0


def test_long_tables_are_collapsed_until_opened(page):
    assert not page.locator("#worst").is_visible()
    assert not page.locator("#matrix").is_visible()
    open_section(page, "tolerance-section")
    assert page.locator("#worst").is_visible()


def test_tables_sort(page):
    open_section(page, "matrix-section")
    header = page.locator("#matrix thead th", has_text="framework")
    header.click()
    ascending = _column(page, "matrix", 1)
    assert ascending == sorted(ascending, key=str.lower)
    header.click()
    descending = _column(page, "matrix", 1)
    assert descending == sorted(ascending, key=str.lower, reverse=True)
    assert ascending != descending


def test_numeric_columns_sort_as_numbers(page):
    open_section(page, "tolerance-section")
    page.locator("#worst thead th", has_text="ratio").first.click()
    values = [float(v) for v in page.locator("#worst tbody tr td:nth-child(9)").evaluate_all(
        "cells => cells.map(c => c.dataset.value)")]  # fmt: skip
    assert values == sorted(values)


def test_tables_filter(page):
    open_section(page, "matrix-section")
    rows = page.locator("#matrix tbody tr")
    total = rows.count()
    page.fill("input[data-table=matrix]", "no_eps inference")
    visible = [row for row in rows.all() if row.is_visible()]
    assert 0 < len(visible) < total
    assert all("no_eps" in row.inner_text() and "inference" in row.inner_text() for row in visible)
    page.fill("input[data-table=matrix]", "")
    assert sum(row.is_visible() for row in rows.all()) == total


def test_html_in_an_error_message_shows_as_text(page):
    open_section(page, "counterexamples-section")
    assert page.evaluate("window.__bnconf_xss") is None, "a script from an error message ran"
    messages = page.locator("pre.message", has_text="<b>bold</b>")
    assert messages.count() > 0
    assert HOSTILE_MESSAGE in messages.first.inner_text()
    assert page.locator("pre.message b").count() == 0
