"""Hypothesis profiles of the conformance suite.

* ``dev``: fast feedback while working on the harness;
* ``ci``: derandomized (the same examples every run), used by the README's test command;
* ``nightly``: many more examples, randomized, with the example database kept between runs.

``MAX_ELEMENTS`` bounds the elements of one batch in generated cases (one limit for all
strategies); the nightly profile raises it through ``BNCONF_MAX_ELEMENTS``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = ("dev", "ci", "nightly")
DEFAULT_PROFILE = "ci"

_COMMON = {
    "deadline": None,  # frameworks compile on first use; timing is a benchmark's job
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    "print_blob": True,
}

settings.register_profile("dev", max_examples=10, **_COMMON)
settings.register_profile("ci", max_examples=25, derandomize=True, database=None, **_COMMON)
settings.register_profile("nightly", max_examples=400, **_COMMON)


def max_elements(profile: str | None = None) -> int:
    """The element bound of one generated batch, for ``profile``."""
    if "BNCONF_MAX_ELEMENTS" in os.environ:
        return int(os.environ["BNCONF_MAX_ELEMENTS"])
    return 20_000 if profile == "nightly" else 4_096


def load(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    settings.load_profile(profile)
