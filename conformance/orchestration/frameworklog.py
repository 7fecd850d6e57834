"""The frameworks' own log output, kept in a log file and out of the CLI's output.

TensorFlow, XLA and oneDNN log from C++ straight to file descriptor 2 (``I0000 00:00:...
cpu_feature_guard.cc``, ``WARNING: All log messages before absl::InitializeLog() is called
are written to STDERR``, oneDNN's notice), beneath anything Python redirects.  ``captured``
points fd 2 at a log file while a command that starts engines runs (``explain``, ``replay``,
``port``, ``observe``) and points it back afterwards; the CLI then prints one line naming the
file if anything was written, so nothing is lost.  Python's ``sys.stderr`` writes to fd 2 as
well, so the frameworks' Python-level warnings land in the same file; the CLI's own
messages are printed after the capture ends.  A child process started meanwhile appends to
the same file (``LOG_VARIABLE``), and its failure is read from what it printed besides.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The log file a parent ``bnconf`` hands its child processes: they append to it, and leave naming it to the parent.
LOG_VARIABLE = "BNCONF_FRAMEWORK_LOG"
#: A line of a framework's native logging (absl/glog: ``I0000 00:00:1796418142.889553  8170 port.cc:153] ...``).
NATIVE_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|^WARNING: All log messages before absl::InitializeLog\(\)")


@dataclass(frozen=True)
class FrameworkLog:
    """Where the frameworks' log output of this command goes; ``inherited``: a parent bnconf's file."""

    path: Path
    inherited: bool = False

    def line_count(self) -> int:
        try:
            return len(self.path.read_bytes().splitlines())
        except OSError:
            return 0

    def note(self) -> str | None:
        """The one line the CLI prints about the log, or ``None`` when there is nothing in it (or a parent names it)."""
        lines = self.line_count()
        if self.inherited or not lines:
            return None
        return f"bnconf: the frameworks' own log output ({lines} line{'s' if lines != 1 else ''}) is in {self.path}"

    @contextlib.contextmanager
    def section(self, heading: str) -> Iterator[None]:
        """``heading``, then what is written to the log inside; the heading is taken back when nothing was."""
        try:
            before = self.path.stat().st_size
        except FileNotFoundError:
            before = 0
        self.append(heading)
        after = self.path.stat().st_size
        try:
            yield
        finally:
            if self.path.stat().st_size == after:
                os.truncate(self.path, before)

    def append(self, text: str) -> None:
        """Add ``text`` (a child's own output, a heading) to the log."""
        with self.path.open("a", encoding="utf-8") as log:
            log.write(text if text.endswith("\n") else text + "\n")


_active: FrameworkLog | None = None


def active() -> FrameworkLog | None:
    """The log fd 2 points at now, or ``None`` outside ``captured``."""
    return _active


def new_log_path(command: str) -> Path:
    """A fresh log file path for ``command`` under the temporary directory's ``bnconf-logs``."""
    directory = Path(tempfile.gettempdir()) / "bnconf-logs"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


@contextlib.contextmanager
def captured(command: str) -> Iterator[FrameworkLog]:
    """Point fd 2 at a log file for ``command`` (the parent's, when ``LOG_VARIABLE`` names one).

    Restores fd 2 on the way out, exception or not, and removes a log file of its own that
    stayed empty.  Nested use keeps the outer log.
    """
    global _active
    if _active is not None:
        yield _active
        return
    inherited = os.environ.get(LOG_VARIABLE)
    log = FrameworkLog(Path(inherited), inherited=True) if inherited else FrameworkLog(new_log_path(command))
    _flush_stderr()
    saved = os.dup(2)
    target = os.open(log.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)
    _active = log
    try:
        yield log
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        _active = None
        if not log.inherited and log.line_count() == 0:
            log.path.unlink(missing_ok=True)


def _flush_stderr() -> None:
    with contextlib.suppress(Exception):  # a closed or replaced stream has nothing of ours to flush
        sys.stderr.flush()


def last_message(stderr: str) -> str:
    """The last line of a child's stderr that is not a framework's native log line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip() and not NATIVE_LINE.match(line)]
    return lines[-1].strip() if lines else "no output"


def exit_description(returncode: int) -> str:
    """``exit 2``, or ``killed by SIGSEGV`` for a child a signal ended."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exit {returncode}"
