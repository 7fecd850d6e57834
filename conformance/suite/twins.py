"""Two runs of one logical case that must agree: what the layout and execution-mode properties share.

Each twin is compared with the reference under the tolerance model (so a disagreement is
attributed to one of them), and the twins' outputs are compared with each other under the
sum of their tolerances, recorded as ``<quantity>@twin``.  Both sides are recorded before
either fails, so one side's finding never hides the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from adapters.base import Adapter
from adapters.registry import get_adapter
from conformance.judging.check import compare_outcomes, expected_values, stable_baseline, tolerances
from conformance.judging.compare import compare
from conformance.judging.tolerance import largest_finite
from conformance.plugin.session import ConformanceFailure
from datamodel.case import Case, CaseData

#: Aligns the twin's value (or allowed error) of a quantity with the first run's: identity by default.
Align = Callable[[str, np.ndarray], np.ndarray]


@cache
def twin_adapter(spec: str) -> Adapter:
    """One adapter per twin spec for the whole process, so a compiled twin keeps its compiled functions."""
    return get_adapter(spec)


def _run(conformance, adapter, case: Case, data: CaseData, prop: str):
    settings = adapter.settings(case)
    expected = expected_values(case, data, settings)
    allowed = tolerances(case, data, settings, expected)
    stable = stable_baseline(case, data, settings, expected)
    return expected, allowed, stable, conformance.observe(adapter, case, prop, data)


def check_twins(
    conformance, prop: str, first: tuple, second: tuple, align: Align | None = None, blame_second: bool = False
) -> None:
    """Run ``first`` and ``second`` (each ``(adapter, case, data)``), compare each with the reference
    and with each other, record both under ``prop`` and fail on what neither ledger explains.

    The comparison between the two is recorded with the first, or with the second when
    ``blame_second`` (a compiled mode compared with its eager engine answers for the difference).
    """
    (adapter, case, data), (twin, twin_case, twin_data) = first, second
    align = align or (lambda name, array: array)
    expected, allowed, stable, observed = _run(conformance, adapter, case, data, prop)
    twin_expected, twin_allowed, twin_stable, twin_observed = _run(conformance, twin, twin_case, twin_data, prop)
    max_finite = largest_finite(case.dtype)
    comparisons = compare_outcomes(expected, allowed, observed, max_finite=max_finite, stable=stable)
    twin_comparisons = compare_outcomes(twin_expected, twin_allowed, twin_observed, max_finite=max_finite, stable=twin_stable)
    between = []
    for name, outcome in observed.items():
        other = twin_observed.get(name)
        if outcome.value is None or other is None or other.value is None:
            continue
        bound = allowed[name] + align(name, twin_allowed[name])
        between.append(compare(f"{name}@twin", align(name, other.value), outcome.value, bound, max_finite))
    failures = []
    if blame_second:
        twin_comparisons, between = twin_comparisons + between, []
    for who, its_case, found, extra, its_data in (
        (twin, twin_case, twin_comparisons, {"twin_of": adapter.label}, twin_data),
        (adapter, case, comparisons + between, {"twin": twin.label}, data),
    ):
        try:  # record both sides before failing on either
            conformance.record(who, its_case, prop, found, extra, its_data)
        except ConformanceFailure as failure:
            failures.append(str(failure))
    if failures:
        raise ConformanceFailure("\n".join(failures))
