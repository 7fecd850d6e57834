"""Size limits on one case, checked before anything is allocated.

A case file is input from anywhere: a shape of [100000, 100000] or ``training_steps:
100000000`` would have the reference and the engines allocate tens of gigabytes or run for
hours before failing, and the failure would look like the engine's.  A case over a limit is
refused as a bad case (``CaseFileError``, exit code 2) when it is read.  The limits are
generous for conformance work and configurable through the environment:

* ``BNCONF_MAX_CASE_ELEMENTS`` (default 10⁷): elements of all training batches together,
  ``prod(shape) × training_steps``.  The reference keeps a few float64 copies of them
  (inputs, outputs per step, gradients), so the default needs well under 1 GB;
* ``BNCONF_MAX_TRAINING_STEPS`` (default 1000): training steps of one case.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

DEFAULT_MAX_ELEMENTS = 10_000_000
DEFAULT_MAX_STEPS = 1_000
ELEMENTS_VARIABLE = "BNCONF_MAX_CASE_ELEMENTS"
STEPS_VARIABLE = "BNCONF_MAX_TRAINING_STEPS"


class LimitSettingError(ValueError):
    """An environment variable that sets a limit holds something other than a positive integer."""


def _positive_int(variable: str, default: int) -> int:
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise LimitSettingError(f"{variable}: expected a positive integer, got {text!r}")
    return value


@dataclass(frozen=True)
class CaseLimits:
    """The largest case this process accepts."""

    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_steps: int = DEFAULT_MAX_STEPS

    @classmethod
    def from_environment(cls) -> CaseLimits:
        return cls(_positive_int(ELEMENTS_VARIABLE, DEFAULT_MAX_ELEMENTS), _positive_int(STEPS_VARIABLE, DEFAULT_MAX_STEPS))

    def steps_problem(self, steps: int) -> str | None:
        """Why ``steps`` training steps are refused, or ``None``."""
        if steps > self.max_steps:
            return f"{steps} training steps exceed the limit of {self.max_steps} (set {STEPS_VARIABLE} to raise it)"
        return None

    def size_problem(self, shape: tuple[int, ...], steps: int = 1) -> str | None:
        """Why a case of ``shape`` over ``steps`` batches is refused, or ``None``."""
        elements = math.prod(shape) * steps  # Python integers: no overflow, whatever the shape
        if elements > self.max_elements:
            per_step = f" × {steps} steps" if steps > 1 else ""
            return (f"{list(shape)}{per_step} is {elements:.3g} elements, over the limit of {self.max_elements:.3g} "
                    f"(about {elements * 8 / 2**30:.3g} GiB per float64 copy; set {ELEMENTS_VARIABLE} to raise it)")  # fmt: skip
        return None
