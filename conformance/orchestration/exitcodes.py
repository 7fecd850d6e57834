"""The exit codes of every ``bnconf`` command, defined once.

0: success, nothing unexpected; 1: something was found (a discrepancy or an error that no
ledger entry explains); 2: bad usage or bad input, with a one-line message naming it;
3: nothing was checked (every framework unavailable, skipped or unsupported): nothing
checked is not a pass; 130: interrupted (Ctrl-C), after rendering what was recorded.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_USAGE = 2
EXIT_NOTHING_CHECKED = 3
EXIT_INTERRUPTED = 130
