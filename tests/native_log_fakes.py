"""Fakes that log as TensorFlow and XLA do, from below Python, for the framework-log tests.

``ChatteringAdapter`` writes a glog-style line straight to file descriptor 2 when its version
is read (TensorFlow's ``cpu_feature_guard`` does so on import); the process-bound ones do it
in a child process of their own, and one of them then dies of SIGSEGV in training.
"""

from __future__ import annotations

import os
from typing import ClassVar

from fakes import NumpyAdapter, ProcessBoundAdapter, SegfaultAdapter

#: What the fakes write to fd 2, as absl writes it before ``absl::InitializeLog()``.
NATIVE_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796418142.889553    8170 cpu_feature_guard.cc:227] This binary is optimized for your CPU.\n"
)


def chatter() -> None:
    os.write(2, NATIVE_LINES.encode())  # fd 2 itself, as C++ logging writes: sys.stderr never sees it


class ChatteringAdapter(NumpyAdapter):
    name = "chattering-fake"
    variants: ClassVar[dict[str, str]] = {}

    def version(self) -> str:
        chatter()
        return super().version()


class ProcessBoundChatteringAdapter(ProcessBoundAdapter):
    name = "process-bound-chattering-fake"

    def version(self) -> str:
        chatter()
        return super().version()


class ProcessBoundSegfaultAdapter(ProcessBoundChatteringAdapter, SegfaultAdapter):
    """Logs natively in its child process, then dies there of SIGSEGV in training."""

    name = "process-bound-segfault-fake"
