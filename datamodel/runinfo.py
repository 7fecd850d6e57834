"""Where a run happened: run id, git commit, machine and Python (for ``environment`` records)."""

from __future__ import annotations

import os
import platform
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np


def commit() -> str | None:
    """The git commit being run (``BNCONF_COMMIT`` overrides), or ``None`` outside a checkout."""
    if os.environ.get("BNCONF_COMMIT"):
        return os.environ["BNCONF_COMMIT"]
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Machine and Python of this process (framework versions come with each record)."""
    import hypothesis

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "hypothesis": hypothesis.__version__,
    }


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
