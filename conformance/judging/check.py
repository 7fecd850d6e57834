"""One check: a case run on one adapter, compared quantity by quantity with the reference.

This is the data flow in one place: case → reference (expected) and the stable emulation
(``accuracy``) → adapter (observed) → tolerance model → comparison, each comparison graded
against the stable emulation.  The caller turns the comparisons into result records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.base import Adapter, Outcome, Settings
from datamodel.case import Case, CaseData
from datamodel.quantities import PHASE_QUANTITIES, PHASES
from reference import Expected, simulate

from .accuracy import StableError, emulate_stable, graded, stable_errors
from .compare import ERROR, UNSUPPORTED, Comparison, compare
from .tolerance import ToleranceInputs, allowed_errors, largest_finite


@dataclass
class CheckResult:
    """Every quantity's comparison for one case on one adapter."""

    comparisons: list[Comparison]
    settings: Settings | None = None
    unsupported_reason: str | None = None


def expected_values(case: Case, data: CaseData, settings: Settings) -> Expected:
    """The reference configured with an adapter's resolved settings and conventions."""
    return simulate(
        data.batches, gamma=data.gamma, beta=data.beta, running_mean=data.running_mean,
        running_var=data.running_var, dy=data.dy, axis=case.channel_axis, eps=settings.eps,
        decay=settings.decay, dtype=case.dtype, conventions=settings.conventions,
    )  # fmt: skip


def _inputs(case: Case, data: CaseData, settings: Settings) -> ToleranceInputs:
    return ToleranceInputs(
        data=data, axis=case.channel_axis, eps=settings.eps, decay=settings.decay, dtype=case.dtype,
        conventions=settings.conventions,
    )  # fmt: skip


def tolerances(case: Case, data: CaseData, settings: Settings, expected: Expected) -> dict:
    return allowed_errors(_inputs(case, data, settings), expected)


def stable_baseline(
    case: Case, data: CaseData, settings: Settings, expected: Expected, phases: tuple[str, ...] = PHASES
) -> dict[str, StableError]:
    """What a numerically stable implementation in the case's dtype errs by on each quantity of
    ``phases`` (``accuracy``): one emulation per case, the denominators of every accuracy grade."""
    inputs = _inputs(case, data, settings)
    wanted = [name for phase in phases for name in PHASE_QUANTITIES[phase]]
    return stable_errors(inputs, expected, emulate_stable(inputs, wanted))


def compare_outcomes(
    expected: Expected, allowed: dict, observed: dict[str, Outcome], phases: tuple[str, ...] = PHASES,
    max_finite: float = float("inf"), stable: Mapping[str, StableError] | None = None,
) -> list[Comparison]:
    """Compare every expected quantity of ``phases`` with what the adapter observed (or its error).

    A quantity of a phase the engine does not run is ``unsupported``, with the engine's reason.

    ``max_finite``: the output dtype's largest finite number (see ``compare``).  ``stable``
    (from ``stable_baseline``) grades each comparison's accuracy; without it there is no grade.
    """
    wanted = {name for phase in phases for name in PHASE_QUANTITIES[phase]}
    stable = stable or {}
    comparisons = []
    for quantity, value in expected.values.items():
        if quantity not in wanted:
            continue
        outcome = observed.get(quantity)
        if outcome is None:
            comparisons.append(Comparison(quantity, ERROR, message=f"{quantity}: the adapter returned no value"))
        elif outcome.unsupported is not None:  # a phase the engine does not run: said, not an error
            comparisons.append(Comparison(quantity, UNSUPPORTED, message=outcome.unsupported))
        elif outcome.error is not None:
            comparisons.append(Comparison(quantity, ERROR, message=outcome.error))
        else:
            found = compare(quantity, value, outcome.value, allowed[quantity], max_finite)
            comparisons.append(graded(found, stable.get(quantity)))
    return comparisons


def check_case(
    adapter: Adapter, case: Case, data: CaseData | None = None, phases: tuple[str, ...] = PHASES
) -> CheckResult:
    """Run ``case`` on ``adapter`` and compare every quantity of ``phases`` with the reference."""
    reason = adapter.unsupported_reason(case)
    if reason is not None:
        return CheckResult([Comparison("*", UNSUPPORTED, message=reason)], unsupported_reason=reason)
    data = case.materialize() if data is None else data
    settings = adapter.settings(case)
    expected = expected_values(case, data, settings)
    allowed = tolerances(case, data, settings, expected)
    stable = stable_baseline(case, data, settings, expected, phases)
    observed = adapter.run(case, data, phases)
    comparisons = compare_outcomes(expected, allowed, observed, phases, largest_finite(case.dtype), stable)
    return CheckResult(comparisons, settings=settings)
