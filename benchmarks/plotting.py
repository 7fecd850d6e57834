"""What the benchmarks' plots share: matplotlib on a file-only backend, and how a figure is saved."""

from __future__ import annotations

import sys
from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), or ``None``, saying so, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return None
    return plt


def save(figure, axes, path: Path) -> None:
    """Add the legend, fit the layout and write the PNG (its folder made if missing)."""
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
