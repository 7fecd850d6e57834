"""The verdicts a check can reach, in the order reports list them."""

from __future__ import annotations

PASS = "pass"
DISCREPANCY = "discrepancy"
ERROR = "error"
UNSUPPORTED = "unsupported"
VERDICTS = (PASS, DISCREPANCY, ERROR, UNSUPPORTED)
#: Verdicts that are findings: a framework disagreed with the reference, or failed to run.
FINDING_VERDICTS = (DISCREPANCY, ERROR)

#: At or above this accuracy grade (a result record's ``accuracy_grade``: its error over a
#: stable implementation's) an engine is "ten times less accurate than a stable
#: implementation"; judging and the report share this one definition.
LESS_ACCURATE = 10.0
