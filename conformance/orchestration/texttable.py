"""Plain-text tables for the terminal: left-aligned columns, a rule under the header."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str | None] = ()) -> list[str]:
    """The lines of a table; ``notes[i]``, when given, is printed indented under row ``i``."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [line(headers), "  ".join("-" * width for width in widths)]
    for index, row in enumerate(rows):
        lines.append(line(row))
        note = notes[index] if index < len(notes) else None
        if note:
            lines.append(f"    {note}")
    return lines
