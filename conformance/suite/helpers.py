"""What the property modules share: running a check under hypothesis and steering it."""

from __future__ import annotations

import pytest
from hypothesis import target

from adapters.base import Adapter
from conformance.plugin.session import ConformanceSession, Unsupported
from datamodel.case import Case
from datamodel.quantities import PHASES


def check_property(
    conformance: ConformanceSession, adapter: Adapter, case: Case, prop: str, phases: tuple[str, ...] = PHASES
) -> None:
    """Check ``case`` and steer hypothesis toward the worst error-to-tolerance ratio.

    The ratio of findings the ledger already explains is left out of the target, so the
    search looks for new trouble rather than re-finding known trouble.
    """
    outcome = conformance.check(adapter, case, prop, phases)
    target(float(min(outcome.worst_unexplained_ratio, 1e300)), label=f"{prop}: error / allowed")


def check_or_skip(conformance: ConformanceSession, adapter: Adapter, case: Case, prop: str, phases: tuple[str, ...] = PHASES):
    """For fixed (non-hypothesis) cases: an unsupported combination is a skip with its reason."""
    try:
        return conformance.check(adapter, case, prop, phases)
    except Unsupported as reason:
        pytest.skip(str(reason))


def default_layout_axis(adapter: Adapter) -> int:
    return 1 if adapter.conventions.default_channel_axis == 1 else -1
