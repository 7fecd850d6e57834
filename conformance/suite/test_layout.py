"""Layout consistency inside one framework: the same data in another layout gives the same numbers.

Two twins of a generated case are run on the same framework:

* channels-first vs channels-last (where the adapter accepts any channel axis): the second
  case holds the first one's data with the channel axis moved last;
* memory formats (the variants an adapter declares in ``Capabilities.memory_format_twins``,
  such as PyTorch's ``channels_last``): the same logical case through the twin variant.

Both twins are judged by ``twins.check_twins``: each against the reference, and against each
other under the sum of their tolerances (recorded as ``layout`` with quantity ``<name>@twin``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conformance.generation.strategies import cases
from datamodel.case import Case, CaseData

from .twins import check_twins, twin_adapter

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


@given(data=st.data())
def test_layout_consistency(conformance, adapter, bnconf_device, max_elements, pooled_configurations, data):
    twins = adapter.capabilities.memory_format_twins
    if not adapter.capabilities.any_channel_axis and not twins:
        pytest.skip(f"{adapter.label} has one layout only")
    twin_spec = f"{adapter.name}:{data.draw(st.sampled_from(twins), label='twin')}" if twins else None
    twin = twin_adapter(twin_spec) if twin_spec else adapter
    capabilities = twin.capabilities if twin_spec else adapter.capabilities
    case = data.draw(cases(capabilities=capabilities, device=bnconf_device, max_elements=max_elements,
                           pooled=pooled_configurations, max_steps=2), label="case")  # fmt: skip
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

    def align(name: str, array: np.ndarray) -> np.ndarray:
        """The twin's array with its channel axis back where the first case has it."""
        if twin_spec is not None or name in PER_CHANNEL:
            return array
        offset = 1 if name == "y_train" else 0  # y_train stacks the steps first
        return np.moveaxis(array, target + offset, case.layout.axis + offset)

    check_twins(conformance, "layout", (adapter, case, first_data), (twin, twin_case, twin_data), align)
