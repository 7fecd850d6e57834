"""Layout consistency inside one framework: the same data in another layout gives the same numbers.

Two twins of a generated case are run on the same framework:

* channels-first vs channels-last (where the adapter accepts any channel axis): the second
  case holds the first one's data with the channel axis moved last;
* memory formats (the variants an adapter declares in ``Capabilities.memory_format_twins``,
  such as PyTorch's ``channels_last``): the same logical case through the twin variant.

Each twin is compared with the reference under the tolerance model (so a disagreement is
attributed to one of them), and the twins' outputs are compared with each other under the
sum of their tolerances; the second comparison is recorded as ``layout`` with quantity
``<name>@twin``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from adapters.registry import get_adapter
from conformance.generation.strategies import cases
from conformance.judging.check import compare_outcomes, expected_values, stable_baseline, tolerances
from conformance.judging.compare import compare
from conformance.judging.tolerance import largest_finite
from conformance.plugin.session import ConformanceFailure
from datamodel.case import Case, CaseData

#: Quantities with one value per channel (and step): nothing to move between layouts.
PER_CHANNEL = ("running_mean", "running_var", "dgamma", "dbeta")


def _moved(case: Case, data: CaseData, target: int) -> tuple[Case, CaseData]:
    """The case with its channel axis moved to ``target``, data moved along."""
    axis = case.layout.axis

    def move(array: np.ndarray) -> np.ndarray:
        return np.moveaxis(array, axis, target)

    moved = case.with_(shape=move(np.empty(case.shape)).shape, channel_axis=target,
                       x=np.stack([move(b) for b in data.batches]), dy=move(data.dy))  # fmt: skip
    return moved, moved.materialize()


def _run(conformance, adapter, case: Case, data: CaseData):
    settings = adapter.settings(case)
    expected = expected_values(case, data, settings)
    allowed = tolerances(case, data, settings, expected)
    stable = stable_baseline(case, data, settings, expected)
    return expected, allowed, stable, conformance.observe(adapter, case, "layout", data)


@given(data=st.data())
def test_layout_consistency(conformance, adapter, bnconf_device, max_elements, data):
    twins = adapter.capabilities.memory_format_twins
    if not adapter.capabilities.any_channel_axis and not twins:
        pytest.skip(f"{adapter.label} has one layout only")
    twin_spec = f"{adapter.name}:{data.draw(st.sampled_from(twins), label='twin')}" if twins else None
    twin = get_adapter(twin_spec) if twin_spec else adapter
    capabilities = twin.capabilities if twin_spec else adapter.capabilities
    case = data.draw(cases(capabilities=capabilities, device=bnconf_device, max_elements=max_elements, max_steps=2), label="case")
    first_data = case.materialize()
    target = case.layout.axis
    if twin_spec is None:
        assume(case.rank > 2)  # (N, C) has one layout only
        target = 1 if case.layout.axis == case.rank - 1 else case.rank - 1
        twin_case, twin_data = _moved(case, first_data, target)
    else:
        twin_case, twin_data = case, first_data
    # the capabilities drew the case; an adapter may refuse some of them still (a fused kernel
    # that takes the channels first or last only): such a pair says nothing about layouts
    assume(adapter.unsupported_reason(case) is None and twin.unsupported_reason(twin_case) is None)
    expected, allowed, stable, observed = _run(conformance, adapter, case, first_data)
    twin_expected, twin_allowed, twin_stable, twin_observed = _run(conformance, twin, twin_case, twin_data)
    max_finite = largest_finite(case.dtype)
    comparisons = compare_outcomes(expected, allowed, observed, max_finite=max_finite, stable=stable)
    twin_comparisons = compare_outcomes(twin_expected, twin_allowed, twin_observed, max_finite=max_finite, stable=twin_stable)
    between = []
    for name, outcome in observed.items():
        other = twin_observed.get(name)
        if outcome.value is None or other is None or other.value is None:
            continue
        theirs, their_allowed = other.value, twin_allowed[name]
        if twin_spec is None and name not in PER_CHANNEL:
            offset = 1 if name == "y_train" else 0  # y_train stacks the steps first
            theirs = np.moveaxis(theirs, target + offset, case.layout.axis + offset)
            their_allowed = np.moveaxis(their_allowed, target + offset, case.layout.axis + offset)
        between.append(compare(f"{name}@twin", theirs, outcome.value, allowed[name] + their_allowed, max_finite))
    failures = []
    for who, its_case, found, extra, its_data in (
        (twin, twin_case, twin_comparisons, {"twin_of": adapter.label}, twin_data),
        (adapter, case, comparisons + between, {"twin": twin.label}, first_data),
    ):
        try:  # record both sides before failing on either
            conformance.record(who, its_case, "layout", found, extra, its_data)
        except ConformanceFailure as failure:
            failures.append(str(failure))
    if failures:
        raise ConformanceFailure("\n".join(failures))
