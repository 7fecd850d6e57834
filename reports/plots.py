"""Inline SVG plots for the report (self-contained: no scripts, fonts or remote files).

* ``error_vs_conditioning``: per framework, each check's error-to-tolerance ratio against
  its data's conditioning (largest per-channel |mean|/std), log-log, with the tolerance line
  at ratio 1;
* ``headroom_histogram``: per framework, how far below (or above) the tolerance the checks
  landed, as a histogram of log₁₀(ratio).
"""

from __future__ import annotations

import math
from collections import defaultdict
from html import escape

from datamodel.records import CheckRecord

from .summarize import offset_ratio, toleranced

WIDTH, HEIGHT, PAD = 320, 200, 36
MAX_POINTS = 5000  # dots per scatter plot; the title says when more checks exist
RATIO_RANGE = (-8.0, 4.0)  # log10 of error/allowed
OFFSET_RANGE = (-2.0, 6.0)  # log10 of |mean|/std


def _log(value: float, low: float, high: float) -> float:
    if not value > 0:
        return low
    return min(high, max(low, math.log10(value))) if math.isfinite(value) else high


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    return start + (value - low) / (high - low) * (end - start)


def _frame(title: str, x_label: str, y_label: str, body: list[str]) -> str:
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        f'<rect x="{PAD}" y="8" width="{WIDTH - PAD - 8}" height="{HEIGHT - PAD - 8}" fill="#fafafa" stroke="#999"/>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" font-size="10" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="10" y="{HEIGHT / 2}" font-size="10" text-anchor="middle" transform="rotate(-90 10 {HEIGHT / 2})">{escape(y_label)}</text>'
        f'<text x="{PAD + 4}" y="20" font-size="11" font-weight="bold">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def error_vs_conditioning(results: list[CheckRecord]) -> dict[str, str]:
    """framework → SVG scatter of log ratio against log offset ratio (``result`` records only)."""
    points: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for r in toleranced(results):
        points[r.framework].append((offset_ratio(r), r.ratio, r.verdict == "discrepancy"))
    plots = {}
    left, right, top, bottom = PAD, WIDTH - 8, 8, HEIGHT - PAD
    for framework, items in sorted(points.items()):
        y_line = _scale(0.0, *RATIO_RANGE, bottom, top)
        body = [f'<line x1="{left}" x2="{right}" y1="{y_line:.1f}" y2="{y_line:.1f}" stroke="#c00" stroke-dasharray="4 2"/>',
                f'<text x="{right - 2}" y="{y_line - 3:.1f}" font-size="9" text-anchor="end" fill="#c00">tolerance</text>']  # fmt: skip
        for offset, ratio, bad in items[:MAX_POINTS]:
            x = _scale(_log(offset, *OFFSET_RANGE), *OFFSET_RANGE, left, right)
            y = _scale(_log(ratio, *RATIO_RANGE), *RATIO_RANGE, bottom, top)
            colour = "#c00" if bad else "#2a6"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" fill="{colour}" fill-opacity="0.5"/>')
        for tick in range(int(OFFSET_RANGE[0]), int(OFFSET_RANGE[1]) + 1, 2):
            x = _scale(tick, *OFFSET_RANGE, left, right)
            body.append(f'<text x="{x:.1f}" y="{bottom + 10}" font-size="8" text-anchor="middle">1e{tick}</text>')
        for tick in range(int(RATIO_RANGE[0]), int(RATIO_RANGE[1]) + 1, 4):
            y = _scale(tick, *RATIO_RANGE, bottom, top)
            body.append(f'<text x="{left - 2}" y="{y + 3:.1f}" font-size="8" text-anchor="end">1e{tick}</text>')
        shown = "" if len(items) <= MAX_POINTS else f", {MAX_POINTS} shown"
        plots[framework] = _frame(f"{framework} ({len(items)} checks{shown})", "|mean| / std of the data", "error / allowed", body)
    return plots


def headroom_histogram(results: list[CheckRecord], bins: int = 24) -> dict[str, str]:
    """framework → SVG histogram of log₁₀(error / allowed) (``result`` records only)."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in toleranced(results):
        values[r.framework].append(_log(r.ratio, *RATIO_RANGE))
    plots = {}
    left, right, top, bottom = PAD, WIDTH - 8, 22, HEIGHT - PAD
    width = (RATIO_RANGE[1] - RATIO_RANGE[0]) / bins
    for framework, items in sorted(values.items()):
        counts = [0] * bins
        for v in items:
            counts[min(bins - 1, int((v - RATIO_RANGE[0]) / width))] += 1
        peak = max(counts) or 1
        bar = (right - left) / bins
        body = []
        for i, c in enumerate(counts):
            h = (bottom - top) * c / peak
            colour = "#c00" if RATIO_RANGE[0] + i * width >= 0 else "#2a6"
            body.append(f'<rect x="{left + i * bar:.1f}" y="{bottom - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" fill="{colour}"/>')
        x_line = _scale(0.0, *RATIO_RANGE, left, right)
        body.append(f'<line x1="{x_line:.1f}" x2="{x_line:.1f}" y1="{top}" y2="{bottom}" stroke="#c00" stroke-dasharray="4 2"/>')
        for tick in range(int(RATIO_RANGE[0]), int(RATIO_RANGE[1]) + 1, 4):
            x = _scale(tick, *RATIO_RANGE, left, right)
            body.append(f'<text x="{x:.1f}" y="{bottom + 10}" font-size="8" text-anchor="middle">1e{tick}</text>')
        plots[framework] = _frame(f"{framework}: headroom", "error / allowed (tolerance at 1)", "checks", body)
    return plots
