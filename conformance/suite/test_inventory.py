"""Parameter inventories: what each framework creates for a layer, against the canonical count.

Canonically a batch norm over C channels holds 2·C trainable values (γ, β) and 2·C running
statistics.  For every rank and layout the adapter supports, each per-channel variable must
have shape (C,), and the framework's own totals are compared with the canonical ones; a
difference (a counter, statistics that are not kept) is a parameter-count discrepancy,
written as a ``count`` record with the whole inventory.
"""

from __future__ import annotations

import pytest

from conformance.plugin.session import Count
from datamodel.case import Case, Generator
from datamodel.records import CanonicalCounts, Inventory, Variable

PER_CHANNEL_ROLES = ("scale", "offset", "running_mean", "running_variance")
SHAPES = {2: (4, 6), 3: (4, 6, 5), 4: (2, 6, 4, 3), 5: (2, 6, 3, 2, 2)}


def inventory_counts(adapter, case: Case) -> tuple[list[Count], Inventory]:
    """The inventory of ``adapter`` for ``case``'s shape, and its counts against the canonical ones.

    ``variable_shapes`` counts the per-channel variables whose shape is not (C,); canonically none.
    """
    shape, channel_axis = case.shape, case.layout.axis
    channels = shape[channel_axis]
    found = adapter.inventory(shape, channel_axis)
    wrong_shapes = [f"{v.name} {v.shape}" for v in found.variables if v.role in PER_CHANNEL_ROLES and v.shape != (channels,)]
    counts = [
        Count("variable_shapes", len(wrong_shapes), 0,
              f"per-channel variables must have shape ({channels},): {', '.join(wrong_shapes)}" if wrong_shapes else ""),
        Count("trainable_count", found.trainable_count, 2 * channels),
        Count("non_trainable_count", found.non_trainable_count, 2 * channels),
        Count("total_count", found.total_count, 4 * channels),
    ]  # fmt: skip
    inventory = Inventory(
        variables=[Variable(name=v.name, role=v.role, shape=list(v.shape), dtype=v.dtype, trainable=v.trainable)
                   for v in found.variables],
        trainable_count=found.trainable_count, non_trainable_count=found.non_trainable_count,
        total_count=found.total_count, reported=found.reported,
        canonical=CanonicalCounts(trainable=2 * channels, running_statistics=2 * channels, total=4 * channels),
    )  # fmt: skip
    return counts, inventory


@pytest.mark.parametrize("rank", sorted(SHAPES))
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_inventory(conformance, adapter, bnconf_device, rank, layout):
    """Variable shapes per channel axis; trainable, non-trainable and total counts vs 2·C + 2·C."""
    channel_axis = 1 if layout == "channels_first" else rank - 1
    shape = SHAPES[rank] if channel_axis == 1 else tuple(SHAPES[rank][i] for i in (0, *range(2, rank), 1))
    case = Case(shape=shape, channel_axis=channel_axis, dtype="float32", x=Generator(), device=bnconf_device)
    reason = adapter.unsupported_reason(case)
    if reason is not None:
        pytest.skip(reason)
    counts, inventory = inventory_counts(adapter, case)
    conformance.record_counts(adapter, case, counts, inventory)
