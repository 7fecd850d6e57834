"""The in-flight marker's writer: tells a supervising process which check is running.

If the suite process crashes or hangs, the supervisor (``conformance.orchestration.supervise``)
reads the marker (``datamodel.inflight``) and records an error for the check it names;
everything recorded before stays.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from datamodel.case import Case
from datamodel.casefile import case_to_json
from datamodel.inflight import Inflight, inflight_path, write_inflight


class InflightMarker:
    """Rewrites ``<results>.inflight.json``; does nothing when results stay in memory."""

    def __init__(self, results_path: Path | None, run_id: str):
        self.path = inflight_path(results_path) if results_path else None
        self.run_id = run_id

    def mark(self, test: str | None, framework: str | None, prop: str, case: Case | None) -> None:
        """Announce a check (``framework`` and/or ``case`` given), or that none runs (both ``None``)."""
        if self.path is None:
            return
        running = case is not None or framework is not None
        state = Inflight(run_id=self.run_id, test=test, framework=framework, property=prop, pid=os.getpid(),
                         started=time.time() if running else None,
                         case=case_to_json(case) if case is not None else None)  # fmt: skip
        write_inflight(self.path, state)
