"""Hypothesis profiles of the conformance suite.

* ``dev``: fast feedback while working on the harness;
* ``ci``: derandomized (the same examples every run), used by the README's test command;
* ``nightly``: many more examples, randomized, with the example database kept between runs.

``max_elements`` bounds the elements of one batch in generated cases (one limit for all
strategies); the nightly profile raises it, and ``BNCONF_MAX_ELEMENTS`` overrides it.
``pooled`` says whether a profile takes each case's compile configuration (layout, dtype,
affine, ε, decay) from the fixed pool of ``configurations.configuration_pool`` (``dev`` and
``ci``: a compiling engine compiles a few configurations, not one per example) or draws it
freely (``nightly``: it explores).

Importing this module registers nothing and imports nothing but the standard library:
the pytest plugin is loaded in every pytest run of an environment where bn-conformance is
installed, and an unrelated project's hypothesis settings must stay its own.  The profiles
are registered by ``register()``, which the plugin calls only for conformance runs.
"""

from __future__ import annotations

import os
from functools import cache

PROFILES = ("dev", "ci", "nightly")
DEFAULT_PROFILE = "ci"


@cache
def register() -> None:
    """Register the three profiles with hypothesis (once)."""
    from hypothesis import HealthCheck, settings

    common = {
        "deadline": None,  # frameworks compile on first use; timing is a benchmark's job
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
        "print_blob": True,
    }
    settings.register_profile("dev", max_examples=10, **common)
    settings.register_profile("ci", max_examples=25, derandomize=True, database=None, **common)
    settings.register_profile("nightly", max_examples=400, **common)


def max_elements(profile: str | None = None) -> int:
    """The element bound of one generated batch, for ``profile``."""
    if "BNCONF_MAX_ELEMENTS" in os.environ:
        return int(os.environ["BNCONF_MAX_ELEMENTS"])
    return 20_000 if profile == "nightly" else 4_096


def pooled(profile: str | None = None) -> bool:
    """Whether ``profile`` draws compile configurations from the fixed pool (every profile but ``nightly``)."""
    return profile != "nightly"


def load(profile: str) -> None:
    """Make ``profile`` hypothesis' default settings (registering the profiles first)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    from hypothesis import settings

    register()
    settings.load_profile(profile)
