"""The verdicts a check can reach, in the order reports list them."""

from __future__ import annotations

PASS = "pass"
DISCREPANCY = "discrepancy"
ERROR = "error"
UNSUPPORTED = "unsupported"
VERDICTS = (PASS, DISCREPANCY, ERROR, UNSUPPORTED)
#: Verdicts that are findings: a framework disagreed with the reference, or failed to run.
FINDING_VERDICTS = (DISCREPANCY, ERROR)
